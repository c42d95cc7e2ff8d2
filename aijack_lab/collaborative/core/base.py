"""Parties of federated learning and the API loop, shared by every protocol.

Protocols subclass these; managers subclass the protocol classes (``manager.attach``).
"""
import abc
import time
from typing import Any, Callable, Dict, List, Optional

import torch

from ...utils.progress import ProgressCallback, report_progress

RoundInfo = Dict[str, Any]
"""What the per-round hook receives: ``round``, ``client_losses``, ``global_accuracy`` (or None),
``seconds``, ``bytes_uploaded``, and ``client_updates`` (the uploads of this round, hook only)."""


class BaseClient(abc.ABC):
    """A party holding private data and a local model."""

    def __init__(self, model: torch.nn.Module, user_id: int = 0):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.user_id = user_id

    def __call__(self, x):
        return self.model(x)

    def forward(self, x):
        return self.model(x)

    def train(self):
        self.model.train()

    def eval(self):
        self.model.eval()

    def parameters(self):
        return self.model.parameters()

    @abc.abstractmethod
    def upload(self):
        """What this client sends to the server."""

    @abc.abstractmethod
    def download(self, payload):
        """Receive what the server sends."""


class BaseServer(abc.ABC):
    """The aggregator. ``server_model`` is the global model."""

    def __init__(self, clients: List, server_model: torch.nn.Module, server_id: int = 0):
        self.clients = clients
        self.server_model = server_model
        self.server_id = server_id
        self.num_clients = len(clients) if clients is not None else 0

    def __call__(self, x):
        return self.server_model(x)

    def forward(self, x):
        return self.server_model(x)

    def train(self):
        self.server_model.train()

    def eval(self):
        self.server_model.eval()

    @abc.abstractmethod
    def receive(self, *args, **kwargs):
        """Collect the clients' uploads."""

    @abc.abstractmethod
    def update(self, *args, **kwargs):
        """Aggregate what was received."""

    @abc.abstractmethod
    def distribute(self, *args, **kwargs):
        """Send the new global state to the clients."""

    def action(self, *args, **kwargs):
        self.receive(*args, **kwargs)
        self.update(*args, **kwargs)
        self.distribute()


class BaseFedAPI(abc.ABC):
    """Runs a protocol; keeps ``history`` (one dict per round) and calls the per-round hooks.

    Hooks: ``on_round(api, info)`` callables (pass one or a list, or ``api.add_round_hook``),
    and ``progress(round_done, num_rounds)``, which may raise to stop the run.
    """

    def __init__(
        self,
        on_round: Optional[Callable] = None,
        progress: Optional[ProgressCallback] = None,
    ):
        self.history: List[RoundInfo] = []
        self.round_hooks: List[Callable] = []
        if on_round is not None:
            for hook in on_round if isinstance(on_round, (list, tuple)) else [on_round]:
                self.add_round_hook(hook)
        self.progress = progress

    def add_round_hook(self, hook: Callable) -> None:
        if not callable(hook):
            raise TypeError("a round hook must be callable as hook(api, info)")
        self.round_hooks.append(hook)

    def _end_round(self, info: RoundInfo, total_rounds: int) -> None:
        """Record the round (without the heavy ``client_updates``), call hooks, report progress."""
        self.history.append({k: v for k, v in info.items() if k != "client_updates"})
        for hook in self.round_hooks:
            hook(self, info)
        report_progress(self.progress, info["round"] + 1, total_rounds)

    @staticmethod
    def _now() -> float:
        return time.perf_counter()

    @abc.abstractmethod
    def run(self):
        """Run the whole protocol and return ``history``."""
