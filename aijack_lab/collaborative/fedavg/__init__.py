"""FedAVG: ``FedAVGClient``, ``FedAVGServer``, ``FedAVGAPI`` (paper Code 5)."""
from .api import FedAVGAPI
from .client import FedAVGClient
from .server import FedAVGServer

__all__ = ["FedAVGClient", "FedAVGServer", "FedAVGAPI"]
