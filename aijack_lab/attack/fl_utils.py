"""Shared pieces of the malicious federated clients (poisoning, backdoor, free riding).

The client managers change what a client trains on (by wrapping its dataloader or its loss) or
what it uploads (by overriding ``upload_gradients``); both ways call ``super()``, so attaching two
managers composes their effects.
"""
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import torch

from ..utils.validation import check_positive_int


class BatchTransformLoader:
    """Iterates ``loader`` and passes every ``(x, y)`` batch through ``fn(x, y) -> (x, y)``.

    It keeps ``len(loader)``, ``dataset`` and ``batch_size``, so a client that wraps its dataloader
    trains exactly as before except for the transformed batches.
    """

    def __init__(self, loader, fn: Callable[[torch.Tensor, torch.Tensor], Tuple[torch.Tensor, torch.Tensor]]):
        if not callable(fn):
            raise TypeError("fn must be callable as fn(x, y) -> (x, y)")
        self.loader = loader
        self.fn = fn

    def __iter__(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self.loader:
            yield self.fn(x, y)

    def __len__(self) -> int:
        return len(self.loader)

    @property
    def dataset(self):
        return getattr(self.loader, "dataset", None)

    @property
    def batch_size(self):
        return getattr(self.loader, "batch_size", None)


def gradients_to_parameters(prev_parameters: Sequence[torch.Tensor], gradients: Sequence[torch.Tensor], lr: float):
    """The parameters a pseudo-gradient stands for: ``θ_prev - lr · g`` (for clients that upload parameters)."""
    return [prev - lr * g for prev, g in zip(prev_parameters, gradients)]


def claimed_num_samples(trainloader) -> Optional[int]:
    """How many samples a loader holds, without iterating it (``len(dataset)``), or None."""
    dataset = getattr(trainloader, "dataset", None)
    try:
        n = len(dataset) if dataset is not None else None
    except TypeError:
        n = None
    return n if isinstance(n, int) and n > 0 else None


def check_malicious_count(num_clients: int, num_malicious: int) -> Tuple[int, int]:
    """Validate a count of malicious clients against the client count."""
    check_positive_int("num_clients", num_clients)
    check_positive_int("num_malicious", num_malicious, allow_zero=True)
    if num_malicious > num_clients:
        raise ValueError(f"num_malicious ({num_malicious}) is larger than num_clients ({num_clients})")
    return num_clients, num_malicious


def make_fl_clients(
    honest_cls: type,
    malicious_cls: type,
    model_fn: Callable[[], torch.nn.Module],
    num_clients: int,
    num_malicious: int,
    **client_kwargs,
) -> List:
    """``num_clients`` clients with ids ``0..num_clients-1``; the last ``num_malicious`` are ``malicious_cls``.

    ``model_fn()`` builds each client's model (give every client the same initial weights, as FL does).
    """
    check_malicious_count(num_clients, num_malicious)
    if not (isinstance(honest_cls, type) and isinstance(malicious_cls, type)):
        raise TypeError("honest_cls and malicious_cls must be client classes")
    first_bad = num_clients - num_malicious
    return [
        (malicious_cls if i >= first_bad else honest_cls)(model_fn(), user_id=i, **client_kwargs)
        for i in range(num_clients)
    ]


def flatten_update(update: Sequence[torch.Tensor]) -> torch.Tensor:
    """One vector of an upload's tensors (float64)."""
    return torch.cat([torch.as_tensor(t).detach().reshape(-1).double() for t in update])
