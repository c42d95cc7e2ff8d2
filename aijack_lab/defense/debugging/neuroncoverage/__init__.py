"""Neuron coverage (Pei, Cao, Yang, Jana. DeepXplore. SOSP 2017).

``from aijack_lab.defense.debugging.neuroncoverage import *`` brings both the class and the module
``neuroncoverage`` (the paper's listing calls ``neuroncoverage.NeuronCoverageTracker``).
"""
from . import neuroncoverage
from .neuroncoverage import NeuronCoverageTracker

__all__ = ["neuroncoverage", "NeuronCoverageTracker"]
