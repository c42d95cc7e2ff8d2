"""FoolsGold (Fung, Yoon and Beschastnikh, RAID 2020): down-weight clients whose updates look alike."""
from .server import FoolsGoldServerManager, foolsgold_weights

__all__ = ["FoolsGoldServerManager", "foolsgold_weights"]
