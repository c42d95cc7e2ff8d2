"""MOON: ``MOONClient`` (Li, He, Song, CVPR 2021)."""
from .client import MOONClient

__all__ = ["MOONClient"]
