"""FedMD client: uploads its class scores on the public data and digests the consensus."""
from typing import Optional

import torch

from ...utils.validation import check_positive_int
from ..distillation import DistillationClient


class FedMDClient(DistillationClient):
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
        super().__init__(model, public_dataloader, output_dim, batch_size, user_id=user_id, device=device)
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.base_loss_func = base_loss_func if base_loss_func is not None else torch.nn.CrossEntropyLoss()
        self.consensus_loss_func = consensus_loss_func if consensus_loss_func is not None else torch.nn.L1Loss()
        self.round_decimal = round_decimal
        self.predicted_values_of_server: Optional[torch.Tensor] = None

    def upload(self) -> torch.Tensor:
        logits = self.public_logits()
        if self.round_decimal is not None:
            logits = torch.round(logits, decimals=self.round_decimal)
        return logits

    def download(self, predicted_values_of_server: torch.Tensor) -> None:
        self.predicted_values_of_server = self.checked_download(predicted_values_of_server, "consensus")

    def approach_consensus(self, consensus_optimizer, epoch: int = 1, seed: int = 0) -> float:
        """Train on the public inputs towards the downloaded consensus; returns the last epoch's mean loss."""
        if self.predicted_values_of_server is None:
            raise ValueError(f"client {self.user_id} has not downloaded a consensus yet")
        return self.train_on_public(
            consensus_optimizer, epoch, seed,
            lambda idx, x: self.consensus_loss_func(self.model(x.to(self.device)), self.predicted_values_of_server[idx]))
