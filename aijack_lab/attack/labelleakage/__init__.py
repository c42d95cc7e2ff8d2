"""Label leakage in split learning."""
from .normattack import NormAttackSplitNNManager, norm_leak_auc

__all__ = ["NormAttackSplitNNManager", "norm_leak_auc"]
