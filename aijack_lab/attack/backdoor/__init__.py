"""Backdoor attacks on federated learning: DBA and model replacement, with trigger helpers."""
from .dba import DistributedBackdoorAttackClientManager
from .modelreplacement import ModelReplacementAttackClientManager, l2norm_checker
from .trigger import (
    PixelPatternTrigger,
    backdoor_success_rate,
    class_accuracy,
    decompose_trigger,
    digits_corner_trigger,
)

__all__ = [
    "DistributedBackdoorAttackClientManager",
    "ModelReplacementAttackClientManager",
    "l2norm_checker",
    "PixelPatternTrigger",
    "backdoor_success_rate",
    "class_accuracy",
    "decompose_trigger",
    "digits_corner_trigger",
]
