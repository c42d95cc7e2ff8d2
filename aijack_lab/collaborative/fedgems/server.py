"""FedGEMS server: a larger model that learns from the clients by selective knowledge fusion."""
from typing import List, Optional

import torch
import torch.nn.functional as F

from ...utils.validation import check_in_range, check_positive, check_positive_int
from ..core import BaseServer, check_finite_update
from ..distillation import PublicData, logits_on


class FedGEMSServer(BaseServer):
    """FedGEMS (Cheng et al., 2021), on the labeled public data, per sample:

    - *self-evaluation*: if the server's own prediction is correct with probability ≥ ``epsilon``
      on the true label, it is reliable: the server learns from the label only and its own
      logits are the knowledge sent back;
    - otherwise *selective knowledge fusion*: among the clients whose prediction is correct, their
      soft predictions are fused with weights ∝ exp(−entropy) (confident clients count more);
      the server distils the fused prediction (plus the label loss), and the fused logits are
      the knowledge sent back;
    - if no client is correct either, the server learns from the label only.

    ``fusion_stats`` counts the samples in each case for the last round.
    """

    def __init__(
        self,
        clients: List,
        server_model: torch.nn.Module,
        public_dataloader=None,
        output_dim: int = 1,
        epsilon: float = 0.75,
        temperature: float = 1.0,
        base_loss_func=None,
        batch_size: int = 32,
        server_id: int = 0,
        device: str = "cpu",
    ):
        if server_model is None:
            raise ValueError("FedGEMSServer needs a server_model (the larger global model)")
        super().__init__(clients, server_model, server_id=server_id)
        if public_dataloader is None:
            public_dataloader = getattr(clients[0], "public_dataloader", None) if clients else None
            if public_dataloader is None:
                raise ValueError("FedGEMSServer needs public_dataloader (or clients that hold one)")
        self.public = PublicData(public_dataloader, batch_size=batch_size)
        if self.public.y is None:
            raise ValueError("FedGEMS needs labeled public data")
        self.output_dim = check_positive_int("output_dim", output_dim)
        self.epsilon = check_in_range("epsilon", epsilon, 0.0, 1.0)
        self.temperature = check_positive("temperature", temperature)
        self.base_loss_func = base_loss_func if base_loss_func is not None else torch.nn.CrossEntropyLoss(reduction="none")
        self.device = device
        self.uploaded_logits: List[torch.Tensor] = []
        self.fused_probs: Optional[torch.Tensor] = None  # per sample, NaN rows where no client is correct
        self.knowledge: Optional[torch.Tensor] = None
        self.fusion_stats = {}

    def receive(self) -> None:
        uploads = []
        for i, client in enumerate(self.clients):
            logits = client.upload()
            check_finite_update([logits], f"client {getattr(client, 'user_id', i)}")
            if logits.shape != (len(self.public), self.output_dim):
                raise ValueError(f"client {getattr(client, 'user_id', i)} sent logits of shape {tuple(logits.shape)}, expected {(len(self.public), self.output_dim)}")
            uploads.append(logits)
        self.uploaded_logits = uploads

    def fuse(self) -> torch.Tensor:
        """Entropy-weighted mean of the correct clients' soft predictions (rows of NaN where none is correct)."""
        probs = torch.stack([F.softmax(l / self.temperature, dim=1) for l in self.uploaded_logits])  # K, N, C
        correct = probs.argmax(dim=2) == self.public.y.unsqueeze(0)  # K, N
        entropy = -(probs * torch.log(probs.clamp_min(1e-12))).sum(dim=2)
        w = torch.exp(-entropy) * correct
        wsum = w.sum(dim=0)
        fused = (w.unsqueeze(2) * probs).sum(dim=0) / wsum.clamp_min(1e-12).unsqueeze(1)
        fused[wsum == 0] = float("nan")
        self.fused_probs = fused
        return fused

    def self_evaluation(self) -> torch.Tensor:
        """Boolean mask of the public samples the server already predicts reliably."""
        probs = F.softmax(logits_on(self.server_model, self.public), dim=1)
        y = self.public.y
        return (probs.argmax(dim=1) == y) & (probs[torch.arange(len(y)), y] >= self.epsilon)

    def update(self, server_optimizer=None, epoch: int = 1, seed: int = 0) -> float:
        """Fuse the uploads and train the server model for ``epoch`` epochs; returns the last mean loss."""
        if not self.uploaded_logits:
            raise ValueError("no client logits to fuse")
        fused = self.fuse()
        has_fused = ~torch.isnan(fused[:, 0])
        T = self.temperature
        last = float("nan")
        if server_optimizer is not None:
            for e in range(epoch):
                reliable = self.self_evaluation()
                use_kd = has_fused & ~reliable
                self.server_model.train()
                total, count = 0.0, 0
                for idx, x in self.public.batches(shuffle_seed=seed * 7919 + e):
                    server_optimizer.zero_grad()
                    out = self.server_model(x)
                    loss_vec = self.base_loss_func(out, self.public.y[idx])
                    mask = use_kd[idx]
                    if mask.any():
                        kd = F.kl_div(F.log_softmax(out[mask] / T, dim=1), fused[idx][mask], reduction="none").sum(dim=1) * T * T
                        loss_vec = loss_vec.clone()
                        loss_vec[mask] = loss_vec[mask] + kd
                    loss = loss_vec.mean()
                    loss.backward()
                    server_optimizer.step()
                    total += loss.item() * len(idx)
                    count += len(idx)
                last = total / count
        reliable = self.self_evaluation()
        server_logits = logits_on(self.server_model, self.public)
        knowledge = server_logits.clone()
        use_fused = ~reliable & has_fused
        knowledge[use_fused] = torch.log(fused[use_fused].clamp_min(1e-12)) * T
        self.knowledge = knowledge
        self.fusion_stats = {
            "self_knowledge": int(reliable.sum()),
            "fused": int(use_fused.sum()),
            "label_only": int((~reliable & ~has_fused).sum()),
        }
        return last

    def distribute(self) -> None:
        for client in self.clients:
            client.download(self.knowledge)

    def action(self, server_optimizer=None, epoch: int = 1, seed: int = 0) -> None:
        self.receive()
        self.update(server_optimizer, epoch=epoch, seed=seed)
        self.distribute()
