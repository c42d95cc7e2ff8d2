"""FedGEMS over MPI: the server (the larger model) on one rank, one FedGEMS client per other rank.

Only what crosses in-process crosses: each round the clients' logits on the public data go up and
the server's per-sample knowledge comes back::

    MPIClient = MPIFedGEMSClientManager().attach(FedGEMSClient)
    MPIServer = MPIFedGEMSServerManager().attach(FedGEMSServer)
    if myid == 0:
        server = MPIServer(comm, list(range(1, size)), BigNN(), public_dataloader, output_dim=10)
        api = MPIFedGEMSAPI(comm, server, True, num_communication=3)
    else:
        client = MPIClient(comm, NN(), public_dataloader, output_dim=10, user_id=myid - 1)
        api = MPIFedGEMSAPI(comm, client, False, local_dataloader=private_loader,
                            client_optimizer=optimizer, num_communication=3)
    api.run()

Each client rank runs exactly what ``FedGEMSAPI`` runs for that client (private epochs, upload,
distil the knowledge with the same shuffling seeds, which depend on ``user_id``: give each client
the ``user_id`` it has in-process), and the server rank exactly what it runs for the server, so the
models equal the in-process run's. Timeouts and failure handling as
:mod:`~aijack_lab.collaborative.mpi.fedavg`; an upload with NaN/inf stops the run with an
:class:`~aijack_lab.collaborative.mpi.transport.MPIRankError` naming the client rank.
"""
from typing import Optional

import torch

from ...manager import BaseManager
from ...utils.metrics import evaluate_accuracy
from ...utils.progress import ProgressCallback
from ...utils.validation import check_positive_int
from ..core import update_nbytes
from ..distillation import default_server_optimizer
from .distillation import DistillationClientMixin, DistillationServerMixin, MPIDistillationAPI, client_share
from .launch import write_rank_status
from .transport import DEFAULT_TIMEOUT, check_timeout

LOGITS_TAG = 15
KNOWLEDGE_TAG = 16


class _FedGEMSMessages:
    """FedGEMS's messages: logits (and the client's last local loss) up, knowledge down."""

    _mpi_protocol = "FedGEMS"
    _upload_tag, _answer_tag = LOGITS_TAG, KNOWLEDGE_TAG
    _upload_key, _answer_key = "logits", "knowledge"
    _upload_noun, _answer_noun = "logits", "knowledge"


class MPIFedGEMSClientManager(BaseManager):
    """``MPIFedGEMSClientManager().attach(FedGEMSClient)`` -> ``MPIClient(comm, model, public_dataloader, ...)``.

    Keyword arguments: ``server_rank`` (default 0), ``timeout`` (seconds, default 300).
    """

    def extend(self, cls):
        server_rank = int(self.kwargs.get("server_rank", 0))
        default_timeout = check_timeout(self.kwargs.get("timeout", DEFAULT_TIMEOUT))

        class MPIFedGEMSClientWrapper(_FedGEMSMessages, DistillationClientMixin, cls):
            _server_rank, _default_timeout = server_rank, default_timeout

            def send_logits(self, loss: Optional[float] = None) -> torch.Tensor:
                return self.send_upload(loss=loss)

            def receive_knowledge(self) -> None:
                self.receive_answer()

        return MPIFedGEMSClientWrapper


class MPIFedGEMSServerManager(BaseManager):
    """``MPIFedGEMSServerManager().attach(FedGEMSServer)`` ->
    ``MPIServer(comm, client_ranks, server_model, public_dataloader, output_dim=..., ...)``.

    The server holds the public data itself (its stand-ins for the clients hold none). Keyword
    argument: ``timeout`` (seconds, default 300).
    """

    def extend(self, cls):
        default_timeout = check_timeout(self.kwargs.get("timeout", DEFAULT_TIMEOUT))

        class MPIFedGEMSServerWrapper(_FedGEMSMessages, DistillationServerMixin, cls):
            _default_timeout = default_timeout
            _check_finite_uploads = True

            def __init__(self, comm, clients, server_model, public_dataloader=None, *args, **kwargs):
                if public_dataloader is None:
                    raise ValueError("an MPI FedGEMS server needs public_dataloader (its clients are on other ranks)")
                super().__init__(comm, clients, server_model, public_dataloader, *args, **kwargs)

        return MPIFedGEMSServerWrapper


