"""Norm clipping of client updates at the server (Sun et al., "Can You Really Backdoor Federated Learning?", 2019)."""
from .norm_clipping import NormClippingServerManager

__all__ = ["NormClippingServerManager"]
