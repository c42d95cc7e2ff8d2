"""Split learning (Vepakomma et al., 2018): ``SplitNNClient``, ``SplitNNAPI`` (paper Code S-13)."""
from .api import SplitNNAPI
from .client import SplitNNClient

__all__ = ["SplitNNClient", "SplitNNAPI"]
