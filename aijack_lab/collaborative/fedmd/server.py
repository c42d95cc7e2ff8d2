"""FedMD server: averages the clients' public-data logits into a consensus."""
from typing import List, Optional

import torch

from ..core import BaseServer, check_finite_update


class FedMDServer(BaseServer):
    """Collects each client's logits on the public data, averages them (the consensus) and sends
    the consensus back. No model parameters are received or sent. ``server_model`` is optional:
    when given, ``FedMDAPI`` also trains it on the consensus (a global model nobody uploads).
    """

    def __init__(self, clients: List, server_model: Optional[torch.nn.Module] = None, server_id: int = 0, device: str = "cpu"):
        super().__init__(clients, server_model, server_id=server_id)
        self.device = device
        self.uploaded_logits: List[torch.Tensor] = []
        self.consensus: Optional[torch.Tensor] = None

    def receive(self) -> None:
        uploads = []
        for i, client in enumerate(self.clients):
            logits = client.upload()
            check_finite_update([logits], f"client {getattr(client, 'user_id', i)}")
            if uploads and logits.shape != uploads[0].shape:
                raise ValueError(
                    f"client {getattr(client, 'user_id', i)} sent logits of shape {tuple(logits.shape)}, "
                    f"others sent {tuple(uploads[0].shape)}"
                )
            uploads.append(logits)
        self.uploaded_logits = uploads

    def update(self) -> torch.Tensor:
        if not self.uploaded_logits:
            raise ValueError("no client logits to aggregate")
        self.consensus = torch.stack(self.uploaded_logits).mean(dim=0)
        return self.consensus

    def distribute(self) -> None:
        for client in self.clients:
            client.download(self.consensus)

    def action(self) -> torch.Tensor:
        self.receive()
        self.update()
        self.distribute()
        return self.consensus
