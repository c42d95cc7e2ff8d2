"""Managers add abilities to a class by subclassing it: ``Extended = SomeManager(...).attach(Base)``."""
from .base import BaseManager, attached_managers

__all__ = ["BaseManager", "attached_managers"]
