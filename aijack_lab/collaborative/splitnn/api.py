"""Training a split network across parties; every tensor that crosses is passed through ``transfer``."""
from typing import Callable, List, Optional

import torch

from ...utils.metrics import accuracy
from ...utils.progress import ProgressCallback
from ...utils.validation import check_positive_int
from ..core import BaseFedAPI
from .client import SplitNNClient


class SplitNNAPI(BaseFedAPI):
    """``SplitNNAPI(clients, optimizers, dataloader, criterion, num_epoch).run()``.

    ``clients[0]`` holds the features and the first segment; the last client holds the labels, the
    last segment and the loss. Per batch, activations travel forward party to party and their
    gradients travel back; nothing else crosses. Every crossing goes through ``transfer(kind,
    sender, receiver, tensor)`` (``kind`` is "activation" or "gradient"), which managers override
    (e.g. the norm label-leakage attack) and ``on_transfer`` hooks observe.

    Args:
        clients: the parties, first (features) to last (labels).
        optimizers: one per party.
        dataloader: ``(x, y)`` batches (x goes to the first party, y to the last).
        criterion: the loss on the last party's output.
        num_epoch: epochs.
        validation_dataloader: ``(x, y)`` tensors or batches; accuracy recorded per epoch.
        on_round: ``hook(api, info)`` after each epoch; ``progress(epoch_done, num_epoch)``.
    """

    def __init__(self, clients: List[SplitNNClient], optimizers: List, dataloader, criterion, num_epoch: int = 1,
                 validation_dataloader=None, on_round=None, progress: Optional[ProgressCallback] = None,
                 on_transfer: Optional[Callable] = None):
        super().__init__(on_round=on_round, progress=progress)
        if len(clients) < 2:
            raise ValueError("split learning needs at least two parties")
        if len(optimizers) != len(clients):
            raise ValueError(f"got {len(optimizers)} optimizers for {len(clients)} parties")
        self.clients, self.optimizers = clients, optimizers
        self.dataloader, self.criterion = dataloader, criterion
        self.num_epoch = check_positive_int("num_epoch", num_epoch)
        self.validation_dataloader = validation_dataloader
        self.transfer_hooks: List[Callable] = [on_transfer] if on_transfer else []
        self.num_communication = self.num_epoch

    # -- communication ---------------------------------------------------------------------------
    def transfer(self, kind: str, sender: int, receiver: int, tensor: torch.Tensor) -> torch.Tensor:
        for hook in self.transfer_hooks:
            hook(kind, sender, receiver, tensor)
        return tensor

    # -- one batch -----------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for i, client in enumerate(self.clients[:-1]):
            if i > 0:
                h = client.receive_activation(h)
            h = self.transfer("activation", i, i + 1, client.upload(h))
        last = self.clients[-1]
        return last.model(last.receive_activation(h))

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()
        for i in range(len(self.clients) - 1, 0, -1):
            grad = self.transfer("gradient", i, i - 1, self.clients[i].grad_to_send())
            self.clients[i - 1].download(grad)

    def train_batch(self, x: torch.Tensor, y: torch.Tensor) -> float:
        for opt in self.optimizers:
            opt.zero_grad()
        out = self.forward(x)
        loss = self.criterion(out, y)
        self.backward(loss)
        for opt in self.optimizers:
            opt.step()
        return loss.item()

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        for c in self.clients:
            c.model.eval()
        h = x
        for c in self.clients:
            h = c.model(h)
        for c in self.clients:
            c.model.train()
        return h

    def evaluate(self) -> Optional[float]:
        if self.validation_dataloader is None:
            return None
        data = self.validation_dataloader
        if isinstance(data, tuple) and torch.is_tensor(data[0]):
            return accuracy(self.predict(data[0]), data[1])
        correct = total = 0
        for x, y in data:
            correct += (self.predict(x).argmax(1) == y).sum().item()
            total += len(y)
        return correct / total

    def run(self):
        for epoch in range(self.num_epoch):
            start = self._now()
            losses = [self.train_batch(x, y) for x, y in self.dataloader]
            info = {"round": epoch, "loss": sum(losses) / max(1, len(losses)), "accuracy": self.evaluate(),
                    "seconds": self._now() - start}
            self._end_round(info, self.num_epoch)
        return self.history
