"""Rank guard: ``mpiexec -n K python -m aijack_lab.collaborative.mpi.guard script.py args``.

Runs the rank's Python as a child (it inherits the MPI launcher's environment and file
descriptors, so it is the real MPI process) and waits for it. If the rank is killed by a signal
(``kill -9``, the OOM killer, a segfault) the guard prints
``[aijack_lab] MPI rank r (pid p) was killed by signal s`` before ``mpiexec`` tears the job down, so
the failure names the rank (MPICH's own message names a PID, not always the dead one's). The child
dies with the guard (Linux ``PR_SET_PDEATHSIG``), so cleaning up the guards cleans up the ranks.
``run_mpi_job`` uses the guard by default.
"""
import os
import signal
import subprocess
import sys


def _rank() -> str:
    for var in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "MPI_LOCALRANKID"):
        if os.environ.get(var):
            return os.environ[var]
    return "?"


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        sys.stderr.write("usage: python -m aijack_lab.collaborative.mpi.guard script.py [args...]\n")
        return 2
    child = subprocess.Popen([sys.executable, *argv], close_fds=False,
                             preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, _f: child.send_signal(s))
    code = child.wait()
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        sys.stdout.flush()
        sys.stderr.write(f"[aijack_lab] MPI rank {_rank()} (pid {child.pid}) was killed by signal {-code} ({name})\n")
        sys.stderr.flush()
        return 128 - code
    return code


if __name__ == "__main__":
    sys.exit(main())
