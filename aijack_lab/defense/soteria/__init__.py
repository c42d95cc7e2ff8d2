"""Soteria (Sun et al., CVPR 2021): prune the representation layer's gradient before it is sent."""
from .soteria_client import SoteriaClientManager, soteria_scores

__all__ = ["SoteriaClientManager", "soteria_scores"]
