"""FedMD over MPI: the server on one rank, one FedMD client per other rank.

Only logits on the public data and the consensus travel, as in-process::

    MPIClient = MPIFedMDClientManager().attach(FedMDClient)
    MPIServer = MPIFedMDServerManager().attach(FedMDServer)
    if myid == 0:
        server = MPIServer(comm, list(range(1, size)))            # optionally a server model
        api = MPIFedMDAPI(comm, server, True, num_communication=3)
    else:
        client = MPIClient(comm, NN(), public_dataloader, output_dim=10, user_id=myid)
        api = MPIFedMDAPI(comm, client, False, local_dataloader=private_loader,
                          client_optimizer=optimizer, num_communication=3)
    api.run()

Each client rank runs exactly what ``FedMDAPI`` runs for that client (transfer learning, then per
round: upload logits, digest the consensus, revisit its private data), with the same shuffling
seeds, so the models equal the in-process run's. Timeouts and failure handling as
:mod:`~aijack_lab.collaborative.mpi.fedavg`.
"""
from typing import Optional

from ...manager import BaseManager
from ...utils.metrics import evaluate_accuracy
from ...utils.progress import ProgressCallback
from ..core import update_nbytes
from ..fedmd.api import FedMDAPI
from .distillation import DistillationClientMixin, DistillationServerMixin, MPIDistillationAPI
from .launch import write_rank_status
from .transport import DEFAULT_TIMEOUT, check_timeout

LOGITS_TAG = 13
CONSENSUS_TAG = 14


class _FedMDMessages:
    """FedMD's messages: logits up, the consensus down."""

    _mpi_protocol = "FedMD"
    _upload_tag, _answer_tag = LOGITS_TAG, CONSENSUS_TAG
    _upload_key, _answer_key = "logits", "consensus"
    _upload_noun, _answer_noun, _answer_wrong_round = "logits", "consensus", "a consensus"


class MPIFedMDClientManager(BaseManager):
    """``MPIFedMDClientManager().attach(FedMDClient)`` -> ``MPIClient(comm, model, public_dataloader, ...)``.

    Keyword arguments: ``server_rank`` (default 0), ``timeout`` (seconds, default 300).
    """

    def extend(self, cls):
        server_rank = int(self.kwargs.get("server_rank", 0))
        default_timeout = check_timeout(self.kwargs.get("timeout", DEFAULT_TIMEOUT))

        class MPIFedMDClientWrapper(_FedMDMessages, DistillationClientMixin, cls):
            _server_rank, _default_timeout = server_rank, default_timeout

            def send_logits(self):
                return self.send_upload()

            def receive_consensus(self) -> None:
                self.receive_answer()

        return MPIFedMDClientWrapper


class MPIFedMDServerManager(BaseManager):
    """``MPIFedMDServerManager().attach(FedMDServer)`` -> ``MPIServer(comm, client_ranks, server_model=None)``.

    Keyword argument: ``timeout`` (seconds, default 300).
    """

    def extend(self, cls):
        default_timeout = check_timeout(self.kwargs.get("timeout", DEFAULT_TIMEOUT))

        class MPIFedMDServerWrapper(_FedMDMessages, DistillationServerMixin, cls):
            _default_timeout = default_timeout

        return MPIFedMDServerWrapper


