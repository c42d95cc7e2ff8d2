"""Where federated clients run their local training.

An engine has ``local_train(api, com_cnt) -> list of per-client epoch losses`` and must leave
each client's model (and ``num_samples``) as in-process training would. ``InProcessEngine`` is the
default; other engines register a name with ``register_engine``.
"""
from .base import BaseEngine, InProcessEngine, register_engine, resolve_engine, available_engines

register_engine("ipyparallel", "aijack_lab.engines.ipyparallel:IPyParallelEngine")

__all__ = ["BaseEngine", "InProcessEngine", "register_engine", "resolve_engine", "available_engines"]
