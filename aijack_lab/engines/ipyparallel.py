"""Federated clients on ipyparallel engines: ``FedAVGAPI(..., engine=IPyParallelEngine(n_engines=2))``;
the distillation APIs ``FedMDAPI``, ``FedGEMSAPI`` and ``DSFLAPI`` take ``engine=`` too.

Each round, every client's local training runs on an engine (client ``i`` on engine ``i mod n``);
for the distillation APIs, each client-side phase (transfer learning, computing the upload,
digest/distillation, revisit) does. The server stays in this process. Any client work goes through
``run_on_clients(api, jobs)`` (jobs of different clients run in parallel). Per job the engine gets
the client (its model, state and class, managers included) and its optimizer, runs the job's
function, and sends them back; their state is copied into the local objects, so the run gives the
same numbers as in-process training. A client's private data is shipped once and stays on its
engine (the loader's random state travels with each job), and so does what the API declares fixed
for the run with ``api.engine_resident(i)`` (the distillation clients' public data).

``IPyParallelEngine()`` starts a local cluster on first use (``engines="mpi"`` starts the engines
under ``mpiexec``), or joins a running one with ``profile=``/``cluster_id=`` or
``connection_file=`` (the controller's ``ipcontroller-client.json``). ``close()`` (or ``with``)
stops what it started and never stops a cluster it joined.

Failures: a client whose engine dies (or that raises) stops the round with
:class:`EngineFailedError` naming the client and the engine; a training that outlives ``timeout``
seconds does too. A cluster this engine started is then shut down.
"""
import os
import socket
import sys
import time
import uuid
from typing import Any, Dict, List, Optional

import torch

from .base import BaseEngine

DEFAULT_TIMEOUT = 300.0
"""Seconds one client's local training may take on an engine before the round is stopped."""

# what stays on an engine between rounds: client data, keyed by (session token, client index)
_STORE: Dict[Any, Any] = {}


def _dumps(obj, pinned: Dict[int, Any]) -> bytes:
    """cloudpickle ``obj``, writing the objects in ``pinned`` (id -> key) as references to the copies
    the other side already holds (so resident data is not shipped with every job)."""
    import io

    import cloudpickle

    class Pickler(cloudpickle.Pickler):
        def persistent_id(self, o):
            return pinned.get(id(o))

    buf = io.BytesIO()
    Pickler(buf).dump(obj)
    return buf.getvalue()


def _loads(blob: bytes, resident: Dict[Any, Any]):
    """Unpickle what ``_dumps`` wrote; references resolve to ``resident`` (key -> object)."""
    import io
    import pickle

    class Unpickler(pickle.Unpickler):
        def persistent_load(self, key):
            return resident[key]

    return Unpickler(io.BytesIO(blob)).load()


class EngineFailedError(RuntimeError):
    """An engine died, timed out or raised while training a client. ``client`` is its ``user_id``."""

    def __init__(self, message: str, client=None, engine_id=None):
        super().__init__(message)
        self.client = client
        self.engine_id = engine_id


def _engine_setup(threads):  # runs on an engine
    import os
    import socket

    import cloudpickle  # noqa: F401 - import now, not in the first round
    import torch

    import aijack_lab.collaborative  # noqa: F401
    import aijack_lab.engines.ipyparallel  # noqa: F401

    torch.set_num_threads(int(threads))
    return socket.gethostname(), os.getpid()


