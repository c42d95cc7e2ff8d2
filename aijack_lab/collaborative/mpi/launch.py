"""Launch an MPI job from Python (a notebook, a test, a panel) and turn its failure into an error
naming the rank.

``run_mpi_job("examples/mpi_fedavg.py", n=3, args=["--rounds", "3"])`` runs
``<venv>/bin/mpiexec -n 3 <python> script args``. While the job runs, every rank of an
``MPIFedAVGAPI`` writes ``rank<r>.json`` (rank, pid, host, last finished round) to the status
folder it finds in ``AIJACK_MPI_STATUS_DIR``. When the job fails, the error says which rank:

- a rank that raised (or the server that timed out waiting for a rank) prints
  ``[aijack_lab] MPI rank r stops the run: ...(rank=k)...`` and aborts the job;
- a rank killed by a signal is named by its guard (``[aijack_lab] MPI rank r (pid p) was killed by
  signal s``), else by the PID MPICH's ``mpiexec`` prints, which the status folder maps back to the
  rank; the errors other ranks then see (a lost peer) never hide it;
- if the whole job outlives ``timeout`` it is killed and the ranks furthest behind are named.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from ...utils.validation import check_positive_int
from .transport import MPIRankError, check_timeout

STATUS_DIR_ENV = "AIJACK_MPI_STATUS_DIR"


def default_mpiexec() -> str:
    """The ``mpiexec`` of this environment (``pip install mpich`` puts it next to python), else PATH's."""
    for candidate in (os.path.join(sys.prefix, "bin", "mpiexec"), os.path.join(os.path.dirname(sys.executable), "mpiexec")):
        if os.path.exists(candidate):
            return candidate
    from shutil import which

    found = which("mpiexec")
    if found is None:
        raise FileNotFoundError("no mpiexec found: pip install mpi4py mpich (or install an MPI and put mpiexec on PATH)")
    return found


def write_rank_status(rank: int, round_done: int) -> None:
    """Called by the MPI APIs: record this rank's pid, host and last finished round (if asked to)."""
    folder = os.environ.get(STATUS_DIR_ENV)
    if not folder:
        return
    path = os.path.join(folder, f"rank{rank}.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"rank": rank, "pid": os.getpid(), "ppid": os.getppid(), "host": socket.gethostname(),
                   "round": round_done}, f)
    os.replace(tmp, path)


def read_rank_status(folder: str) -> Dict[int, dict]:
    out = {}
    for name in os.listdir(folder):
        m = re.fullmatch(r"rank(\d+)\.json", name)
        if m:
            try:
                with open(os.path.join(folder, name)) as f:
                    out[int(m.group(1))] = json.load(f)
            except (OSError, ValueError):
                pass
    return out


@dataclass
class MPIJobResult:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    ranks: Dict[int, dict] = field(default_factory=dict)


