"""FedGEMS client: a small model that uploads public logits and distills the server's knowledge."""
from typing import Optional

import torch
import torch.nn.functional as F

from ...utils.validation import check_positive
from ..distillation import DistillationClient


class FedGEMSClient(DistillationClient):
    """A FedGEMS party (small model, any architecture with ``output_dim`` outputs).

    ``upload()``: logits on the public data. ``download(knowledge)``: the server's per-sample
    knowledge logits. ``approach_server(optimizer)``: on the labeled public data, minimise
    ``CE(y, out) + T² · KL(softmax(knowledge/T) || softmax(out/T))``.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        public_dataloader,
        output_dim: int = 1,
        batch_size: int = 32,
        user_id: int = 0,
        base_loss_func=None,
        temperature: float = 1.0,
        device: str = "cpu",
    ):
        super().__init__(model, public_dataloader, output_dim, batch_size, user_id=user_id, device=device)
        if self.public.y is None:
            raise ValueError("FedGEMS needs labeled public data")
        self.base_loss_func = base_loss_func if base_loss_func is not None else torch.nn.CrossEntropyLoss()
        self.temperature = check_positive("temperature", temperature)
        self.knowledge: Optional[torch.Tensor] = None

    def upload(self) -> torch.Tensor:
        return self.public_logits()

    def download(self, knowledge: torch.Tensor) -> None:
        self.knowledge = self.checked_download(knowledge, "knowledge")

    def approach_server(self, optimizer, epoch: int = 1, seed: int = 0) -> float:
        if self.knowledge is None:
            raise ValueError(f"client {self.user_id} has not downloaded the server's knowledge yet")
        T = self.temperature

        def batch_loss(idx, x):
            out = self.model(x)
            kd = F.kl_div(F.log_softmax(out / T, dim=1), F.softmax(self.knowledge[idx] / T, dim=1), reduction="batchmean") * T * T
            return self.base_loss_func(out, self.public.y[idx]) + kd

        return self.train_on_public(optimizer, epoch, seed, batch_loss)