class MPIFedMDAPI(MPIDistillationAPI):
    """Runs FedMD on one MPI rank: ``MPIFedMDAPI(comm, party, is_server, ...)``.

    Args:
        comm, party, is_server: as ``MPIFedAVGAPI`` (party built by the FedMD MPI managers).
        public_dataloader: the public data; on a client it defaults to the client's own, on the
            server it is needed only to train a ``server_model``.
        local_dataloader, client_optimizer: the client's private data and optimizer.
        criterion, num_communication, consensus_epoch, revisit_epoch, transfer_epoch_public,
        transfer_epoch_private, server_training_epoch, server_optimizer: as ``FedMDAPI`` (same
            values on every rank).
        client_index: this client's position among the clients (default ``rank - 1``); it seeds
            the public-data shuffling exactly as ``FedMDAPI`` does for that client.
        timeout, abort_on_error, on_round, progress: as ``MPIFedAVGAPI``.
    """

    _protocol, _example_base = "FedMD", "FedMDClient"

    def __init__(self, comm, party, is_server: bool, public_dataloader=None, local_dataloader=None,
                 criterion=None, client_optimizer=None, validation_dataloader=None, server_optimizer=None,
                 num_communication: int = 1, consensus_epoch: int = 1, revisit_epoch: int = 1,
                 transfer_epoch_public: int = 1, transfer_epoch_private: int = 1, server_training_epoch: int = 1,
                 client_index: Optional[int] = None, timeout: Optional[float] = DEFAULT_TIMEOUT,
                 on_round=None, progress: Optional[ProgressCallback] = None, abort_on_error: bool = True):
        super().__init__(comm, party, is_server, num_communication=num_communication, timeout=timeout,
                         on_round=on_round, progress=progress, abort_on_error=abort_on_error)
        settings = dict(consensus_epoch=consensus_epoch, revisit_epoch=revisit_epoch,
                        transfer_epoch_public=transfer_epoch_public, transfer_epoch_private=transfer_epoch_private,
                        server_training_epoch=server_training_epoch, num_communication=num_communication,
                        criterion=criterion, validation_dataloader=validation_dataloader)
        self.validation_dataloader = validation_dataloader
        if is_server:
            self._fedmd = None
            if getattr(party, "server_model", None) is not None:
                if public_dataloader is None:
                    raise ValueError("the server needs public_dataloader to train its server_model")
                # FedMDAPI's own server step (distil the consensus into the server model), reused
                self._fedmd = FedMDAPI(party, party.clients, public_dataloader=public_dataloader,
                                       client_optimizers=[None] * len(party.clients), server_optimizer=server_optimizer,
                                       **{**settings, "transfer_epoch_public": 0, "transfer_epoch_private": 0})
        else:
            if client_optimizer is None:
                raise ValueError("client_optimizer is required on a client rank")
            if local_dataloader is None and (revisit_epoch or transfer_epoch_private):
                raise ValueError("local_dataloader is required on a client rank (or set revisit_epoch and "
                                 "transfer_epoch_private to 0)")
            self.client_index = comm.Get_rank() - 1 if client_index is None else int(client_index)
            self._fedmd = FedMDAPI(None, [party], public_dataloader=public_dataloader or party.public_dataloader,
                                   local_dataloaders=[local_dataloader] if local_dataloader is not None else None,
                                   client_optimizers=[client_optimizer], **settings)

    def _run(self):
        rank, party, fedmd = self.comm.Get_rank(), self.party, self._fedmd
        write_rank_status(rank, -1)
        if not self.is_server:
            if fedmd.transfer_epoch_public:
                # FedMDAPI shuffles client i's public data with seed 0 + i
                fedmd.train_client(public=True, epoch=fedmd.transfer_epoch_public, seed=self.client_index)
            if fedmd.transfer_epoch_private and fedmd.local_dataloaders is not None:
                fedmd.train_client(public=False, epoch=fedmd.transfer_epoch_private)
        for com_cnt in range(self.num_communication):
            start = self._now()
            if self.is_server:
                party.receive()
                party.update()
                party.distribute()
                if fedmd is not None and fedmd.server_training_epoch:
                    fedmd.train_server(com_cnt)
                accuracy = None
                if fedmd is not None and self.validation_dataloader is not None:
                    accuracy = evaluate_accuracy(party.server_model, self.validation_dataloader)
                info = {"round": com_cnt, "client_losses": [], "seconds": self._now() - start,
                        "bytes_uploaded": sum(update_nbytes([l]) for l in party.uploaded_logits),
                        "global_accuracy": accuracy}
            else:
                party.send_logits()
                party.receive_consensus()
                losses = [party.approach_consensus(fedmd.client_optimizers[0], epoch=fedmd.consensus_epoch, seed=com_cnt)]
                if fedmd.local_dataloaders is not None and fedmd.revisit_epoch:
                    losses = fedmd.train_client(public=False, epoch=fedmd.revisit_epoch)
                info = {"round": com_cnt, "client_losses": losses, "seconds": self._now() - start,
                        "bytes_uploaded": None, "global_accuracy": None}
            self._end_round(info, self.num_communication)
            write_rank_status(rank, com_cnt)
        return self.history
