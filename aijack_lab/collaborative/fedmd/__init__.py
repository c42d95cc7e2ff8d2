"""FedMD: ``FedMDClient``, ``FedMDServer``, ``FedMDAPI`` (Li & Wang, 2019; paper Code S-19)."""
from .api import FedMDAPI
from .client import FedMDClient
from .server import FedMDServer

__all__ = ["FedMDClient", "FedMDServer", "FedMDAPI"]
