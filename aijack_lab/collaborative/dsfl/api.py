"""DSFLAPI: local training, ERA aggregation on unlabeled public data, global and local distillation."""
from typing import Callable, List, Optional, Sequence

from ...utils.progress import ProgressCallback
from ...utils.validation import check_positive_int
from ..distillation import BaseFLKnowledgeDistillationAPI, default_server_optimizer


def approach_consensus(client, optimizer, epoch: int, seed: int) -> float:
    """A client's distillation of the global soft labels (an engine job)."""
    return client.approach_consensus(optimizer, epoch=epoch, seed=seed)


class DSFLAPI(BaseFLKnowledgeDistillationAPI):
    """Each round: clients train on private data (``epoch_local_training``) and upload soft labels
    on the public inputs; the server aggregates them (ERA), distils them into the global model
    (``epoch_global_distillation``) and sends them back; clients distil them
    (``epoch_local_distillation``). History entries add ``entropy_before``/``entropy_after``.
    With ``engine=`` the clients' steps run on that engine (see ``BaseFLKnowledgeDistillationAPI``).
    """

    def __init__(
        self,
        server,
        clients: List,
        public_dataloader=None,
        local_dataloaders: Optional[Sequence] = None,
        criterion=None,
        num_communication: int = 1,
        device: str = "cpu",
        client_optimizers: Optional[Sequence] = None,
        server_optimizer=None,
        validation_dataloader=None,
        epoch_local_training: int = 1,
        epoch_global_distillation: int = 1,
        epoch_local_distillation: int = 1,
        custom_action: Optional[Callable] = None,
        on_round=None,
        progress: Optional[ProgressCallback] = None,
        engine=None,
    ):
        if local_dataloaders is None:
            raise ValueError("DSFLAPI needs local_dataloaders (one per client)")
        super().__init__(
            server, clients, public_dataloader, local_dataloaders, validation_dataloader, criterion,
            num_communication, device=device, client_optimizers=client_optimizers, custom_action=custom_action,
            on_round=on_round, progress=progress, engine=engine,
        )
        self.epoch_local_training = check_positive_int("epoch_local_training", epoch_local_training)
        self.epoch_global_distillation = check_positive_int("epoch_global_distillation", epoch_global_distillation, allow_zero=True)
        self.epoch_local_distillation = check_positive_int("epoch_local_distillation", epoch_local_distillation, allow_zero=True)
        self.server_optimizer = default_server_optimizer(server.server_model, server_optimizer)

    def run(self):
        for com_cnt in range(self.num_communication):
            start = self._now()
            losses, uploads = self.client_uploads(com_cnt, private_epoch=self.epoch_local_training)
            self.server_receive(uploads)
            uploads = list(self.server.uploaded_probs)
            self.count_upload(uploads)
            self.server.update()
            if self.epoch_global_distillation:
                self.server.update_globalmodel(self.server_optimizer, epoch=self.epoch_global_distillation, seed=com_cnt)
            self.server.distribute()
            self.count_download(self.server.global_logit, copies=self.client_num)
            if self.epoch_local_distillation:
                jobs = [(i, approach_consensus, (self.epoch_local_distillation, com_cnt)) for i in range(self.client_num)]
                self.run_clients(jobs, "distillation of the global soft labels", round=com_cnt)
            self.record_round(com_cnt, losses, start, uploads=uploads,
                              entropy_before=self.server.entropy_before, entropy_after=self.server.entropy_after)
        return self.history
