"""DSFL: ``DSFLClient``, ``DSFLServer``, ``DSFLAPI`` (Itahara et al., IEEE TMC 2021)."""
from .api import DSFLAPI
from .client import DSFLClient
from .server import DSFLServer

__all__ = ["DSFLClient", "DSFLServer", "DSFLAPI"]
