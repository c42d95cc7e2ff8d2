"""Model inversion: reconstructing training data from a model or from the gradients it shares.

Each attack lives in its own module; to add one, add ``"Name": ".module"`` to ``_EXPORTS``.
"""
from ...utils.lazy import lazy_exports

_EXPORTS = {
    "MI_FACE": ".miface",
    "GradientInversion_Attack": ".gradientinversion",
    "GradientInversionAttackServerManager": ".gradientinversion_manager",
    "GANAttackClientManager": ".gan_attack",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