def _remote_run(blob, key, loader_blob, gen_state, res_key, resident_blob):  # runs on an engine
    import cloudpickle

    from aijack_lab.engines import ipyparallel as here
    from aijack_lab.engines.base import CLIENT_LOADER, with_loader

    if loader_blob is not None:
        here._STORE[key] = cloudpickle.loads(loader_blob)
    if resident_blob is not None:
        here._STORE[res_key] = dict(cloudpickle.loads(resident_blob))
    resident = here._STORE.get(res_key, {}) if res_key is not None else {}
    client, optimizer, fn, args = here._loads(blob, resident)
    gen = None
    if any(a is CLIENT_LOADER for a in args):
        loader = here._STORE.get(key)
        if loader is None:
            raise RuntimeError("this engine lost the client's data (was it restarted?)")
        gen = getattr(loader, "generator", None)
        if gen_state is not None and gen is not None:
            gen.set_state(gen_state)
        args = with_loader(args, loader)
    result = fn(client, optimizer, *args)
    new_state = gen.get_state() if gen is not None else None
    pinned = {id(o): k for k, o in resident.items()}
    return here._dumps((client, optimizer, result), pinned), new_state


def _copy_back(local, remote) -> None:
    """Make ``local`` (a client or optimizer here) hold ``remote``'s state, keeping its identity."""
    for name, value in vars(remote).items():
        mine = getattr(local, name, None)
        if isinstance(value, torch.nn.Module) and isinstance(mine, torch.nn.Module):
            mine.load_state_dict(value.state_dict())
        elif isinstance(value, torch.optim.Optimizer) and isinstance(mine, torch.optim.Optimizer):
            mine.load_state_dict(value.state_dict())
        else:
            setattr(local, name, value)


def _own_processes(where) -> list:
    """psutil handles of this host's engines and of their ipyparallel child processes (the nanny)."""
    try:
        import psutil
    except ImportError:  # pragma: no cover
        return []
    procs = []
    here = socket.gethostname()
    for host, pid in where:
        if host != here:
            continue
        try:
            proc = psutil.Process(pid)
            procs.append(proc)
            procs.extend(c for c in proc.children(recursive=True) if "ipyparallel" in " ".join(c.cmdline()))
        except Exception:
            pass
    return procs


def _reap(procs, wait: float = 5.0) -> None:
    """Terminate (then kill) the given psutil processes that are still running."""
    try:
        import psutil
    except ImportError:  # pragma: no cover
        return
    alive = [p for p in procs if p.is_running()]
    for p in alive:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(alive, timeout=wait)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass


def _process_gone(pid: int) -> bool:
    try:
        import psutil

        proc = psutil.Process(pid)
        return proc.status() == psutil.STATUS_ZOMBIE
    except ImportError:  # pragma: no cover - psutil comes with ipyparallel
        try:
            os.kill(pid, 0)
            return False
        except ProcessLookupError:
            return True
    except Exception:  # psutil.NoSuchProcess and friends
        return True


