"""DSFL client: uploads soft predictions on unlabeled public data and distils the global soft labels."""
from typing import Optional

import torch
import torch.nn.functional as F

from ..distillation import DistillationClient, soft_cross_entropy


class DSFLClient(DistillationClient):
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
        super().__init__(model, public_dataloader, output_dim, batch_size, user_id=user_id, device=device)
        self.round_decimal = round_decimal
        self.global_logit: Optional[torch.Tensor] = None

    def upload(self) -> torch.Tensor:
        probs = F.softmax(self.public_logits(), dim=1)
        if self.round_decimal is not None:
            probs = torch.round(probs, decimals=self.round_decimal)
        return probs

    def download(self, global_logit: torch.Tensor) -> None:
        self.global_logit = self.checked_download(global_logit, "soft labels")

    def approach_consensus(self, consensus_optimizer, epoch: int = 1, seed: int = 0) -> float:
        if self.global_logit is None:
            raise ValueError(f"client {self.user_id} has not downloaded soft labels yet")
        return self.train_on_public(consensus_optimizer, epoch, seed,
                                    lambda idx, x: soft_cross_entropy(self.model(x), self.global_logit[idx]))
