"""FedAVG over MPI (paper Code 6 / S-12): server on one rank, one client per other rank.

```
MPIClient = MPIFedAVGClientManager().attach(FedAVGClient)
MPIServer = MPIFedAVGServerManager().attach(FedAVGServer)
if myid == 0:
    server = MPIServer(comm, list(range(1, size)), NN())
    api = MPIFedAVGAPI(comm, server, True, criterion)
else:
    client = MPIClient(comm, NN(), user_id=myid)
    api = MPIFedAVGAPI(comm, client, False, criterion, optimizer, dataloader)
api.run()
```

The managers only change how uploads and models travel: the client still computes its upload
with ``upload_gradients()``/``upload_parameters()`` and takes the server's answer with
``download()``, and the server still aggregates with ``update()``/``aggregate()``. So managers
from other families (attacks, Paillier, sparsification) attach before or after the MPI manager.

Failure handling: every message is awaited for at most ``timeout`` seconds (default 300 s, see
:data:`~aijack_lab.collaborative.mpi.transport.DEFAULT_TIMEOUT`). The server waits that long for
each round's uploads (which includes the clients' local training), a client twice that long for
the global model (the server may be waiting ``timeout`` for another client). A rank that dies or stops answering ends the run with :class:`MPIRankError` naming
the rank; ``MPIFedAVGAPI.run`` then prints the error and calls ``MPI_Abort`` so that no other rank
is left waiting (``mpiexec`` exits non-zero). With MPICH's ``mpiexec`` a rank killed by a signal
also ends the whole job at once (``BAD TERMINATION ... RANK r``).
"""
from typing import Callable, List, Optional

from ...manager import BaseManager
from ...utils.metrics import evaluate_accuracy
from ...utils.progress import ProgressCallback
from ...utils.validation import check_positive_int
from ..core import BaseFedAPI, update_nbytes
from .launch import write_rank_status
from .transport import (
    DEFAULT_TIMEOUT,
    GRADIENTS_TAG,
    PARAMETERS_TAG,
    MPIRankError,
    abort_with_message,
    check_timeout,
    gather_from,
    recv_from,
    send_each,
    send_to,
)

_COMM_METHODS = ("Get_rank", "Get_size", "Iprobe", "recv", "isend", "Abort")


def init_mpi_client(client, comm, server_rank: int, timeout: Optional[float]) -> None:
    """The MPI state every client wrapper keeps (its rank, the server's, its timeout, the round)."""
    client.comm, client.rank, client.server_rank = comm, comm.Get_rank(), server_rank
    if client.rank == server_rank:
        raise ValueError(f"an MPI client cannot run on the server's rank {server_rank}")
    client.timeout = timeout
    client.round = 0


def check_comm(comm) -> None:
    missing = [m for m in _COMM_METHODS if not hasattr(comm, m)]
    if missing:
        raise TypeError(
            f"comm must be an MPI communicator (e.g. mpi4py's MPI.COMM_WORLD), got {type(comm).__name__} "
            f"without {', '.join(missing)}"
        )