def _explain_failure(output: str, ranks: Dict[int, dict]) -> MPIRankError:
    """Name the rank at the root of a failed job.

    Evidence, strongest first: a rank killed by a signal (the guard's line; the other ranks' errors
    are consequences of it), a rank that named a culprit, a rank that raised, the PID MPICH
    reports; a rank that only saw MPI communication fail (its peer died) comes last.
    """
    tail = "\n".join(output.strip().splitlines()[-15:])
    killed = re.search(r"\[aijack_lab\] MPI rank (\d+) \(pid (\d+)\) was killed by signal (\d+).*", output)
    if killed:
        r = int(killed.group(1))
        last = ranks.get(r, {}).get("round", -1)
        return MPIRankError(f"{killed.group(0).replace('[aijack_lab] ', '')} after round {last}; mpiexec ended the job",
                            rank=r)
    reports = re.findall(r"\[aijack_lab\] MPI rank (\d+) stops the run: (.*)", output)
    for reporter, message in reports:
        culprit = re.search(r"\(rank=([\d, ]+)\)", message)
        if culprit:
            rank = int(culprit.group(1).split(",")[0])
            return MPIRankError(f"MPI job failed: rank {reporter} reported: {message}", rank=rank)
    if reports:
        reporter, message = reports[0]
        return MPIRankError(f"MPI job failed: rank {reporter} reported: {message}", rank=int(reporter))
    m = re.search(r"PID (\d+) RUNNING AT (\S+)\s+=\s+(?:EXIT CODE|KILLED BY SIGNAL): (\d+)", output)
    if m:
        pid, host, code = int(m.group(1)), m.group(2), int(m.group(3))
        # the PID is the rank's own or, under the guard, its parent's
        by_pid = {info.get(key): r for r, info in ranks.items() for key in ("pid", "ppid") if info.get(key)}
        if pid in by_pid:
            r = by_pid[pid]
            last = ranks[r].get("round", -1)
            return MPIRankError(
                f"MPI rank {r} (pid {pid} on {host}) died with exit code/signal {code} after round {last}; "
                f"mpiexec ended the job.\n{tail}", rank=r)
    comm = re.search(r"\[aijack_lab\] MPI rank (\d+) lost contact with a peer: (.*)", output)
    if comm:
        return MPIRankError(f"MPI job failed: rank {comm.group(1)} lost contact with a peer ({comm.group(2)}); "
                            f"the rank that failed first is unknown.\n{tail}")
    if m:
        pid, host, code = int(m.group(1)), m.group(2), int(m.group(3))
        return MPIRankError(f"an MPI process (pid {pid} on {host}) died with exit code/signal {code} before it "
                            f"reported its rank; mpiexec ended the job.\n{tail}")
    return MPIRankError(f"MPI job failed.\n{tail}")


def run_mpi_job(
    script: str,
    n: int,
    args: Sequence[str] = (),
    timeout: Optional[float] = 600.0,
    mpiexec: Optional[str] = None,
    mpiexec_args: Sequence[str] = (),
    python: Optional[str] = None,
    env: Optional[Dict[str, str]] = None,
    status_dir: Optional[str] = None,
    check: bool = True,
    guard: bool = True,
) -> MPIJobResult:
    """Run ``mpiexec -n n python script *args`` and wait at most ``timeout`` seconds.

    Raises :class:`MPIRankError` naming the failed rank when the job fails (``check=True``); the
    whole process group is killed on timeout, so nothing is left running. ``guard=True`` runs each
    rank under :mod:`aijack_lab.collaborative.mpi.guard`, which names a rank killed by a signal.
    """
    n = check_positive_int("n", n)
    timeout = check_timeout(timeout)
    if not os.path.exists(script):
        raise FileNotFoundError(f"script {script!r} does not exist")
    guard_args = ["-m", "aijack_lab.collaborative.mpi.guard"] if guard else []
    cmd = [mpiexec or default_mpiexec(), *mpiexec_args, "-n", str(n), python or sys.executable, *guard_args,
           script, *map(str, args)]
    own_dir = None
    if status_dir is None:
        own_dir = tempfile.TemporaryDirectory(prefix="aijack_mpi_")
        status_dir = own_dir.name
    run_env = dict(os.environ if env is None else env)
    run_env[STATUS_DIR_ENV] = status_dir
    run_env.setdefault("OMP_NUM_THREADS", "1")
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=run_env,
                            start_new_session=True)
    try:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            ranks = read_rank_status(status_dir)
            behind = sorted(ranks.items(), key=lambda kv: kv[1].get("round", -1))
            missing = [r for r in range(n) if r not in ranks]
            who = missing or [r for r, info in behind if info.get("round", -1) == behind[0][1].get("round", -1)]
            raise MPIRankError(
                f"MPI job did not finish within {timeout:g} s and was killed; ranks furthest behind: {who}",
                rank=who[0] if len(who) == 1 else tuple(who))
        ranks = read_rank_status(status_dir)
        result = MPIJobResult(proc.returncode, out, err, time.perf_counter() - start, ranks)
        if check and proc.returncode != 0:
            raise _explain_failure(out + "\n" + err, ranks)
        return result
    finally:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        if own_dir is not None:
            own_dir.cleanup()
