"""FedAVG client (McMahan et al., AISTATS 2017)."""
from typing import Dict, List, Optional, Sequence, Union

import torch

from ...utils.validation import check_positive
from ..core import BaseClient, load_parameters, parameters_to_list
from ..optimizers import make_parameter_optimizer


class FedAVGClient(BaseClient):
    """Trains locally and uploads either its parameters or its pseudo-gradient.

    The pseudo-gradient is ``(θ_start - θ_end) / lr``: with ``lr`` equal to the server's, a server
    step ``θ -= lr · Σ w_i g_i`` gives exactly the weighted mean of the clients' parameters, and
    after one SGD step at that lr it is the batch gradient (what gradient-inversion attacks use).

    Args:
        model: the local model.
        user_id: the client's id (used in error messages and by managers).
        lr: scale of the pseudo-gradient (match the server's ``lr``).
        send_gradient: upload the pseudo-gradient (True) or the parameters (False).
        server_side_update: if False, the server sends the aggregated gradient and each client
            applies it itself (needed when the server cannot read the updates, e.g. under
            Paillier encryption or sparsification).
        optimizer_type_for_global_grad: "sgd" or "adam", the optimizer applying a received gradient.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        user_id: int = 0,
        lr: float = 0.1,
        send_gradient: bool = True,
        server_side_update: bool = True,
        optimizer_type_for_global_grad: str = "sgd",
        optimizer_kwargs_for_global_grad: Optional[Dict] = None,
        device: str = "cpu",
    ):
        super().__init__(model, user_id=user_id)
        self.lr = check_positive("lr", lr)
        self.send_gradient = send_gradient
        self.server_side_update = server_side_update
        self.device = device
        self.num_samples: Optional[int] = None
        self.prev_parameters: List[torch.Tensor] = parameters_to_list(self.model)
        self.optimizer_for_global_grad = None
        if not server_side_update:
            self.optimizer_for_global_grad = make_parameter_optimizer(
                optimizer_type_for_global_grad,
                self.model.parameters(),
                lr=self.lr,
                **(optimizer_kwargs_for_global_grad or {}),
            )

    # -- training -----------------------------------------------------------------------------
    def local_train(self, local_epoch: int, criterion, trainloader, optimizer, communication_id: int = 0) -> List[float]:
        """Run ``local_epoch`` epochs over ``trainloader``; return the mean reported loss of each epoch.

        Protocols change the local objective, not this loop: they override ``local_objective``
        (and ``begin_local_training``/``end_local_training`` for per-round set-up).
        """
        self.train()
        self.begin_local_training()
        epoch_losses = []
        count = 0
        for _ in range(local_epoch):
            total, count = 0.0, 0
            for data, target in trainloader:
                data, target = data.to(self.device), target.to(self.device)
                optimizer.zero_grad()
                objective, reported = self.local_objective(data, target, criterion)
                objective.backward()
                optimizer.step()
                total += reported * len(target)
                count += len(target)
            if count == 0:
                raise ValueError(f"client {self.user_id} has an empty dataloader")
            epoch_losses.append(total / count)
        self.num_samples = count
        self.end_local_training()
        return epoch_losses

    def local_objective(self, data: torch.Tensor, target: torch.Tensor, criterion):
        """``(loss to minimise, loss value to report)`` on one batch; FedAVG minimises the task loss."""
        loss = criterion(self(data), target)
        return loss, loss.item()

    def begin_local_training(self) -> None:
        """Called before a round's local epochs (e.g. to snapshot the received global model)."""

    def end_local_training(self) -> None:
        """Called after a round's local epochs."""

    # -- communication ------------------------------------------------------------------------
    def upload(self) -> List[torch.Tensor]:
        """What this client sends under its ``send_gradient`` setting (the server's ``receive``
        calls ``upload_gradients``/``upload_parameters`` directly; managers override those)."""
        return self.upload_gradients() if self.send_gradient else self.upload_parameters()

    def upload_parameters(self) -> List[torch.Tensor]:
        return parameters_to_list(self.model)

    def upload_gradients(self) -> List[torch.Tensor]:
        return [(prev - p.detach()) / self.lr for prev, p in zip(self.prev_parameters, self.model.parameters())]

    def download(self, payload: Union[Sequence, Dict]) -> None:
        """Take the global parameters (a dict by name) or apply an aggregated gradient (a list)."""
        if isinstance(payload, dict):
            load_parameters(self.model, payload)
        else:
            self.apply_global_gradient(payload)
        self.prev_parameters = parameters_to_list(self.model)

    def apply_global_gradient(self, gradients: Sequence[torch.Tensor]) -> None:
        params = list(self.model.parameters())
        if len(params) != len(gradients):
            raise ValueError(f"client {self.user_id}: expected {len(params)} gradient tensors, got {len(gradients)}")
        # start from the last synchronised point so local training does not leak into the global step
        load_parameters(self.model, self.prev_parameters)
        self.optimizer_for_global_grad.zero_grad()
        for p, g in zip(params, gradients):
            p.grad = torch.as_tensor(g, dtype=p.dtype).reshape(p.shape).clone()
        self.optimizer_for_global_grad.step()
