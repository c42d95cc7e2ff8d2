"""Differential privacy: the RDP moments accountant (and GDP, PRV accountants), DP-SGD, AdaDPS, DPlis and a DP FedAVG client."""
from .accountant import GeneralMomentAccountant
from .gdp import GDPAccountant
from .grad_sample import DPEngine, per_sample_gradients
from .manager import AdaDPSManager, DPSGDClientManager, DPSGDManager
from .prv import PRVAccountant

__all__ = ["GeneralMomentAccountant", "DPSGDManager", "AdaDPSManager", "DPSGDClientManager", "DPEngine",
           "per_sample_gradients", "GDPAccountant", "PRVAccountant"]
