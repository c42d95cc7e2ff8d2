"""Engine interface and the in-process engine."""
import abc
import importlib
from typing import Callable, Dict, List, Tuple, Union


class BaseEngine(abc.ABC):
    name = "base"

    @abc.abstractmethod
    def local_train(self, api, com_cnt: int) -> List[List[float]]:
        """Train every client of ``api`` for ``api.local_epoch`` epochs; return per-client epoch losses."""

    def close(self) -> None:
        """Release what the engine started (clusters, processes)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class InProcessEngine(BaseEngine):
    """Clients train one after another in this process."""

    name = "inprocess"

    def local_train(self, api, com_cnt: int) -> List[List[float]]:
        return [
            client.local_train(api.local_epoch, api.criterion, loader, optimizer, communication_id=com_cnt)
            for client, loader, optimizer in zip(api.clients, api.local_dataloaders, api.local_optimizers)
        ]


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
    if hasattr(engine, "local_train"):
        return engine
    raise TypeError(f"engine must be None, a name or an engine object, got {type(engine).__name__}")
