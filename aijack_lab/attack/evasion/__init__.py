"""Evasion attacks: inputs crafted so that a trained model errs."""
from .fgsm import FGSMAttacker

__all__ = ["FGSMAttacker"]
