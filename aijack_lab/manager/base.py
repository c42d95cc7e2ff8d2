"""The manager pattern of the paper (``manager.attach(FedAVGClient)``).

A manager never edits the class it is given: ``attach`` returns a new subclass, so attaching
two managers composes (``m2.attach(m1.attach(Client))`` has both abilities) and the base class
stays usable on its own.
"""
import abc
from typing import Tuple, Type


class BaseManager(abc.ABC):
    """Base of every manager. Subclasses implement :meth:`extend`, which returns a subclass of ``cls``.

    Arguments given to the manager are kept in ``self.args``/``self.kwargs`` so that the classes it
    builds can read them (``manager = self`` in ``extend`` is the usual closure).
    """

    def __init__(self, *args, **kwargs):
        self.args = args
        self.kwargs = kwargs

    @abc.abstractmethod
    def extend(self, cls: type) -> type:
        """Return a new subclass of ``cls`` with this manager's ability."""

    def attach(self, cls: Type) -> Type:
        if not isinstance(cls, type):
            raise TypeError(
                f"{type(self).__name__}.attach expects a class (e.g. FedAVGClient), got an instance of {type(cls).__name__}"
            )
        new_cls = self.extend(cls)
        if not (isinstance(new_cls, type) and issubclass(new_cls, cls)) or new_cls is cls:
            raise TypeError(f"{type(self).__name__}.extend must return a new subclass of {cls.__name__}")
        prefix = type(self).__name__.replace("Manager", "").replace("Wrapper", "")
        new_cls.__name__ = f"{prefix}{cls.__name__}"
        new_cls.__qualname__ = new_cls.__name__
        new_cls._aijack_managers = attached_managers(cls) + (self,)
        return new_cls


def attached_managers(cls: type) -> Tuple[BaseManager, ...]:
    """The managers attached to ``cls`` (outermost last)."""
    return tuple(getattr(cls, "_aijack_managers", ()))
