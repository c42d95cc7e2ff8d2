"""FedGEMSAPI: clients learn privately, the larger server model fuses their knowledge, clients distil it back."""
from typing import Callable, List, Optional, Sequence

from ...utils.progress import ProgressCallback
from ...utils.validation import check_positive_int
from ..distillation import BaseFLKnowledgeDistillationAPI, default_server_optimizer


def approach_server(client, optimizer, epoch: int, seed: int) -> float:
    """A client's distillation of the server's knowledge (an engine job)."""
    return client.approach_server(optimizer, epoch=epoch, seed=seed)


class FedGEMSAPI(BaseFLKnowledgeDistillationAPI):
    """Each round: clients train on their private data (``epoch_client_on_localdataset``) and upload
    logits on the public data; the server trains its larger model by selective knowledge fusion
    (``epoch_server_on_publicdataset``) and sends back per-sample knowledge; clients distil it on
    the public data (``epoch_client_on_publicdataset``). Only logits cross.
    History entries add ``fusion_stats`` (how many public samples used each kind of knowledge).
    With ``engine=`` the clients' steps run on that engine (see ``BaseFLKnowledgeDistillationAPI``).
    """

    def __init__(
        self,
        server,
        clients: List,
        public_dataloader=None,
        local_dataloaders: Optional[Sequence] = None,
        criterion=None,
        client_optimizers: Optional[Sequence] = None,
        server_optimizer=None,
        validation_dataloader=None,
        num_communication: int = 1,
        epoch_client_on_localdataset: int = 1,
        epoch_client_on_publicdataset: int = 1,
        epoch_server_on_publicdataset: int = 1,
        device: str = "cpu",
        custom_action: Optional[Callable] = None,
        on_round=None,
        progress: Optional[ProgressCallback] = None,
        engine=None,
    ):
        if local_dataloaders is None:
            raise ValueError("FedGEMSAPI needs local_dataloaders (one per client)")
        super().__init__(
            server, clients, public_dataloader, local_dataloaders, validation_dataloader, criterion,
            num_communication, device=device, client_optimizers=client_optimizers, custom_action=custom_action,
            on_round=on_round, progress=progress, engine=engine,
        )
        self.epoch_client_on_localdataset = check_positive_int("epoch_client_on_localdataset", epoch_client_on_localdataset, allow_zero=True)
        self.epoch_client_on_publicdataset = check_positive_int("epoch_client_on_publicdataset", epoch_client_on_publicdataset, allow_zero=True)
        self.epoch_server_on_publicdataset = check_positive_int("epoch_server_on_publicdataset", epoch_server_on_publicdataset)
        self.server_optimizer = default_server_optimizer(server.server_model, server_optimizer)

    def run(self):
        for com_cnt in range(self.num_communication):
            start = self._now()
            losses, uploads = self.client_uploads(com_cnt, private_epoch=self.epoch_client_on_localdataset)
            self.server_receive(uploads)
            uploads = list(self.server.uploaded_logits)
            self.count_upload(uploads)
            self.server.update(self.server_optimizer, epoch=self.epoch_server_on_publicdataset, seed=com_cnt)
            self.server.distribute()
            self.count_download(self.server.knowledge, copies=self.client_num)
            if self.epoch_client_on_publicdataset:
                jobs = [(i, approach_server, (self.epoch_client_on_publicdataset, com_cnt)) for i in range(self.client_num)]
                losses = self.run_clients(jobs, "distillation of the server's knowledge", round=com_cnt)
            self.record_round(com_cnt, losses, start, uploads=uploads, fusion_stats=dict(self.server.fusion_stats))
        return self.history