class MPIFedAVGClientManager(BaseManager):
    """``MPIFedAVGClientManager().attach(FedAVGClient)`` -> ``MPIClient(comm, model, user_id, ...)``.

    The new class takes the communicator first, then the base class's arguments. Keyword
    arguments of the manager: ``server_rank`` (default 0), ``timeout`` (seconds, default 300;
    ``MPIFedAVGAPI(timeout=...)`` overrides it).
    """

    def extend(self, cls):
        server_rank = int(self.kwargs.get("server_rank", 0))
        default_timeout = check_timeout(self.kwargs.get("timeout", DEFAULT_TIMEOUT))

        class MPIFedAVGClientWrapper(cls):
            _mpi_role = "client"

            def __init__(self, comm, *args, **kwargs):
                check_comm(comm)
                super().__init__(*args, **kwargs)
                init_mpi_client(self, comm, server_rank, default_timeout)
                self.last_loss: Optional[float] = None

            def mpi_initialize(self) -> None:
                """Take the server's initial global model."""
                self.download_from_server("the initial global model")

            def upload_to_server(self, use_gradients: bool = True) -> None:
                update = self.upload_gradients() if use_gradients else self.upload_parameters()
                message = {
                    "round": self.round,
                    "update": update,
                    "num_samples": getattr(self, "num_samples", None),
                    "loss": self.last_loss,
                }
                send_to(self.comm, message, [self.server_rank], GRADIENTS_TAG, self.timeout,
                        f"the update of round {self.round} (server rank {self.server_rank})")

            def download_from_server(self, what: Optional[str] = None) -> None:
                what = what or f"the global model after round {self.round}"
                # the server itself may wait ``timeout`` for a slower client before it answers
                timeout = None if self.timeout is None else 2 * self.timeout
                payload = recv_from(self.comm, self.server_rank, PARAMETERS_TAG, timeout,
                                    f"{what} to client rank {self.rank} (rank {self.server_rank} is the server)")
                self.download(payload)

            def action(self, use_gradients: bool = True) -> None:
                """Send this round's update, then wait for and take the server's answer."""
                self.upload_to_server(use_gradients)
                self.model.zero_grad()
                self.download_from_server()
                self.round += 1

        return MPIFedAVGClientWrapper


class RemoteClient:
    """The server's stand-in for the client on ``rank``: ``upload_gradients()``/``upload_parameters()``
    return what that rank sent this round and ``download(payload)`` queues the answer, so the base
    server's (and any attached manager's) ``receive``/``distribute`` work unchanged over MPI."""

    def __init__(self, rank: int):
        self.rank = rank
        self.user_id = rank
        self.num_samples: Optional[int] = None
        self.last_loss: Optional[float] = None
        self.round: Optional[int] = None
        self._update = None
        self._outbox = None

    def take_message(self, message) -> None:
        self.round = message.get("round")
        self._update = message["update"]
        self.num_samples = message.get("num_samples")
        self.last_loss = message.get("loss")

    def upload_gradients(self):
        return self._update

    def upload_parameters(self):
        return self._update

    def upload(self):
        return self._update

    def download(self, payload) -> None:
        self._outbox = payload

    def __repr__(self):
        return f"{type(self).__name__}(rank={self.rank})"


class MPIFedAVGServerManager(BaseManager):
    """``MPIFedAVGServerManager().attach(FedAVGServer)`` -> ``MPIServer(comm, client_ranks, model, ...)``.

    ``clients`` are the clients' ranks; the server keeps them in ``client_ranks`` and holds a
    :class:`RemoteClient` per rank in ``clients``, so the base class's ``receive``, ``update``
    (weights = the sample counts the clients report, as in-process) and ``distribute`` run
    unchanged, and so do managers attached before or after this one.
    Keyword argument of the manager: ``timeout`` (seconds, default 300).
    """

    def extend(self, cls):
        default_timeout = check_timeout(self.kwargs.get("timeout", DEFAULT_TIMEOUT))

        class MPIFedAVGServerWrapper(cls):
            _mpi_role = "server"

            def __init__(self, comm, clients, *args, **kwargs):
                check_comm(comm)
                ranks = _check_client_ranks(comm, clients)
                super().__init__([RemoteClient(r) for r in ranks], *args, **kwargs)
                self.comm = comm
                self.rank = comm.Get_rank()
                self.client_ranks = ranks
                self.timeout = default_timeout
                self.round = 0

            @property
            def client_losses(self):
                return {c.rank: c.last_loss for c in self.clients if isinstance(c, RemoteClient)}

            def _client_name(self, i: int) -> str:
                return f"client rank {self.client_ranks[i]}"

            def mpi_initialize(self) -> None:
                """Send every client the initial global model."""
                self.distribute(force_send_model_state_dict=True)

            def receive(self, use_gradients: bool = True) -> None:
                """Wait for every client rank's upload of this round, then run the base ``receive``."""
                messages = gather_from(self.comm, self.client_ranks, GRADIENTS_TAG, self.timeout,
                                       f"its update for round {self.round}")
                for client in self.clients:
                    msg = messages[client.rank]
                    if not isinstance(msg, dict) or msg.get("round") != self.round or "update" not in msg:
                        got = msg.get("round") if isinstance(msg, dict) else type(msg).__name__
                        raise MPIRankError(
                            f"client rank {client.rank} sent an update for round {got} while the server is in "
                            f"round {self.round}; the ranks run different protocols or settings", rank=client.rank)
                    client.take_message(msg)
                super().receive(use_gradients)

            def distribute(self, force_send_model_state_dict: bool = False) -> None:
                """Run the base ``distribute`` (which hands each stand-in its payload), then send them.

                The payload is the global parameters by name, or the aggregated gradient when the
                clients update themselves (``server_side_update=False``; the global model then lives
                on the clients)."""
                super().distribute(force_send_model_state_dict=force_send_model_state_dict)
                messages = []
                for client in self.clients:
                    if client._outbox is None:
                        raise MPIRankError(f"the server prepared nothing to send to client rank {client.rank}",
                                           rank=client.rank)
                    messages.append((client._outbox, client.rank))
                    client._outbox = None
                send_each(self.comm, messages, PARAMETERS_TAG, self.timeout,
                          f"the global model after round {self.round}")

            def action(self, use_gradients: bool = True) -> None:
                self.receive(use_gradients)
                self.update(use_gradients)
                self.distribute()
                self.round += 1

        return MPIFedAVGServerWrapper


