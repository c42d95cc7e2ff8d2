"""Free-rider attacks: clients that take the global model without contributing training."""
from .freerider import FreeRiderClientManager, update_statistics

__all__ = ["FreeRiderClientManager", "update_statistics"]
