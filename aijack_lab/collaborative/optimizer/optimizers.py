"""Optimizers that apply a list of aggregated gradients to a model's parameters (FedOpt, Reddi et al. 2021).

``step(grads)`` updates the parameters in place from ``grads`` (one tensor per parameter); with no
argument it uses each parameter's ``.grad``, so an instance can stand in for a server's torch
optimizer (``server.optimizer = AdamFLOptimizer(server.server_model.parameters(), lr=0.01)``).
"""
import abc
import math
from typing import Iterable, List, Optional, Sequence

import torch

from ...utils.validation import check_in_range, check_positive


class BaseFLOptimizer(abc.ABC):
    """Common argument checks and gradient preparation; subclasses implement ``step``."""

    def __init__(self, parameters: Iterable[torch.nn.Parameter], lr: float = 0.01, weight_decay: float = 0.0):
        self.parameters = list(parameters)
        if not self.parameters:
            raise ValueError("parameters is empty")
        for i, p in enumerate(self.parameters):
            if not torch.is_tensor(p):
                raise TypeError(f"parameters[{i}] is a {type(p).__name__}, not a tensor")
        self.lr = check_positive("lr", lr)
        self.weight_decay = check_positive("weight_decay", weight_decay, allow_zero=True)
        self.t = 0

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters:
            p.grad = None

    def _grads(self, grads: Optional[Sequence[torch.Tensor]]) -> List[torch.Tensor]:
        if grads is None:
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.parameters]
        grads = list(grads)
        if len(grads) != len(self.parameters):
            raise ValueError(f"got {len(grads)} gradients for {len(self.parameters)} parameters")
        out = []
        for i, (p, g) in enumerate(zip(self.parameters, grads)):
            g = torch.as_tensor(g, dtype=p.dtype)
            if g.numel() != p.numel():
                raise ValueError(f"grads[{i}] has {g.numel()} elements, parameter {i} has {p.numel()}")
            if not torch.isfinite(g).all():
                raise ValueError(f"grads[{i}] has NaN or inf entries")
            g = g.reshape(p.shape)
            if self.weight_decay:
                g = g + self.weight_decay * p.detach()
            out.append(g)
        return out

    @abc.abstractmethod
    def step(self, grads: Optional[Sequence[torch.Tensor]] = None) -> None:
        """Apply ``grads`` (or each parameter's ``.grad``) to the parameters in place."""


class SGDFLOptimizer(BaseFLOptimizer):
    """``w ← w − lr · (g + weight_decay · w)``."""

    @torch.no_grad()
    def step(self, grads: Optional[Sequence[torch.Tensor]] = None) -> None:
        for p, g in zip(self.parameters, self._grads(grads)):
            p.sub_(self.lr * g)
        self.t += 1


class AdamFLOptimizer(BaseFLOptimizer):
    """Adam (Kingma & Ba) on the aggregated gradient, with bias correction: FedAdam's server step."""

    def __init__(self, parameters, lr: float = 0.01, weight_decay: float = 0.0, beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8):
        super().__init__(parameters, lr=lr, weight_decay=weight_decay)
        self.beta1 = check_in_range("beta1", beta1, 0.0, 1.0, high_open=True)
        self.beta2 = check_in_range("beta2", beta2, 0.0, 1.0, high_open=True)
        self.epsilon = check_positive("epsilon", epsilon)
        self.m = [torch.zeros_like(p) for p in self.parameters]
        self.v = [torch.zeros_like(p) for p in self.parameters]

    @torch.no_grad()
    def step(self, grads: Optional[Sequence[torch.Tensor]] = None) -> None:
        gs = self._grads(grads)
        self.t += 1
        c1 = 1.0 - self.beta1 ** self.t
        c2 = 1.0 - self.beta2 ** self.t
        for p, g, m, v in zip(self.parameters, gs, self.m, self.v):
            m.mul_(self.beta1).add_((1 - self.beta1) * g)
            v.mul_(self.beta2).add_((1 - self.beta2) * g * g)
            p.sub_(self.lr * (m / c1) / ((v / c2).sqrt() + self.epsilon))
