"""Defenses: managers, wrappers and modules. One family per subpackage; the paper's names re-exported here.

To add an export, add one line ``"Name": ".family"`` to ``_EXPORTS``.
"""
from ..utils.lazy import lazy_exports

_EXPORTS = {
    "PaillierKeyGenerator": ".paillier",
    "PaillierGradientClientManager": ".paillier",
    "PaillierTensor": ".paillier",
    "GeneralMomentAccountant": ".dp",
    "PRVAccountant": ".dp",
    "DPSGDManager": ".dp",
    "AdaDPSManager": ".dp",
    "DPSGDClientManager": ".dp",
    "NormClippingServerManager": ".clipping",
    "SoteriaClientManager": ".soteria",
    "FoolsGoldServerManager": ".foolsgold",
    "VIB": ".mid",
    "mib_loss": ".mid",
    "KL_between_normals": ".mid",
    "SparseGradientClientManager": ".sparse",
    "SparseGradientServerManager": ".sparse",
    "Mondrian": ".kanonymity",
    "PixelDP": ".pixeldp",
    "NeuronCoverageTracker": ".debugging",
    "Rain": ".debugging",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
