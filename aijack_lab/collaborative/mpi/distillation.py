"""What the knowledge-distillation protocols (FedMD, FedGEMS, DSFL) share over MPI.

All three have one message flow per round: each client rank sends its predictions on the public
data to the server rank (tagged with the round), the server answers every client with one tensor
(the consensus, the knowledge, the aggregated soft labels). The protocol modules pick the tags,
the message keys and the wording of errors; this module moves the messages:

- :class:`DistillationClientMixin` goes before the base client class (``class W(Mixin, cls)``)
  and adds ``send_upload()`` / ``receive_answer()``;
- :class:`DistillationServerMixin` goes before the base server class and hands it a
  :class:`RemoteDistillationClient` per client rank, so the base ``receive``/``update``/
  ``distribute`` run unchanged; its ``receive`` gathers the uploads first (``gather_uploads()``)
  and its ``distribute`` sends the answers after (``send_answers()``);
- :class:`MPIDistillationAPI` is the common part of the per-rank APIs (argument checks, abort
  on error).
"""
import abc
from typing import Any, Dict, Optional

import torch

from ...utils.progress import ProgressCallback
from ...utils.validation import check_positive_int
from ..core import BaseFedAPI
from ..distillation import BaseFLKnowledgeDistillationAPI
from .fedavg import RemoteClient, _check_client_ranks, check_comm, init_mpi_client
from .transport import DEFAULT_TIMEOUT, MPIRankError, abort_with_message, check_timeout, gather_from, recv_from, send_each, send_to


class DistillationClientMixin:
    """Client side. The wrapper class sets ``_server_rank``, ``_default_timeout``, ``_upload_tag``,
    ``_answer_tag``, ``_upload_key``, ``_answer_key`` (message keys), ``_upload_noun`` and
    ``_answer_noun`` (for error messages; ``_answer_wrong_round`` words a reply of another round)."""

    _mpi_role = "client"
    _answer_wrong_round: Optional[str] = None

    def __init__(self, comm, *args, **kwargs):
        check_comm(comm)
        super().__init__(*args, **kwargs)
        init_mpi_client(self, comm, self._server_rank, self._default_timeout)

    def send_upload(self, **extra) -> Any:
        """Compute ``upload()`` (the base class checks it) and send it, with ``extra`` fields, to the server."""
        payload = self.upload()
        send_to(self.comm, {"round": self.round, self._upload_key: payload, **extra}, [self.server_rank],
                self._upload_tag, self.timeout, f"its {self._upload_noun} of round {self.round} (server rank {self.server_rank})")
        return payload

    def receive_answer(self) -> None:
        """Wait for the server's answer of this round, ``download()`` it and move to the next round."""
        # the server itself may wait ``timeout`` for a slower client before it answers
        timeout = None if self.timeout is None else 2 * self.timeout
        message = recv_from(self.comm, self.server_rank, self._answer_tag, timeout,
                            f"the {self._answer_noun} of round {self.round} to client rank {self.rank}")
        if not isinstance(message, dict) or message.get("round") != self.round or self._answer_key not in message:
            what = self._answer_wrong_round or f"{self._answer_noun}"
            raise MPIRankError(f"server rank {self.server_rank} sent {what} for another round", rank=self.server_rank)
        self.download(message[self._answer_key])
        self.round += 1


class RemoteDistillationClient(RemoteClient):
    """The server's stand-in for a client rank (FedAVG's, see :class:`RemoteClient`): ``upload()`` is
    what the rank sent this round and ``download()`` keeps the answer to send."""


