"""Engine interface and the in-process engine."""
import abc
import importlib
from typing import Any, Callable, Dict, List, Sequence, Tuple, Union


class _ClientLoader:
    """Stands, in a job's arguments, for the client's own private dataloader (``api.local_dataloaders[i]``).

    An engine that keeps client data where the client runs substitutes its copy there, so private
    data is not shipped with every job. Pickles by name, so it stays the one marker everywhere.
    """

    def __reduce__(self):
        return "CLIENT_LOADER"

    def __repr__(self):
        return "CLIENT_LOADER"


CLIENT_LOADER = _ClientLoader()

Job = Tuple[int, Callable[..., Any], Sequence[Any]]
"""``(client index, fn, args)``: run ``fn(client, optimizer, *args)`` for that client. ``fn`` must be a
module-level function (engines in other processes import it by name); ``CLIENT_LOADER`` in ``args``
is replaced by the client's private dataloader."""


def client_optimizers(api) -> List:
    """The per-client optimizers of an FL API (FedAVG family: ``local_optimizers``; distillation
    APIs: ``client_optimizers``)."""
    opts = getattr(api, "local_optimizers", None)
    if opts is None:
        opts = getattr(api, "client_optimizers", None)
    if opts is None:
        raise TypeError(f"{type(api).__name__} has neither local_optimizers nor client_optimizers")
    return list(opts)


def check_jobs(api, jobs: Sequence[Job]) -> List[Job]:
    """Validate ``jobs`` against ``api``: known client indices, each client at most once, callable fns."""
    jobs = [tuple(job) for job in jobs]
    seen = set()
    for job in jobs:
        if len(job) != 3:
            raise ValueError(f"a job is (client index, fn, args), got {job!r}")
        i, fn, args = job
        if not isinstance(i, int) or not 0 <= i < len(api.clients):
            raise ValueError(f"job client index must be in [0, {len(api.clients)}), got {i!r}")
        if i in seen:  # two jobs of one client would race on its state
            raise ValueError(f"client index {i} appears in more than one job")
        seen.add(i)
        if not callable(fn):
            raise TypeError(f"job fn for client {i} must be callable, got {type(fn).__name__}")
        if any(a is CLIENT_LOADER for a in args) and getattr(api, "local_dataloaders", None) is None:
            raise ValueError(f"a job for client {i} uses CLIENT_LOADER but the API has no local_dataloaders")
    return jobs


def with_loader(args: Sequence[Any], loader) -> tuple:
    return tuple(loader if a is CLIENT_LOADER else a for a in args)


def _fedavg_local_train(client, optimizer, local_epoch, criterion, loader, com_cnt):
    return client.local_train(local_epoch, criterion, loader, optimizer, communication_id=com_cnt)


class BaseEngine(abc.ABC):
    name = "base"

    def local_train(self, api, com_cnt: int) -> List[List[float]]:
        """Train every client of ``api`` for ``api.local_epoch`` epochs; return per-client epoch losses."""
        jobs = [(i, _fedavg_local_train, (api.local_epoch, api.criterion, CLIENT_LOADER, com_cnt))
                for i in range(len(api.clients))]
        return self.run_on_clients(api, jobs, task="local training", round=com_cnt)

    @abc.abstractmethod
    def run_on_clients(self, api, jobs: Sequence[Job], task: str = "its work", round=None) -> List[Any]:
        """Run each job ``(i, fn, args)`` as ``fn(api.clients[i], optimizer_i, *args)``; return the results
        in job order. Afterwards each client and its optimizer (and its private loader's random state)
        hold what the call left them with, as if it had run here. ``task``/``round`` name the work in
        error messages. An API may list objects of client ``i`` that stay fixed during the run with
        ``api.engine_resident(i)``; a remote engine may then keep them instead of shipping them per job."""

    def close(self) -> None:
        """Release what the engine started (clusters, processes)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class InProcessEngine(BaseEngine):
    """Clients run one after another in this process."""

    name = "inprocess"

    def run_on_clients(self, api, jobs: Sequence[Job], task: str = "its work", round=None) -> List[Any]:
        jobs = check_jobs(api, jobs)
        optimizers = client_optimizers(api)
        loaders = getattr(api, "local_dataloaders", None)
        return [fn(api.clients[i], optimizers[i], *with_loader(args, loaders[i] if loaders is not None else None))
                for i, fn, args in jobs]


# name -> "module:attr" (imported on demand, so optional engines cost nothing until used) or a factory
_ENGINES: Dict[str, Union[str, Callable[[], BaseEngine]]] = {"inprocess": InProcessEngine}


def register_engine(name: str, factory: Union[str, Callable[[], BaseEngine]]) -> None:
    _ENGINES[name] = factory


def available_engines() -> Tuple[str, ...]:
    return tuple(sorted(_ENGINES))


def resolve_engine(engine) -> BaseEngine:
    """None -> in-process; a registered name -> a new engine of that kind; an engine -> itself."""
    if engine is None:
        return InProcessEngine()
    if isinstance(engine, BaseEngine):
        return engine
    if isinstance(engine, str):
        if engine not in _ENGINES:
            raise ValueError(f"unknown engine {engine!r}; choose one of {available_engines()}")
        factory = _ENGINES[engine]
        if isinstance(factory, str):
            module, attr = factory.split(":")
            factory = getattr(importlib.import_module(module), attr)
        return factory()
    if hasattr(engine, "local_train") or hasattr(engine, "run_on_clients"):
        return engine
    raise TypeError(f"engine must be None, a name or an engine object, got {type(engine).__name__}")
