"""Server-side optimizers for aggregated (pseudo-)gradients: ``SGDFLOptimizer``, ``AdamFLOptimizer``."""
from .optimizers import AdamFLOptimizer, BaseFLOptimizer, SGDFLOptimizer

__all__ = ["BaseFLOptimizer", "SGDFLOptimizer", "AdamFLOptimizer"]