class IPyParallelEngine(BaseEngine):
    """Run each client's local training on an ipyparallel engine.

    Args:
        n_engines: engines to start (local cluster) or to use (joined cluster; None = all).
        engines: "local" (processes on this machine) or "mpi" (engines under ``mpiexec``).
        profile, cluster_id: join the running cluster of this IPython profile / cluster id.
        connection_file: join the cluster whose ``ipcontroller-client.json`` this is.
        timeout: seconds one client's local training may take (default 300; None = no limit).
        start_timeout: seconds to wait for the engines to come up.
        threads_per_engine: torch threads on each engine (1 suits one engine per core).
        mpiexec: the ``mpiexec`` for ``engines="mpi"`` (default: this environment's).
    """

    name = "ipyparallel"

    def __init__(
        self,
        n_engines: Optional[int] = 2,
        engines: str = "local",
        profile: Optional[str] = None,
        cluster_id: Optional[str] = None,
        connection_file: Optional[str] = None,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
        start_timeout: float = 120.0,
        threads_per_engine: int = 1,
        mpiexec: Optional[str] = None,
    ):
        from ..utils.validation import check_positive, check_positive_int

        if n_engines is not None:
            check_positive_int("n_engines", n_engines)
        if engines not in ("local", "mpi"):
            raise ValueError(f"engines must be 'local' or 'mpi', got {engines!r}")
        joining = profile is not None or cluster_id is not None or connection_file is not None
        if not joining and n_engines is None:
            raise ValueError("n_engines is required to start a cluster (None only when joining one)")
        if connection_file is not None and not os.path.exists(connection_file):
            raise ValueError(f"connection_file {connection_file!r} does not exist")
        self.n_engines = n_engines
        self.engines = engines
        self.profile = profile
        self.cluster_id = cluster_id
        self.connection_file = connection_file
        self.timeout = None if timeout is None else check_positive("timeout", timeout)
        self.start_timeout = check_positive("start_timeout", start_timeout)
        self.threads_per_engine = check_positive_int("threads_per_engine", threads_per_engine)
        self.mpiexec = mpiexec
        self.joined = joining
        self._cluster = None
        self._rc = None
        self._ids: List[int] = []
        self._where: Dict[int, tuple] = {}  # engine id -> (host, pid)
        self._sent: Dict[Any, Any] = {}  # what is on the engines: key -> weak reference to the local object
        self._token = uuid.uuid4().hex
        self._own_processes = []
        self.state = "not started"
        self.bytes_sent = 0
        self.bytes_received = 0

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def started(self) -> bool:
        return self._rc is not None

    @property
    def status(self) -> str:
        """One line for people: what runs where."""
        if self._rc is None:
            return f"ipyparallel: {self.state}"
        kind = "joined cluster" if self.joined else ("local cluster under mpiexec" if self.engines == "mpi" else "local cluster")
        pids = ", ".join(f"{eid}:{pid}@{host}" for eid, (host, pid) in sorted(self._where.items()))
        return f"ipyparallel: {len(self._ids)} engines up ({kind}; engine:pid@host {pids})"

    @property
    def client_connection_file(self) -> Optional[str]:
        """The ``ipcontroller-client.json`` of the cluster this engine uses (to join it from elsewhere)."""
        if self.connection_file is not None:
            return self.connection_file
        cluster = self._cluster
        if cluster is None:
            return None
        suffix = f"-{cluster.cluster_id}" if cluster.cluster_id else ""
        path = os.path.join(cluster.profile_dir, "security", f"ipcontroller{suffix}-client.json")
        return path if os.path.exists(path) else None

    @property
    def pids(self) -> Dict[str, Any]:
        """Process ids: ``{"controller": pid or None, "engines": {engine id: pid}, "all": [...]}``
        (``all``: every process of a cluster this engine started, nannies included)."""
        controller = getattr(getattr(self._cluster, "controller", None), "pid", None)
        controller = controller if controller and controller > 0 else None
        own = [p.pid for p in self._own_processes]
        return {"controller": controller,
                "engines": {eid: pid for eid, (host, pid) in self._where.items()},
                "all": sorted(set(own + ([controller] if controller else [])))}

    def start(self) -> "IPyParallelEngine":
        """Start (or join) the cluster and wait for its engines; a no-op when already started."""
        if self._rc is not None:
            return self
        import ipyparallel as ipp

        try:
            if self.joined:
                if self.connection_file is not None:
                    rc = ipp.Client(self.connection_file, timeout=self.start_timeout)
                else:
                    kwargs = {"timeout": self.start_timeout, "profile": self.profile or "default"}
                    if self.cluster_id is not None:
                        kwargs["cluster_id"] = self.cluster_id
                    rc = ipp.Client(**kwargs)
                if self.n_engines is not None:
                    rc.wait_for_engines(self.n_engines, timeout=self.start_timeout)
            else:
                self.state = "starting"
                cluster = ipp.Cluster(n=self.n_engines, engines=self.engines, log_level=40)
                if self.engines == "mpi":
                    from ..collaborative.mpi.launch import default_mpiexec

                    cluster.config.MPILauncher.mpi_cmd = [self.mpiexec or default_mpiexec()]
                self._cluster = cluster
                rc = cluster.start_and_connect_sync(activate=False)
                rc.wait_for_engines(self.n_engines, timeout=self.start_timeout)
            self._rc = rc
            ids = sorted(rc.ids)
            self._ids = ids if self.n_engines is None else ids[: self.n_engines]
            if not self._ids:
                raise RuntimeError("the cluster has no engines")
            where = rc[self._ids].apply_sync(_engine_setup, self.threads_per_engine)
            self._where = dict(zip(self._ids, where))
            if not self.joined:  # remember our engines and their nanny children, to reap them on close
                self._own_processes = _own_processes(where)
            self.state = "running"
        except BaseException as exc:
            self.state = f"failed to start: {type(exc).__name__}: {exc}"
            self.close()
            self.state = f"failed to start: {type(exc).__name__}: {exc}"
            raise
        return self

    def close(self) -> None:
        """Shut down the cluster if this engine started it; disconnect from a joined one."""
        rc, cluster = self._rc, self._cluster
        self._rc, self._cluster = None, None
        self._ids, self._where, self._sent = [], {}, {}
        if rc is not None:
            try:
                rc.close()
            except Exception:
                pass
        if cluster is not None:
            try:
                cluster.stop_cluster_sync()
            except Exception:
                pass
            # an engine killed from outside leaves its nanny child behind: end what we started
            _reap(self._own_processes)
            self._own_processes = []
        if not self.state.startswith("failed"):
            self.state = "stopped"

    # -- training -------------------------------------------------------------------------------
    def engine_of(self, client_index: int) -> int:
        return self._ids[client_index % len(self._ids)]

    def run_on_clients(self, api, jobs, task: str = "its work", round=None) -> List[Any]:
        """Run the jobs of different clients in parallel, each on its client's engine (see BaseEngine)."""
        import cloudpickle

        from .base import CLIENT_LOADER, check_jobs, client_optimizers

        jobs = check_jobs(api, jobs)
        optimizers = client_optimizers(api)
        loaders = getattr(api, "local_dataloaders", None)
        when = f" in round {round}" if round is not None else ""
        resident_of = getattr(api, "engine_resident", None) or (lambda i: [])
        self.start()
        rc = self._rc
        tasks = []
        for i, fn, args in jobs:
            eid = self.engine_of(i)
            key = loader_blob = gen_state = None
            if any(a is CLIENT_LOADER for a in args):  # the client's data goes once and stays on its engine
                loader = loaders[i]
                key = (self._token, i, id(loader))
                if not self._on_engine(key, loader):
                    loader_blob = cloudpickle.dumps(loader)
                gen = getattr(loader, "generator", None)
                gen_state = gen.get_state() if gen is not None else None
            # objects the API declares fixed for the run (e.g. a client's public data) stay on the engine too
            resident = {(i, k): o for k, o in enumerate(resident_of(i))}
            res_key = resident_blob = None
            if resident:
                res_key = (self._token, "resident", i)
                if not self._on_engine(res_key, tuple(resident.values())):
                    resident_blob = cloudpickle.dumps(list(resident.items()))
            blob = _dumps((api.clients[i], optimizers[i], fn, tuple(args)), {id(o): k for k, o in resident.items()})
            self.bytes_sent += len(blob) + len(loader_blob or b"") + len(resident_blob or b"")
            try:
                ar = rc[eid].apply_async(_remote_run, blob, key, loader_blob, gen_state, res_key, resident_blob)
            except Exception as exc:  # the engine unregistered: it died before this call reached it
                pid = self._where.get(eid, (None, "?"))[1]
                self._fail(f"engine {eid} (pid {pid}) died while training client {self._name(api, i)}{when} "
                           f"(it was gone when {task} started: {_describe(exc)})", api, i, eid)
            if loader_blob is not None:
                self._remember(key, loaders[i])
            if resident_blob is not None:
                self._remember(res_key, tuple(resident.values()))
            tasks.append((i, eid, ar, resident))
        replies = self._wait([t[:3] for t in tasks], api, task, when)
        results = []
        for (i, eid, _, resident), (blob, gen_state) in zip(tasks, replies):
            self.bytes_received += len(blob)
            remote_client, remote_optimizer, result = _loads(blob, resident)
            _copy_back(api.clients[i], remote_client)
            optimizers[i].load_state_dict(remote_optimizer.state_dict())
            if gen_state is not None:
                gen = getattr(loaders[i], "generator", None)
                if gen is not None:
                    gen.set_state(gen_state)
            results.append(result)
        return results

    def _on_engine(self, key, objs) -> bool:
        """Whether ``objs`` (an object or a tuple of them) were shipped under ``key`` and are still the
        same objects here (weak references: an id reused by a new object does not count)."""
        refs = self._sent.get(key)
        items = objs if isinstance(objs, tuple) else (objs,)
        return refs is not None and len(refs) == len(items) and all(r() is o for r, o in zip(refs, items))

    def _remember(self, key, objs) -> None:
        import weakref

        items = objs if isinstance(objs, tuple) else (objs,)
        refs = []
        for o in items:
            try:
                refs.append(weakref.ref(o))
            except TypeError:  # no weak references: keep it alive so its id is not reused
                refs.append(lambda o=o: o)
        self._sent[key] = tuple(refs)

    def _wait(self, tasks, api, task: str, when: str) -> List[Any]:
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        results: Dict[int, Any] = {}
        local_host = socket.gethostname()
        while len(results) < len(tasks):
            for pos, (i, eid, ar) in enumerate(tasks):
                if pos in results or not ar.ready():
                    continue
                try:
                    results[pos] = ar.get()
                except Exception as exc:
                    if _is_engine_death(exc):
                        pid = self._where.get(eid, (None, "?"))[1]
                        self._fail(f"engine {eid} (pid {pid}) died while training client {self._name(api, i)}"
                                   f"{when}", api, i, eid)
                    self._fail(f"client {self._name(api, i)} failed on engine {eid}{when} ({task}): "
                               f"{_describe(exc)}", api, i, eid)
            if len(results) == len(tasks):
                break
            for pos, (i, eid, ar) in enumerate(tasks):
                host, pid = self._where.get(eid, (None, None))
                if pos not in results and host == local_host and pid is not None and _process_gone(pid):
                    self._fail(f"engine {eid} (pid {pid}) died while training client {self._name(api, i)}"
                               f"{when}", api, i, eid)
            if deadline is not None and time.monotonic() > deadline:
                pending = [(i, eid) for pos, (i, eid, _) in enumerate(tasks) if pos not in results]
                i, eid = pending[0]
                names = ", ".join(f"client {self._name(api, c)} (engine {e})" for c, e in pending)
                self._fail(f"{names} did not finish {task}{when} within {self.timeout:g} s",
                           api, i, eid)
            time.sleep(0.005)
        return [results[pos] for pos in range(len(tasks))]

    @staticmethod
    def _name(api, i) -> str:
        return str(getattr(api.clients[i], "user_id", i))

    def _fail(self, message: str, api, i: int, eid: int):
        try:
            if self._rc is not None:
                self._rc.abort()
        except Exception:
            pass
        started_here = not self.joined
        self.state = f"failed: {message}"
        self.close()
        if started_here:
            message += "; the cluster this engine started was shut down"
        raise EngineFailedError(message, client=getattr(api.clients[i], "user_id", i), engine_id=eid)


def _is_engine_death(exc: BaseException) -> bool:
    try:
        from ipyparallel.error import EngineError
    except ImportError:  # pragma: no cover
        EngineError = ()
    return isinstance(exc, EngineError) or getattr(exc, "ename", None) == "EngineError"


def _describe(exc: BaseException) -> str:
    ename = getattr(exc, "ename", None)
    if ename:  # ipyparallel RemoteError
        return f"{ename}: {getattr(exc, 'evalue', '')}"
    return f"{type(exc).__name__}: {exc}"
