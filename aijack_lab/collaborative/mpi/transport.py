"""Point-to-point messages between MPI ranks that never wait forever.

Every receive and send polls with a deadline: a rank that died or stopped answering turns into an
:class:`MPIRankError` naming the rank (and what was awaited) after ``timeout`` seconds, instead of
a hang. The functions only use ``Iprobe``, ``recv``, ``isend`` and ``Request.Test`` of an mpi4py
communicator (lower-case, pickling variants), so any object with those methods works.
"""
import sys
import time
from typing import Any, Dict, Iterable, Optional

DEFAULT_TIMEOUT = 300.0
"""Seconds a party waits for one message before it gives up (``MPIFedAVGAPI(timeout=...)``)."""

# message tags
PARAMETERS_TAG = 11
GRADIENTS_TAG = 12

LOST_PEER_GRACE = 2.0
"""Seconds a rank that lost contact with a peer waits before it aborts the job (see abort_with_message)."""

_MIN_SLEEP = 1e-4
_MAX_SLEEP = 2e-3


class MPIRankError(RuntimeError):
    """A rank died, stopped answering within the timeout, or sent something unexpected.

    ``rank`` holds the rank (or ranks) at fault.
    """

    def __init__(self, message: str, rank=None):
        super().__init__(message)
        self.rank = rank


def check_timeout(timeout) -> Optional[float]:
    """``None`` (wait forever) or a positive number of seconds."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds or None, got {type(timeout).__name__}")
    if not timeout > 0 or timeout != timeout or timeout == float("inf"):
        raise ValueError(f"timeout must be > 0 seconds (or None to wait forever), got {timeout}")
    return float(timeout)


def _deadline(timeout: Optional[float]) -> Optional[float]:
    return None if timeout is None else time.monotonic() + timeout


def _expired(deadline: Optional[float]) -> bool:
    return deadline is not None and time.monotonic() > deadline


def _silent_ranks(ranks, did_not: str, timeout: float) -> MPIRankError:
    """The error for ``ranks`` that did not ``did_not`` within ``timeout`` seconds; ``.rank`` names them."""
    noun = "rank" if len(ranks) == 1 else "ranks"
    return MPIRankError(
        f"MPI {noun} {', '.join(str(r) for r in ranks)} did not {did_not} within {timeout:g} s "
        f"(the rank died or stopped answering); the run is stopped",
        rank=ranks[0] if len(ranks) == 1 else tuple(ranks),
    )


def recv_from(comm, source: int, tag: int, timeout: Optional[float], what: str) -> Any:
    """Receive one message from ``source`` with ``tag``; raise :class:`MPIRankError` after ``timeout`` s."""
    return gather_from(comm, [source], tag, timeout, what)[source]


def gather_from(comm, sources: Iterable[int], tag: int, timeout: Optional[float], what: str) -> Dict[int, Any]:
    """Receive one message with ``tag`` from each rank of ``sources`` (in whatever order they come).

    Raises :class:`MPIRankError` naming every rank still missing once ``timeout`` seconds passed.
    """
    pending = list(dict.fromkeys(int(s) for s in sources))
    received: Dict[int, Any] = {}
    deadline = _deadline(timeout)
    sleep = _MIN_SLEEP
    while pending:
        progressed = False
        for src in list(pending):
            if comm.Iprobe(source=src, tag=tag):
                received[src] = comm.recv(source=src, tag=tag)
                pending.remove(src)
                progressed = True
        if not pending:
            break
        if _expired(deadline):
            raise _silent_ranks(pending, f"send {what}", timeout)
        if progressed:
            sleep = _MIN_SLEEP
        else:
            time.sleep(sleep)
            sleep = min(2 * sleep, _MAX_SLEEP)
    return received


def send_to(comm, obj: Any, dests: Iterable[int], tag: int, timeout: Optional[float], what: str) -> None:
    """Send ``obj`` to each rank of ``dests``; raise :class:`MPIRankError` naming the ranks that did
    not take it within ``timeout`` seconds (a large message needs the receiver to post its receive)."""
    send_each(comm, [(obj, d) for d in dests], tag, timeout, what)


def send_each(comm, messages: Iterable, tag: int, timeout: Optional[float], what: str) -> None:
    """Send each ``(obj, dest)`` of ``messages`` at once, then wait for all (see :func:`send_to`)."""
    requests = {int(d): comm.isend(obj, dest=int(d), tag=tag) for obj, d in messages}
    deadline = _deadline(timeout)
    sleep = _MIN_SLEEP
    while requests:
        for dest in list(requests):
            if requests[dest].Test():
                del requests[dest]
        if not requests:
            break
        if _expired(deadline):
            raise _silent_ranks(list(requests), f"take {what}", timeout)
        time.sleep(sleep)
        sleep = min(2 * sleep, _MAX_SLEEP)


def abort_with_message(comm, exc: BaseException, errorcode: int = 1) -> None:
    """Print ``exc`` prefixed by this rank to stderr and abort every rank of ``comm``.

    An MPI job whose rank raised must not leave the others waiting: ``MPI_Abort`` ends them all
    and makes ``mpiexec`` exit non-zero.
    """
    rank = comm.Get_rank()
    sys.stdout.flush()
    if type(exc).__module__.startswith("mpi4py"):
        # MPI itself failed (typically a peer process died): a consequence, not the cause, so it
        # is worded apart from "stops the run" and the launcher ranks it below a dead rank's report
        sys.stderr.write(f"[aijack_lab] MPI rank {rank} lost contact with a peer: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}\n")
        sys.stderr.flush()
        # an immediate abort tears the job down before the dead rank's guard has reported it; give
        # the launcher a moment to see the death and end the job itself, naming the rank
        time.sleep(LOST_PEER_GRACE)
        comm.Abort(errorcode)
        return
    culprit = getattr(exc, "rank", None)
    tag = f"(rank={culprit if not isinstance(culprit, tuple) else ', '.join(map(str, culprit))})" if culprit is not None else ""
    first_line = str(exc).splitlines()[0] if str(exc) else ""
    sys.stderr.write(f"[aijack_lab] MPI rank {rank} stops the run: {type(exc).__name__}{tag}: {first_line}\n")
    sys.stderr.flush()
    comm.Abort(errorcode)
