"""DSFL over MPI: the server (aggregation and the global model) on one rank, one DSFL client per other rank.

Only what crosses in-process crosses: each round the clients' soft labels on the unlabeled public
inputs go up and the aggregated (ERA or SA) soft labels come back::

    MPIClient = MPIDSFLClientManager().attach(DSFLClient)
    MPIServer = MPIDSFLServerManager().attach(DSFLServer)
    if myid == 0:
        server = MPIServer(comm, list(range(1, size)), NN(), public_dataloader, aggregation="ERA")
        api = MPIDSFLAPI(comm, server, True, num_communication=3)
    else:
        client = MPIClient(comm, NN(), public_dataloader, output_dim=10, user_id=myid - 1)
        api = MPIDSFLAPI(comm, client, False, local_dataloader=private_loader,
                         client_optimizer=optimizer, num_communication=3)
    api.run()

Each client rank runs exactly what ``DSFLAPI`` runs for that client (private epochs, upload, local
distillation with the same shuffling seeds, which depend on ``user_id``: give each client the
``user_id`` it has in-process), and the server rank what it runs for the server, so the models
equal the in-process run's. Timeouts and failure handling as
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

SOFT_LABELS_TAG = 17
AGGREGATED_TAG = 18


class _DSFLMessages:
    """DSFL's messages: soft labels (and the client's local loss) up, aggregated soft labels down."""

    _mpi_protocol = "DSFL"
    _upload_tag, _answer_tag = SOFT_LABELS_TAG, AGGREGATED_TAG
    _upload_key, _answer_key = "soft_labels", "global_logit"
    _upload_noun, _answer_noun = "soft labels", "aggregated soft labels"


class MPIDSFLClientManager(BaseManager):
    """``MPIDSFLClientManager().attach(DSFLClient)`` -> ``MPIClient(comm, model, public_dataloader, ...)``.

    Keyword arguments: ``server_rank`` (default 0), ``timeout`` (seconds, default 300).
    """

    def extend(self, cls):
        server_rank = int(self.kwargs.get("server_rank", 0))
        default_timeout = check_timeout(self.kwargs.get("timeout", DEFAULT_TIMEOUT))

        class MPIDSFLClientWrapper(_DSFLMessages, DistillationClientMixin, cls):
            _server_rank, _default_timeout = server_rank, default_timeout

            def send_soft_labels(self, loss: Optional[float] = None) -> torch.Tensor:
                return self.send_upload(loss=loss)

            def receive_soft_labels(self) -> None:
                self.receive_answer()

        return MPIDSFLClientWrapper


class MPIDSFLServerManager(BaseManager):
    """``MPIDSFLServerManager().attach(DSFLServer)`` ->
    ``MPIServer(comm, client_ranks, global_model, public_dataloader, aggregation=..., ...)``.

    The server holds the public inputs itself (its stand-ins for the clients hold none). Keyword
    argument: ``timeout`` (seconds, default 300).
    """

    def extend(self, cls):
        default_timeout = check_timeout(self.kwargs.get("timeout", DEFAULT_TIMEOUT))

        class MPIDSFLServerWrapper(_DSFLMessages, DistillationServerMixin, cls):
            _default_timeout = default_timeout
            _check_finite_uploads = True

            def __init__(self, comm, clients, global_model, public_dataloader=None, *args, **kwargs):
                if public_dataloader is None:
                    raise ValueError("an MPI DSFL server needs public_dataloader (its clients are on other ranks)")
                super().__init__(comm, clients, global_model, public_dataloader, *args, **kwargs)

        return MPIDSFLServerWrapper


class MPIDSFLAPI(MPIDistillationAPI):
    """Runs DSFL on one MPI rank: ``MPIDSFLAPI(comm, party, is_server, ...)``.

    Args:
        comm, party, is_server: as ``MPIFedAVGAPI`` (party built by the DSFL MPI managers).
        local_dataloader, client_optimizer: the client's private data (required on a client) and
            optimizer (default, as in-process: Adam, lr 1e-3).
        server_optimizer: the global model's (default, as in-process: Adam, lr 1e-3).
        criterion, num_communication, epoch_local_training, epoch_global_distillation,
            epoch_local_distillation: as ``DSFLAPI`` (same values on every rank).
        validation_dataloader: scores the global model (server rank) or the client's model (client rank).
        timeout, abort_on_error, on_round, progress: as ``MPIFedAVGAPI``.

    History: the server's entries hold ``client_losses`` (each client's private-training loss, sent
    with its soft labels), ``global_accuracy``, ``entropy_before``/``entropy_after``,
    ``bytes_uploaded``, ``bytes_downloaded``, as in-process. A client's entries hold its own
    ``client_losses`` and ``client_accuracies`` (one value each).
    """

    _protocol, _example_base = "DSFL", "DSFLClient"

    def __init__(self, comm, party, is_server: bool, local_dataloader=None, criterion=None, client_optimizer=None,
                 server_optimizer=None, validation_dataloader=None, num_communication: int = 1,
                 epoch_local_training: int = 1, epoch_global_distillation: int = 1, epoch_local_distillation: int = 1,
                 timeout: Optional[float] = DEFAULT_TIMEOUT, on_round=None,
                 progress: Optional[ProgressCallback] = None, abort_on_error: bool = True):
        super().__init__(comm, party, is_server, num_communication=num_communication, timeout=timeout,
                         on_round=on_round, progress=progress, abort_on_error=abort_on_error)
        self.epoch_local_training = check_positive_int("epoch_local_training", epoch_local_training)
        self.epoch_global_distillation = check_positive_int("epoch_global_distillation", epoch_global_distillation, allow_zero=True)
        self.epoch_local_distillation = check_positive_int("epoch_local_distillation", epoch_local_distillation, allow_zero=True)
        self.validation_dataloader = validation_dataloader
        if is_server:
            self.server_optimizer = default_server_optimizer(party.server_model, server_optimizer)
        else:
            if local_dataloader is None:
                raise ValueError("local_dataloader is required on a client rank (DSFL trains on private data)")
            self._share = client_share(party, local_dataloader, criterion, client_optimizer, validation_dataloader,
                                       num_communication)
            self.client_optimizer = self._share.client_optimizers[0]

    def _run(self):
        rank = self.comm.Get_rank()
        write_rank_status(rank, -1)
        for com_cnt in range(self.num_communication):
            start = self._now()
            info = self._server_round(com_cnt) if self.is_server else self._client_round(com_cnt)
            info["seconds"] = self._now() - start
            self._end_round(info, self.num_communication)
            write_rank_status(rank, com_cnt)
        return self.history

    def _server_round(self, com_cnt: int) -> dict:
        party = self.party
        party.receive()
        uploads = list(party.uploaded_probs)
        party.update()
        if self.epoch_global_distillation:
            party.update_globalmodel(self.server_optimizer, epoch=self.epoch_global_distillation, seed=com_cnt)
        party.distribute()
        accuracy = None
        if self.validation_dataloader is not None:
            accuracy = evaluate_accuracy(party.server_model, self.validation_dataloader)
        return {"round": com_cnt, "client_losses": [c.last_loss for c in party.clients],
                "global_accuracy": accuracy,
                "bytes_uploaded": sum(update_nbytes([u]) for u in uploads),
                "bytes_downloaded": update_nbytes([party.global_logit]) * len(party.clients),
                "client_updates": uploads,
                "entropy_before": party.entropy_before, "entropy_after": party.entropy_after}

    def _client_round(self, com_cnt: int) -> dict:
        party, share = self.party, self._share
        loss = share.train_client(public=False, epoch=self.epoch_local_training)[0]
        soft_labels = party.send_soft_labels(loss=loss)
        party.receive_soft_labels()
        if self.epoch_local_distillation:
            party.approach_consensus(self.client_optimizer, epoch=self.epoch_local_distillation, seed=com_cnt)
        accuracy = share.score(only_local=True)["clients_score"][0]
        return {"round": com_cnt, "client_losses": [loss], "global_accuracy": None,
                "client_accuracies": [accuracy], "bytes_uploaded": update_nbytes([soft_labels]),
                "bytes_downloaded": update_nbytes([party.global_logit])}
