"""FedEXP: ``FedEXPServer`` (Jhunjhunwala, Wang, Joshi, ICLR 2023)."""
from .server import FedEXPServer

__all__ = ["FedEXPServer"]
