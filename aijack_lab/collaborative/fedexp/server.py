"""FedEXP server: FedAVG with an adaptive, extrapolated global step size."""
import copy
from typing import Dict, List, Optional, Sequence

import torch

from ...utils.validation import check_positive
from ..core import load_parameters, parameters_to_list
from ..fedavg import FedAVGServer


class FedEXPServer(FedAVGServer):
    """FedEXP (Jhunjhunwala et al., 2023). With client updates ``Δ_i = w_t − w_i`` and their weighted
    mean ``Δ̄``, the global step is

    ``η_g = max(1, Σ_i p_i ‖Δ_i‖² / (2 (‖Δ̄‖² + ε)))``,  ``w_{t+1} = w_t − η_g Δ̄``.

    When client updates disagree (non-IID data), ``‖Δ̄‖`` is small relative to the individual
    updates and the server extrapolates (``η_g > 1``); ``η_g = 1`` is FedAVG. ``eta_history``
    keeps each round's step. Clients' pseudo-gradients are ``Δ_i / lr``, so ``lr`` must match
    the clients' ``lr`` (as for FedAVG). FedEXP updates the global model itself, so it needs
    ``server_side_update=True``.

    Extrapolated steps make the iterates oscillate around the optimum, so, as the paper does, the
    model to evaluate (``evaluation_model()``, used by ``FedAVGAPI``'s validation) is the mean of
    the last two global models, ``(w_t + w_{t-1}) / 2``; training always continues from ``w_t``.

    Args:
        epsilon: the ε of the step size (keeps it bounded when ``Δ̄`` is tiny).
        average_last_two: evaluate ``(w_t + w_{t-1}) / 2`` (default) rather than ``w_t``.
        Others as ``FedAVGServer``.
    """

    def __init__(
        self,
        clients: List,
        global_model: torch.nn.Module,
        server_id: int = 0,
        lr: float = 0.1,
        epsilon: float = 1e-3,
        average_last_two: bool = True,
        optimizer_type: str = "sgd",
        server_side_update: bool = True,
        optimizer_kwargs: Optional[Dict] = None,
        weight: Optional[Sequence[float]] = None,
        device: str = "cpu",
    ):
        if not server_side_update:
            raise ValueError("FedEXPServer needs server_side_update=True: the step size is computed on the server")
        super().__init__(
            clients, global_model, server_id=server_id, lr=lr, optimizer_type=optimizer_type,
            server_side_update=server_side_update, optimizer_kwargs=optimizer_kwargs, weight=weight, device=device,
        )
        self.epsilon = check_positive("epsilon", epsilon, allow_zero=True)
        self.eta_g: Optional[float] = None
        self.eta_history: List[float] = []
        self.average_last_two = bool(average_last_two)
        self.previous_parameters: Optional[List[torch.Tensor]] = None

    def evaluation_model(self) -> torch.nn.Module:
        """The model to evaluate: ``(w_t + w_{t-1}) / 2`` after a round (a copy), else ``w_t`` itself."""
        if not self.average_last_two or self.previous_parameters is None:
            return self.server_model
        model = copy.deepcopy(self.server_model)
        with torch.no_grad():
            for p, prev in zip(model.parameters(), self.previous_parameters):
                p.add_(prev.to(p.dtype)).mul_(0.5)
        return model

    @staticmethod
    def _sqnorm(tensors) -> float:
        return float(sum(float((t.detach().double() ** 2).sum()) for t in tensors))

    def extrapolation_step(self, deltas: List[List[torch.Tensor]], weights: Sequence[float]) -> float:
        """``η_g`` for client updates ``deltas`` (in parameter units) and aggregation ``weights``."""
        mean = self.aggregate(deltas, weights)
        spread = sum(w * self._sqnorm(d) for w, d in zip(weights, deltas))
        eta = spread / (2.0 * (self._sqnorm(mean) + self.epsilon))
        return max(1.0, eta)

    def _apply(self, deltas: List[List[torch.Tensor]]) -> None:
        self.last_weights = self.aggregation_weights()
        self.eta_g = self.extrapolation_step(deltas, self.last_weights)
        self.eta_history.append(self.eta_g)
        mean = self.aggregate(deltas, self.last_weights)
        self.previous_parameters = [p.detach().clone() for p in self.server_model.parameters()]
        self.aggregated_gradients = [d / self.lr for d in mean]
        with torch.no_grad():
            for p, d in zip(self.server_model.parameters(), mean):
                p.sub_(self.eta_g * d.reshape(p.shape).to(p.dtype))

    def update_from_gradients(self) -> None:
        self._apply([[g * self.lr for g in update] for update in self.uploaded_gradients])

    def update_from_parameters(self) -> None:
        current = parameters_to_list(self.server_model)
        self._apply([[c - p for c, p in zip(current, update)] for update in self.uploaded_models])
