"""Evasion attacks: inputs crafted so that a trained model errs."""
from .diva import DIVAWhiteBoxAttacker, evasion_rates, make_edge_model
from .evasion_attack import Evasion_attack_sklearn
from .fgsm import FGSMAttacker

__all__ = ["FGSMAttacker", "Evasion_attack_sklearn", "DIVAWhiteBoxAttacker", "make_edge_model", "evasion_rates"]