class DistillationServerMixin:
    """Server side. The wrapper class sets ``_default_timeout`` and the tags, keys and nouns as
    :class:`DistillationClientMixin`; ``_check_finite_uploads`` rejects NaN/inf uploads here, as an
    :class:`MPIRankError` naming the client rank."""

    _mpi_role = "server"
    _check_finite_uploads = False

    def __init__(self, comm, clients, *args, **kwargs):
        check_comm(comm)
        ranks = _check_client_ranks(comm, clients)
        super().__init__([RemoteDistillationClient(r) for r in ranks], *args, **kwargs)
        self.comm, self.rank, self.client_ranks = comm, comm.Get_rank(), ranks
        self.timeout = self._default_timeout
        self.round = 0

    def gather_uploads(self) -> Dict[int, dict]:
        """Wait for every client rank's upload of this round and hand them to the stand-ins."""
        messages = gather_from(self.comm, self.client_ranks, self._upload_tag, self.timeout,
                               f"its {self._upload_noun} for round {self.round}")
        for client in self.clients:
            message = messages[client.rank]
            if not isinstance(message, dict) or message.get("round") != self.round or self._upload_key not in message:
                raise MPIRankError(f"client rank {client.rank} sent {self._upload_noun} for another round than "
                                   f"the server's {self.round}", rank=client.rank)
            payload = message[self._upload_key]
            if self._check_finite_uploads:
                # named here, as an MPIRankError, so that the launcher blames the client rank, not the server
                if not torch.is_tensor(payload) or not payload.is_floating_point():
                    raise MPIRankError(f"client rank {client.rank} sent {self._upload_noun} that are not a float "
                                       f"tensor ({type(payload).__name__})", rank=client.rank)
                if not torch.isfinite(payload).all():
                    raise MPIRankError(f"client rank {client.rank} sent {self._upload_noun} with NaN or inf in round "
                                       f"{self.round}; the round is stopped", rank=client.rank)
            client._update = payload
            client.last_loss = message.get("loss")
        return messages

    def receive(self) -> None:
        """This round's uploads from the client ranks, then the base class's ``receive``."""
        self.gather_uploads()
        super().receive()

    def distribute(self) -> None:
        """The base class's ``distribute``, then its answers to the client ranks."""
        super().distribute()
        self.send_answers()

    def send_answers(self) -> None:
        """Send each client rank what the base ``distribute()`` handed its stand-in; next round."""
        send_each(self.comm, [({"round": self.round, self._answer_key: c._outbox}, c.rank) for c in self.clients],
                  self._answer_tag, self.timeout, f"the {self._answer_noun} of round {self.round}")
        for c in self.clients:
            c._outbox = None
        self.round += 1


class MPIDistillationAPI(BaseFedAPI):
    """Common part of ``MPIFedMDAPI``, ``MPIFedGEMSAPI``, ``MPIDSFLAPI``: checks the communicator and
    the party (built by this protocol's MPI managers, on the side ``is_server`` says) and runs
    ``_run()``, aborting every rank on an error (``abort_on_error``)."""

    _protocol = ""  # the protocol's name, e.g. "FedGEMS"
    _example_base = ""  # e.g. "FedGEMSClient", for the error message

    def __init__(self, comm, party, is_server: bool, num_communication: int = 1,
                 timeout: Optional[float] = DEFAULT_TIMEOUT, on_round=None,
                 progress: Optional[ProgressCallback] = None, abort_on_error: bool = True):
        super().__init__(on_round=on_round, progress=progress)
        check_comm(comm)
        if not isinstance(is_server, bool):
            raise TypeError(f"is_server must be True or False, got {type(is_server).__name__}")
        role = getattr(party, "_mpi_role", None)
        if role is None or getattr(party, "_mpi_protocol", None) != self._protocol:
            p = self._protocol
            raise TypeError(f"party must be built by MPI{p}ServerManager/MPI{p}ClientManager "
                            f"(e.g. MPI{p}ClientManager().attach({self._example_base})), got {type(party).__name__}")
        if (role == "server") != is_server:
            raise ValueError(f"is_server={is_server} but party is an MPI {role}")
        self.comm, self.party, self.is_server = comm, party, is_server
        self.num_communication = check_positive_int("num_communication", num_communication)
        self.timeout = check_timeout(timeout)
        party.timeout = self.timeout
        self.abort_on_error = bool(abort_on_error)

    def run(self):
        try:
            return self._run()
        except Exception as exc:
            if self.abort_on_error and self.comm.Get_size() > 1:
                abort_with_message(self.comm, exc)
            raise

    @abc.abstractmethod
    def _run(self):
        """The protocol's rounds on this rank (each MPI distillation API defines them)."""


class _ClientShare(BaseFLKnowledgeDistillationAPI):
    """One client's share of an in-process distillation API: its supervised epochs and scoring run
    through the very code the in-process API runs (same batches, same losses)."""

    def run(self):  # pragma: no cover - only its training helpers are used
        raise TypeError("a client share only lends its training helpers; it does not run a protocol")


def client_share(party, local_dataloader, criterion, client_optimizer, validation_dataloader,
                 num_communication: int) -> BaseFLKnowledgeDistillationAPI:
    """The in-process API's machinery for ``party`` alone (``train_client``, ``score``); ``client_optimizer``
    None gives the in-process default (Adam, lr 1e-3)."""
    return _ClientShare(None, [party], party.public_dataloader,
                        [local_dataloader] if local_dataloader is not None else None, validation_dataloader,
                        criterion, num_communication,
                        client_optimizers=[client_optimizer] if client_optimizer is not None else None)
