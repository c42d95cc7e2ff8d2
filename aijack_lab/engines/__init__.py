"""Where federated clients run their local training.

An engine has ``run_on_clients(api, jobs)``: each job ``(client index, fn, args)`` runs
``fn(client, optimizer, *args)`` (``CLIENT_LOADER`` in ``args`` = the client's private dataloader)
and leaves the client, its optimizer and its loader's random state as an in-process call would.
``local_train(api, com_cnt)`` (FedAVG and the APIs built on it) is one such call. The
knowledge-distillation APIs (``FedMDAPI``, ``FedGEMSAPI``, ``DSFLAPI``) take ``engine=`` too: their
client-side phases run through ``run_on_clients`` and the server stays in this process.
``InProcessEngine`` is the default; other engines register a name with ``register_engine``.
"""
from .base import CLIENT_LOADER, BaseEngine, InProcessEngine, available_engines, register_engine, resolve_engine

register_engine("ipyparallel", "aijack_lab.engines.ipyparallel:IPyParallelEngine")

__all__ = ["CLIENT_LOADER", "BaseEngine", "InProcessEngine", "register_engine", "resolve_engine", "available_engines"]
