"""FedMDAPI: transfer learning, then rounds of communicate / digest / revisit."""
from typing import Callable, List, Optional, Sequence

import torch

from ...utils.progress import ProgressCallback
from ...utils.validation import check_positive_int
from ...engines import CLIENT_LOADER
from ..distillation import BaseFLKnowledgeDistillationAPI, default_server_optimizer, soft_cross_entropy
from ..distillation.base import train_supervised


def digest_and_revisit(client, optimizer, consensus_epoch: int, seed: int, loader, revisit_epoch: int, criterion,
                       device: str, who: str) -> float:
    """One client's FedMD round after the download: digest the consensus, then revisit its private
    data (when ``loader`` is given); returns the last step's loss."""
    loss = client.approach_consensus(optimizer, epoch=consensus_epoch, seed=seed)
    if loader is not None and revisit_epoch:
        loss = train_supervised(client, optimizer, loader, revisit_epoch, criterion, device, who)
    return loss


class FedMDAPI(BaseFLKnowledgeDistillationAPI):
    """``FedMDAPI(server, clients).run()`` (paper Code S-19).

    1. Transfer learning: each client trains on the labeled public data (``transfer_epoch_public``)
       and then on its private data (``transfer_epoch_private``).
    2. Each round: clients upload logits on the public data; the server averages them into the
       consensus (*communicate*); each client trains towards it on the public inputs for
       ``consensus_epoch`` epochs (*digest*); then on its private data for ``revisit_epoch``
       epochs (*revisit*). A ``server_model``, if the server has one, is trained on the consensus.

    Without ``local_dataloaders`` the private steps are skipped. With ``engine=`` the clients' steps
    run on that engine (see ``BaseFLKnowledgeDistillationAPI``). ``transfer_scores`` holds the
    scores after step 1, so the gain of the rounds can be read off ``history``.
    """

    def __init__(
        self,
        server,
        clients: List,
        public_dataloader=None,
        local_dataloaders: Optional[Sequence] = None,
        criterion=None,
        client_optimizers: Optional[Sequence] = None,
        validation_dataloader=None,
        server_optimizer=None,
        num_communication: int = 1,
        device: str = "cpu",
        consensus_epoch: int = 1,
        revisit_epoch: int = 1,
        transfer_epoch_public: int = 1,
        transfer_epoch_private: int = 1,
        server_training_epoch: int = 1,
        custom_action: Optional[Callable] = None,
        on_round=None,
        progress: Optional[ProgressCallback] = None,
        engine=None,
    ):
        super().__init__(
            server, clients, public_dataloader, local_dataloaders, validation_dataloader, criterion,
            num_communication, device=device, client_optimizers=client_optimizers, custom_action=custom_action,
            on_round=on_round, progress=progress, engine=engine,
        )
        self.consensus_epoch = check_positive_int("consensus_epoch", consensus_epoch)
        self.revisit_epoch = check_positive_int("revisit_epoch", revisit_epoch, allow_zero=True)
        self.transfer_epoch_public = check_positive_int("transfer_epoch_public", transfer_epoch_public, allow_zero=True)
        self.transfer_epoch_private = check_positive_int("transfer_epoch_private", transfer_epoch_private, allow_zero=True)
        self.server_training_epoch = check_positive_int("server_training_epoch", server_training_epoch, allow_zero=True)
        if self.transfer_epoch_public and self.public.y is None:
            raise ValueError("FedMD's transfer learning needs labeled public data (or transfer_epoch_public=0)")
        self.server_optimizer = default_server_optimizer(getattr(server, "server_model", None), server_optimizer)
        self.transfer_scores: Optional[dict] = None

    def transfer_learning(self) -> None:
        if self.transfer_epoch_public:
            self.train_client(public=True, epoch=self.transfer_epoch_public, seed=0)
        if self.transfer_epoch_private and self.local_dataloaders is not None:
            self.train_client(public=False, epoch=self.transfer_epoch_private)
        self.transfer_scores = self.score()

    def train_server(self, com_cnt: int) -> float:
        """Distil the consensus into the server model on the public inputs (soft cross-entropy to
        ``softmax(consensus)``)."""
        model = self.server.server_model
        model.train()
        target = torch.softmax(self.server.consensus, dim=1)
        last = float("nan")
        for e in range(self.server_training_epoch):
            total, count = 0.0, 0
            for idx, x in self.public.batches(shuffle_seed=10_000 + com_cnt * 97 + e):
                self.server_optimizer.zero_grad()
                loss = soft_cross_entropy(model(x), target[idx])
                loss.backward()
                self.server_optimizer.step()
                total += loss.item() * len(idx)
                count += len(idx)
            last = total / count
        return last

    def run(self):
        self.transfer_learning()
        for com_cnt in range(self.num_communication):
            start = self._now()
            # communicate
            _, uploads = self.client_uploads(com_cnt)
            self.server_receive(uploads)
            uploads = list(self.server.uploaded_logits)
            self.count_upload(uploads)
            self.server.update()
            self.server.distribute()
            self.count_download(self.server.consensus, copies=self.client_num)
            # digest, then revisit (one job per client; the server model trains meanwhile, independently)
            revisit = self.local_dataloaders is not None and self.revisit_epoch
            jobs = [(i, digest_and_revisit, (self.consensus_epoch, com_cnt, CLIENT_LOADER if revisit else None,
                                             self.revisit_epoch, self.criterion, self.device, self._who(i)))
                    for i in range(self.client_num)]
            losses = self.run_clients(jobs, "digest and revisit" if revisit else "digest", round=com_cnt)
            if getattr(self.server, "server_model", None) is not None and self.server_training_epoch:
                self.train_server(com_cnt)
            self.record_round(com_cnt, losses, start, uploads=uploads)
        return self.history
