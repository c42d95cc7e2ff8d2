"""FedGEMS: ``FedGEMSClient``, ``FedGEMSServer``, ``FedGEMSAPI`` (Cheng et al., 2021)."""
from .api import FedGEMSAPI
from .client import FedGEMSClient
from .server import FedGEMSServer

__all__ = ["FedGEMSClient", "FedGEMSServer", "FedGEMSAPI"]
