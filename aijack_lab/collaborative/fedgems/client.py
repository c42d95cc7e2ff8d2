"""FedGEMS client: a small model that uploads public logits and distills the server's knowledge."""
from typing import Optional

import torch
import torch.nn.functional as F

from ...utils.validation import check_positive, check_positive_int
from ..core import BaseClient, check_finite_update
from ..distillation import PublicData, logits_on


class FedGEMSClient(BaseClient):
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
        super().__init__(model, user_id=user_id)
        self.public_dataloader = public_dataloader
        self.public = PublicData(public_dataloader, batch_size=batch_size)
        if self.public.y is None:
            raise ValueError("FedGEMS needs labeled public data")
        self.output_dim = check_positive_int("output_dim", output_dim)
        self.base_loss_func = base_loss_func if base_loss_func is not None else torch.nn.CrossEntropyLoss()
        self.temperature = check_positive("temperature", temperature)
        self.device = device
        self.knowledge: Optional[torch.Tensor] = None

    def upload(self) -> torch.Tensor:
        logits = logits_on(self.model, self.public)
        if logits.dim() != 2 or logits.shape[1] != self.output_dim:
            raise ValueError(f"client {self.user_id}: model outputs have shape {tuple(logits.shape[1:])}, expected ({self.output_dim},) (output_dim)")
        check_finite_update([logits], f"client {self.user_id}")
        return logits

    def download(self, knowledge: torch.Tensor) -> None:
        if knowledge.shape != (len(self.public), self.output_dim):
            raise ValueError(f"client {self.user_id}: knowledge has shape {tuple(knowledge.shape)}, expected {(len(self.public), self.output_dim)}")
        self.knowledge = knowledge.detach().clone()

    def approach_server(self, optimizer, epoch: int = 1, seed: int = 0) -> float:
        if self.knowledge is None:
            raise ValueError(f"client {self.user_id} has not downloaded the server's knowledge yet")
        T = self.temperature
        self.model.train()
        last = float("nan")
        for e in range(epoch):
            total, count = 0.0, 0
            for idx, x in self.public.batches(shuffle_seed=seed * 1009 + e * 31 + self.user_id):
                optimizer.zero_grad()
                out = self.model(x)
                kd = F.kl_div(F.log_softmax(out / T, dim=1), F.softmax(self.knowledge[idx] / T, dim=1), reduction="batchmean") * T * T
                loss = self.base_loss_func(out, self.public.y[idx]) + kd
                loss.backward()
                optimizer.step()
                total += loss.item() * len(idx)
                count += len(idx)
            last = total / count
        return last