def _check_client_ranks(comm, clients) -> List[int]:
    try:
        items = list(clients)
    except TypeError:
        raise TypeError("clients of an MPI server must be a list of the clients' ranks, e.g. list(range(1, size))") from None
    if any(isinstance(r, bool) or not hasattr(r, "__index__") for r in items):
        raise TypeError(f"clients of an MPI server must be integer ranks, got {items!r}")
    ranks = [r.__index__() for r in items]
    if not ranks:
        raise ValueError("clients must name at least one client rank")
    size, me = comm.Get_size(), comm.Get_rank()
    bad = [r for r in ranks if not 0 <= r < size or r == me]
    if bad:
        raise ValueError(f"clients must be ranks in 0..{size - 1} other than the server's rank {me}, got {bad}")
    if len(set(ranks)) != len(ranks):
        raise ValueError(f"clients lists a rank twice: {ranks}")
    return ranks


class MPIFedAVGAPI(BaseFedAPI):
    """Runs FedAVG on one MPI rank: ``MPIFedAVGAPI(comm, party, is_server, criterion, ...)``.

    Args:
        comm: the communicator (``MPI.COMM_WORLD``).
        party: a server built by ``MPIFedAVGServerManager`` (``is_server=True``) or a client built by
            ``MPIFedAVGClientManager``.
        is_server: whether this rank runs the server.
        criterion: the loss (clients).
        local_optimizer, local_dataloader: the client's optimizer and data (required on clients).
        num_communication, local_epoch: rounds and local epochs per round (same on every rank).
        interval_of_custom_action, custom_action: ``custom_action(api)`` every that many rounds.
        use_gradients: clients upload pseudo-gradients (True) or parameters (False).
        timeout: seconds to wait for one message before stopping the run with an error naming the
            rank (default 300; ``None`` waits forever). The server's wait for a round's uploads
            includes the clients' local training, so set it above the slowest local training;
            clients wait up to twice as long for the server's answer.
        validation_dataloader: on the server, ``(x, y)`` or a loader; ``global_accuracy`` per round.
        on_round, progress: per-round hooks as in ``FedAVGAPI``.
        abort_on_error: on an error, print it and ``MPI_Abort`` every rank (default True), so that
            no rank is left waiting.

    ``api.history`` holds one dict per round; on the server with ``client_losses`` (by rank order),
    ``global_accuracy``, ``seconds``, ``bytes_uploaded``.
    """

    def __init__(
        self,
        comm,
        party,
        is_server: bool,
        criterion=None,
        local_optimizer=None,
        local_dataloader=None,
        num_communication: int = 1,
        local_epoch: int = 1,
        interval_of_custom_action: int = 1,
        custom_action: Optional[Callable] = None,
        device: str = "cpu",
        use_gradients: bool = True,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
        validation_dataloader=None,
        on_round=None,
        progress: Optional[ProgressCallback] = None,
        abort_on_error: bool = True,
    ):
        super().__init__(on_round=on_round, progress=progress)
        check_comm(comm)
        if not isinstance(is_server, bool):
            raise TypeError(f"is_server must be True or False, got {type(is_server).__name__}")
        role = getattr(party, "_mpi_role", None)
        if role is None:
            raise TypeError(
                "party must be built by MPIFedAVGServerManager/MPIFedAVGClientManager "
                f"(e.g. MPIFedAVGClientManager().attach(FedAVGClient)), got {type(party).__name__}"
            )
        if (role == "server") != is_server:
            raise ValueError(f"is_server={is_server} but party is an MPI {role}")
        if not is_server:
            if criterion is None:
                raise ValueError("criterion is required on a client rank")
            if local_optimizer is None:
                raise ValueError("local_optimizer is required on a client rank")
            if local_dataloader is None:
                raise ValueError("local_dataloader is required on a client rank")
        if custom_action is not None and not callable(custom_action):
            raise TypeError("custom_action must be callable as custom_action(api)")
        self.comm = comm
        self.party = party
        self.is_server = is_server
        self.criterion = criterion
        self.local_optimizer = local_optimizer
        self.local_dataloader = local_dataloader
        self.num_communication = check_positive_int("num_communication", num_communication)
        self.local_epoch = check_positive_int("local_epoch", local_epoch)
        self.interval_of_custom_action = check_positive_int("interval_of_custom_action", interval_of_custom_action)
        self.custom_action = custom_action
        self.device = device
        self.use_gradients = bool(use_gradients)
        self.timeout = check_timeout(timeout)
        self.validation_dataloader = validation_dataloader
        self.abort_on_error = bool(abort_on_error)
        party.timeout = self.timeout

    # -- one rank's part ------------------------------------------------------------------------
    def local_train(self, com_cnt: int) -> List[float]:
        return self.party.local_train(self.local_epoch, self.criterion, self.local_dataloader,
                                      self.local_optimizer, communication_id=com_cnt)

    def evaluate(self) -> Optional[float]:
        if not self.is_server or self.validation_dataloader is None:
            return None
        return evaluate_accuracy(self.party.server_model, self.validation_dataloader)

    def run(self):
        try:
            return self._run()
        except Exception as exc:
            if self.abort_on_error and self.comm.Get_size() > 1:
                abort_with_message(self.comm, exc)
            raise

    def _run(self):
        party = self.party
        rank = self.comm.Get_rank()
        write_rank_status(rank, -1)
        party.mpi_initialize()
        for com_cnt in range(self.num_communication):
            start = self._now()
            if self.is_server:
                party.action(use_gradients=self.use_gradients)
                uploads = party.uploaded_gradients if self.use_gradients else party.uploaded_models
                info = {
                    "round": com_cnt,
                    "client_losses": [party.client_losses.get(r) for r in party.client_ranks],
                    "global_accuracy": self.evaluate(),
                    "seconds": self._now() - start,
                    "bytes_uploaded": sum(update_nbytes(u) for u in uploads),
                    "client_updates": uploads,
                }
            else:
                losses = self.local_train(com_cnt)
                party.last_loss = losses[-1] if losses else None
                party.action(use_gradients=self.use_gradients)
                info = {
                    "round": com_cnt,
                    "client_losses": [party.last_loss],
                    "global_accuracy": None,
                    "seconds": self._now() - start,
                    "bytes_uploaded": None,
                }
            if self.custom_action is not None and com_cnt % self.interval_of_custom_action == 0:
                self.custom_action(self)
            self._end_round(info, self.num_communication)
            write_rank_status(rank, com_cnt)
        return self.history
