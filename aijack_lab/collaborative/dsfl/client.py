"""DSFL client: uploads soft predictions on unlabeled public data and distils the global soft labels."""
from typing import Optional

import torch
import torch.nn.functional as F

from ...utils.validation import check_positive_int
from ..core import BaseClient, check_finite_update
from ..distillation import PublicData, logits_on, soft_cross_entropy


class DSFLClient(BaseClient):
    """A DSFL party. ``upload()`` returns ``softmax(model(x_public))`` (the public data needs no
    labels); ``download(global_logit)`` takes the server's aggregated soft labels;
    ``approach_consensus(optimizer)`` minimises the cross-entropy to them on the public inputs.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        public_dataloader,
        output_dim: int = 1,
        batch_size: int = 32,
        round_decimal: Optional[int] = None,
        user_id: int = 0,
        device: str = "cpu",
    ):
        super().__init__(model, user_id=user_id)
        self.public_dataloader = public_dataloader
        self.public = PublicData(public_dataloader, batch_size=batch_size)
        self.output_dim = check_positive_int("output_dim", output_dim)
        self.round_decimal = round_decimal
        self.device = device
        self.global_logit: Optional[torch.Tensor] = None

    def upload(self) -> torch.Tensor:
        logits = logits_on(self.model, self.public)
        if logits.dim() != 2 or logits.shape[1] != self.output_dim:
            raise ValueError(f"client {self.user_id}: model outputs have shape {tuple(logits.shape[1:])}, expected ({self.output_dim},) (output_dim)")
        check_finite_update([logits], f"client {self.user_id}")
        probs = F.softmax(logits, dim=1)
        if self.round_decimal is not None:
            probs = torch.round(probs, decimals=self.round_decimal)
        return probs

    def download(self, global_logit: torch.Tensor) -> None:
        if global_logit.shape != (len(self.public), self.output_dim):
            raise ValueError(f"client {self.user_id}: soft labels have shape {tuple(global_logit.shape)}, expected {(len(self.public), self.output_dim)}")
        self.global_logit = global_logit.detach().clone()

    def approach_consensus(self, consensus_optimizer, epoch: int = 1, seed: int = 0) -> float:
        if self.global_logit is None:
            raise ValueError(f"client {self.user_id} has not downloaded soft labels yet")
        self.model.train()
        last = float("nan")
        for e in range(epoch):
            total, count = 0.0, 0
            for idx, x in self.public.batches(shuffle_seed=seed * 1009 + e * 31 + self.user_id):
                consensus_optimizer.zero_grad()
                loss = soft_cross_entropy(self.model(x), self.global_logit[idx])
                loss.backward()
                consensus_optimizer.step()
                total += loss.item() * len(idx)
                count += len(idx)
            last = total / count
        return last
