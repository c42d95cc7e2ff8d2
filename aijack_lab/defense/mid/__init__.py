"""MID: mutual-information regularisation against model inversion (variational information bottleneck)."""
from .inversion import invert_representations, train_inversion_decoder
from .loss import KL_between_normals, mib_loss
from .nn import VIB

__all__ = ["VIB", "mib_loss", "KL_between_normals", "train_inversion_decoder", "invert_representations"]
