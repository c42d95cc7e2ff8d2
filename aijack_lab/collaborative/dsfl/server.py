"""DSFL server: entropy-reduced aggregation (ERA) of the clients' soft labels, and global distillation."""
from typing import List, Optional

import torch

from ...utils.validation import check_positive, check_positive_int
from ..core import BaseServer, check_finite_update
from ..distillation import PublicData, soft_cross_entropy


def mean_entropy(probs: torch.Tensor) -> float:
    """Mean Shannon entropy (nats) of the rows of ``probs``."""
    return float(-(probs * torch.log(probs.clamp_min(1e-12))).sum(dim=1).mean())


class DSFLServer(BaseServer):
    """DSFL (Itahara et al.): averages the clients' soft labels on the unlabeled public data and,
    with ``aggregation="ERA"``, sharpens the average, ``softmax(mean / era_temperature)``
    (entropy-reduction aggregation: averaging non-IID clients' predictions gives flat,
    uninformative labels; ERA restores confident ones). ``aggregation="SA"`` is the plain
    average. The global model is trained on the aggregated labels (``update_globalmodel``).
    ``entropy_before``/``entropy_after`` hold the mean entropy of the average and of the result.
    """

    def __init__(
        self,
        clients: List,
        global_model: torch.nn.Module,
        public_dataloader=None,
        aggregation: str = "ERA",
        era_temperature: float = 0.1,
        batch_size: int = 32,
        server_id: int = 0,
        device: str = "cpu",
    ):
        super().__init__(clients, global_model, server_id=server_id)
        if public_dataloader is None:
            public_dataloader = getattr(clients[0], "public_dataloader", None) if clients else None
            if public_dataloader is None:
                raise ValueError("DSFLServer needs public_dataloader (or clients that hold one)")
        self.public = PublicData(public_dataloader, batch_size=batch_size)
        if aggregation not in ("ERA", "SA"):
            raise ValueError(f"aggregation must be 'ERA' or 'SA', got {aggregation!r}")
        self.aggregation = aggregation
        self.era_temperature = check_positive("era_temperature", era_temperature)
        self.device = device
        self.uploaded_probs: List[torch.Tensor] = []
        self.global_logit: Optional[torch.Tensor] = None
        self.entropy_before = float("nan")
        self.entropy_after = float("nan")

    def receive(self) -> None:
        uploads = []
        for i, client in enumerate(self.clients):
            probs = client.upload()
            check_finite_update([probs], f"client {getattr(client, 'user_id', i)}")
            if uploads and probs.shape != uploads[0].shape:
                raise ValueError(f"client {getattr(client, 'user_id', i)} sent soft labels of shape {tuple(probs.shape)}, others {tuple(uploads[0].shape)}")
            uploads.append(probs)
        self.uploaded_probs = uploads

    def update(self) -> torch.Tensor:
        if not self.uploaded_probs:
            raise ValueError("no client soft labels to aggregate")
        mean = torch.stack(self.uploaded_probs).mean(dim=0)
        self.entropy_before = mean_entropy(mean)
        if self.aggregation == "ERA":
            agg = torch.softmax(mean / self.era_temperature, dim=1)
        else:
            agg = mean
        self.entropy_after = mean_entropy(agg)
        self.global_logit = agg
        return agg

    def update_globalmodel(self, global_optimizer, epoch: int = 1, seed: int = 0) -> float:
        """Distil the aggregated soft labels into the global model; returns the last epoch's mean loss."""
        if self.global_logit is None:
            raise ValueError("nothing aggregated yet")
        self.server_model.train()
        last = float("nan")
        for e in range(epoch):
            total, count = 0.0, 0
            for idx, x in self.public.batches(shuffle_seed=seed * 7919 + e):
                global_optimizer.zero_grad()
                loss = soft_cross_entropy(self.server_model(x), self.global_logit[idx])
                loss.backward()
                global_optimizer.step()
                total += loss.item() * len(idx)
                count += len(idx)
            last = total / count
        return last

    def distribute(self) -> None:
        for client in self.clients:
            client.download(self.global_logit)

    def action(self) -> None:
        self.receive()
        self.update()
        self.distribute()
