"""FedProx client: local training with the proximal term μ/2·‖w − w_global‖²."""
from typing import Dict, Optional

import torch

from ...utils.validation import check_positive
from ..fedavg import FedAVGClient


class FedProxClient(FedAVGClient):
    """A FedAVG client whose local objective adds ``mu / 2 * ||w - w_t||^2``.

    ``w_t`` is the global model the client received at the start of the round
    (``prev_parameters``), so local training cannot drift far from it on non-IID data.
    ``mu=0`` is FedAVG. Other arguments as ``FedAVGClient``.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        user_id: int = 0,
        lr: float = 0.1,
        mu: float = 0.01,
        send_gradient: bool = True,
        optimizer_type_for_global_grad: str = "sgd",
        server_side_update: bool = True,
        optimizer_kwargs_for_global_grad: Optional[Dict] = None,
        device: str = "cpu",
    ):
        super().__init__(
            model,
            user_id=user_id,
            lr=lr,
            send_gradient=send_gradient,
            server_side_update=server_side_update,
            optimizer_type_for_global_grad=optimizer_type_for_global_grad,
            optimizer_kwargs_for_global_grad=optimizer_kwargs_for_global_grad,
            device=device,
        )
        self.mu = check_positive("mu", mu, allow_zero=True)

    def proximal_term(self) -> torch.Tensor:
        """``mu / 2 * sum ||w - w_t||^2`` over all parameters (differentiable in ``w``)."""
        total = torch.zeros(())
        for p, g in zip(self.model.parameters(), self.prev_parameters):
            total = total + ((p - g.to(p.device)) ** 2).sum()
        return self.mu / 2.0 * total

    def begin_local_training(self) -> None:
        self.last_proximal_term = 0.0

    def local_objective(self, data, target, criterion):
        """Task loss plus the proximal term; the task loss is what is reported."""
        task_loss = criterion(self(data), target)
        prox = self.proximal_term()
        self.last_proximal_term = prox.item()
        return task_loss + prox, task_loss.item()
