"""PixelDP certified robustness (Lecuyer et al., IEEE S&P 2019)."""
from .pixeldp import Certificate, PixelDP, certified_accuracy, clopper_pearson_bounds, gaussian_radius, laplace_radius

__all__ = ["PixelDP", "Certificate", "certified_accuracy", "clopper_pearson_bounds", "gaussian_radius", "laplace_radius"]