class MPIFedGEMSAPI(MPIDistillationAPI):
    """Runs FedGEMS on one MPI rank: ``MPIFedGEMSAPI(comm, party, is_server, ...)``.

    Args:
        comm, party, is_server: as ``MPIFedAVGAPI`` (party built by the FedGEMS MPI managers).
        local_dataloader, client_optimizer: the client's private data (required on a client) and
            optimizer (default, as in-process: Adam, lr 1e-3).
        server_optimizer: the server's (default, as in-process: Adam, lr 1e-3).
        criterion, num_communication, epoch_client_on_localdataset, epoch_client_on_publicdataset,
            epoch_server_on_publicdataset: as ``FedGEMSAPI`` (same values on every rank).
        validation_dataloader: scores the server model (server rank) or the client's model (client rank).
        timeout, abort_on_error, on_round, progress: as ``MPIFedAVGAPI``.

    History: the server's entries hold ``global_accuracy``, ``fusion_stats``, ``bytes_uploaded``,
    ``bytes_downloaded`` (as in-process) and ``client_losses`` when the clients' last step is their
    private training (``epoch_client_on_publicdataset=0``; they send that loss with their logits).
    A client's entries hold its own ``client_losses`` and ``client_accuracies`` (one value each,
    equal to its entry in the in-process history).
    """

    _protocol, _example_base = "FedGEMS", "FedGEMSClient"

    def __init__(self, comm, party, is_server: bool, local_dataloader=None, criterion=None, client_optimizer=None,
                 server_optimizer=None, validation_dataloader=None, num_communication: int = 1,
                 epoch_client_on_localdataset: int = 1, epoch_client_on_publicdataset: int = 1,
                 epoch_server_on_publicdataset: int = 1, timeout: Optional[float] = DEFAULT_TIMEOUT,
                 on_round=None, progress: Optional[ProgressCallback] = None, abort_on_error: bool = True):
        super().__init__(comm, party, is_server, num_communication=num_communication, timeout=timeout,
                         on_round=on_round, progress=progress, abort_on_error=abort_on_error)
        self.epoch_client_on_localdataset = check_positive_int("epoch_client_on_localdataset", epoch_client_on_localdataset, allow_zero=True)
        self.epoch_client_on_publicdataset = check_positive_int("epoch_client_on_publicdataset", epoch_client_on_publicdataset, allow_zero=True)
        self.epoch_server_on_publicdataset = check_positive_int("epoch_server_on_publicdataset", epoch_server_on_publicdataset)
        self.validation_dataloader = validation_dataloader
        if is_server:
            self.server_optimizer = default_server_optimizer(party.server_model, server_optimizer)
        else:
            if local_dataloader is None:
                raise ValueError("local_dataloader is required on a client rank (FedGEMS trains on private data)")
            self._share = client_share(party, local_dataloader, criterion, client_optimizer, validation_dataloader,
                                       num_communication)
            self.client_optimizer = self._share.client_optimizers[0]

    def _run(self):
        rank = self.comm.Get_rank()
        write_rank_status(rank, -1)
        for com_cnt in range(self.num_communication):
            start = self._now()
            if self.is_server:
                info = self._server_round(com_cnt)
            else:
                info = self._client_round(com_cnt)
            info["seconds"] = self._now() - start
            self._end_round(info, self.num_communication)
            write_rank_status(rank, com_cnt)
        return self.history

    def _server_round(self, com_cnt: int) -> dict:
        party = self.party
        party.receive()
        uploads = list(party.uploaded_logits)
        party.update(self.server_optimizer, epoch=self.epoch_server_on_publicdataset, seed=com_cnt)
        party.distribute()
        accuracy = None
        if self.validation_dataloader is not None:
            accuracy = evaluate_accuracy(party.server_model, self.validation_dataloader)
        reported = [c.last_loss for c in party.clients]
        return {"round": com_cnt,
                "client_losses": [] if self.epoch_client_on_publicdataset else reported,
                "global_accuracy": accuracy,
                "bytes_uploaded": sum(update_nbytes([u]) for u in uploads),
                "bytes_downloaded": update_nbytes([party.knowledge]) * len(party.clients),
                "client_updates": uploads,
                "fusion_stats": dict(party.fusion_stats)}

    def _client_round(self, com_cnt: int) -> dict:
        party, share = self.party, self._share
        loss = float("nan")
        if self.epoch_client_on_localdataset:
            loss = share.train_client(public=False, epoch=self.epoch_client_on_localdataset)[0]
        logits = party.send_logits(loss=loss)
        party.receive_knowledge()
        if self.epoch_client_on_publicdataset:
            loss = party.approach_server(self.client_optimizer, epoch=self.epoch_client_on_publicdataset, seed=com_cnt)
        accuracy = share.score(only_local=True)["clients_score"][0]
        return {"round": com_cnt, "client_losses": [loss], "global_accuracy": None,
                "client_accuracies": [accuracy], "bytes_uploaded": update_nbytes([logits]),
                "bytes_downloaded": update_nbytes([party.knowledge])}
