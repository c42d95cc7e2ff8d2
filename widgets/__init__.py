"""Interactive panels, one per algorithm, and the gallery (installed as ``aijack_lab.widgets``).

Every module of this package that defines panels registers them with ``@register``; they are all
imported by ``load_all_panels()`` (which ``gallery()`` calls), so adding a panel means adding a
module here and nothing else.
"""
import importlib
import pkgutil

from .base import Panel
from .params import BoolParam, ChoiceParam, FloatParam, IntParam, Param
from .registry import register

_INFRA = {"base", "params", "registry", "catalog", "gallery_view", "testing", "common"}
_loaded = False


def load_all_panels() -> None:
    global _loaded
    if _loaded:
        return
    for info in pkgutil.iter_modules(__path__):
        if info.name not in _INFRA and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    _loaded = True


def __getattr__(name):
    # panels are reachable as aijack_lab.widgets.FGSMPanel without importing every module up front
    if name == "gallery":
        from .gallery_view import gallery

        return gallery
    load_all_panels()
    import sys

    # any Panel defined in a panel module (registered or not, e.g. FLComparePanel)
    for module_name, module in list(sys.modules.items()):
        if module_name.startswith(__name__ + ".") and module is not None:
            obj = module.__dict__.get(name)
            if isinstance(obj, type) and issubclass(obj, Panel):
                return obj
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Panel", "Param", "IntParam", "FloatParam", "ChoiceParam", "BoolParam", "register", "gallery", "load_all_panels"]
