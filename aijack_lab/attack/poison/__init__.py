"""Poisoning attacks: malicious FL clients that lower the global model's accuracy (History, label
flip, MPAF), and poisoning of trained sklearn models (``Poison_attack_sklearn``, loaded lazily)."""
from ...utils.lazy import lazy_exports
from .history import HistoryAttackClientWrapper
from .label_flip import LabelFlipAttackClientManager, LabelFlipAttackManager
from .mapf import MAPFClientWrapper

_LAZY = {"Poison_attack_sklearn": ".poison_attack"}
__getattr__, _lazy_dir = lazy_exports(__name__, _LAZY)


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["HistoryAttackClientWrapper", "LabelFlipAttackClientManager", "LabelFlipAttackManager", "MAPFClientWrapper", *_LAZY]
