"""FedKD: ``FedKDClient`` (Wu et al., Nature Communications 2022)."""
from .client import FedKDClient

__all__ = ["FedKDClient"]
