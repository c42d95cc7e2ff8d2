"""FedProx: ``FedProxClient``, ``FedProxAPI`` (Li et al., MLSys 2020), and ``client_drift``."""
from .api import FedProxAPI, client_drift
from .client import FedProxClient

__all__ = ["FedProxClient", "FedProxAPI", "client_drift"]
