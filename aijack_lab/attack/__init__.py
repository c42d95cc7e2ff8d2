"""Attacks. One family per subpackage (``evasion``, ...); the paper's names are re-exported here.

To add an export, add one line ``"Name": ".family"`` to ``_EXPORTS``.
"""
from ..utils.lazy import lazy_exports
from .base import BaseAttacker

_EXPORTS = {
    "NormAttackSplitNNManager": ".labelleakage",
    "FGSMAttacker": ".evasion",
    "Evasion_attack_sklearn": ".evasion",
    "DIVAWhiteBoxAttacker": ".evasion",
    "Poison_attack_sklearn": ".poison",
    "MI_FACE": ".inversion",
    "ShadowMembershipInferenceAttack": ".membership",
    "GradientInversion_Attack": ".inversion",
    "GradientInversionAttackServerManager": ".inversion",
    "GANAttackClientManager": ".inversion",
    "HistoryAttackClientWrapper": ".poison",
    "LabelFlipAttackClientManager": ".poison",
    "MAPFClientWrapper": ".poison",
    "DistributedBackdoorAttackClientManager": ".backdoor",
    "ModelReplacementAttackClientManager": ".backdoor",
    "FreeRiderClientManager": ".freerider",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = ["BaseAttacker", *_EXPORTS]
