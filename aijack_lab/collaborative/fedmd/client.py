"""FedMD client: uploads its class scores on the public data and digests the consensus."""
from typing import Optional

import torch

from ...utils.validation import check_positive_int
from ..core import BaseClient, check_finite_update
from ..distillation import PublicData, logits_on


class FedMDClient(BaseClient):
    """A FedMD party. Its model may have any architecture with ``output_dim`` outputs.

    ``upload()`` returns its logits on the public data (an ``(n_public, output_dim)`` tensor, never
    parameters); ``download(consensus)`` stores the server's consensus; ``approach_consensus``
    trains the model to reproduce it on the public inputs ("digest").

    Args:
        model: the local model.
        public_dataloader: the public data (its inputs are what the logits are computed on).
        output_dim: number of model outputs (classes).
        batch_size: batch size of the digest step.
        base_loss_func: supervised loss; consensus_loss_func: distance to the consensus
            (L1 on logits, as in the FedMD paper).
        round_decimal: round uploaded logits to this many decimals (None: no rounding).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        public_dataloader,
        output_dim: int = 1,
        batch_size: int = 8,
        user_id: int = 0,
        base_loss_func=None,
        consensus_loss_func=None,
        round_decimal: Optional[int] = None,
        device: str = "cpu",
    ):
        super().__init__(model, user_id=user_id)
        self.public_dataloader = public_dataloader
        self.public = PublicData(public_dataloader, batch_size=batch_size)
        self.output_dim = check_positive_int("output_dim", output_dim)
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.base_loss_func = base_loss_func if base_loss_func is not None else torch.nn.CrossEntropyLoss()
        self.consensus_loss_func = consensus_loss_func if consensus_loss_func is not None else torch.nn.L1Loss()
        self.round_decimal = round_decimal
        self.device = device
        self.predicted_values_of_server: Optional[torch.Tensor] = None

    def upload(self) -> torch.Tensor:
        logits = logits_on(self.model, self.public)
        if logits.dim() != 2 or logits.shape[1] != self.output_dim:
            raise ValueError(
                f"client {self.user_id}: model outputs have shape {tuple(logits.shape[1:])}, expected ({self.output_dim},) "
                "(output_dim)"
            )
        if self.round_decimal is not None:
            logits = torch.round(logits, decimals=self.round_decimal)
        check_finite_update([logits], f"client {self.user_id}")
        return logits

    def download(self, predicted_values_of_server: torch.Tensor) -> None:
        if predicted_values_of_server.shape != (len(self.public), self.output_dim):
            raise ValueError(
                f"client {self.user_id}: consensus has shape {tuple(predicted_values_of_server.shape)}, "
                f"expected {(len(self.public), self.output_dim)}"
            )
        self.predicted_values_of_server = predicted_values_of_server.detach().clone()

    def approach_consensus(self, consensus_optimizer, epoch: int = 1, seed: int = 0) -> float:
        """Train on the public inputs towards the downloaded consensus; returns the last epoch's mean loss."""
        if self.predicted_values_of_server is None:
            raise ValueError(f"client {self.user_id} has not downloaded a consensus yet")
        self.model.train()
        loss_mean = float("nan")
        for e in range(epoch):
            total, count = 0.0, 0
            for idx, x in self.public.batches(shuffle_seed=seed * 1009 + e * 31 + self.user_id):
                consensus_optimizer.zero_grad()
                loss = self.consensus_loss_func(self.model(x.to(self.device)), self.predicted_values_of_server[idx])
                loss.backward()
                consensus_optimizer.step()
                total += loss.item() * len(idx)
                count += len(idx)
            loss_mean = total / count
        return loss_mean
