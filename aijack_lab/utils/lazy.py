"""Lazy re-exports: a package lists ``name -> submodule`` and imports it on first use.

This keeps ``import aijack_lab.attack`` light and lets one family fail to import without
hiding the others.
"""
import importlib
from typing import Dict, List


def lazy_exports(package: str, exports: Dict[str, str]):
    """Return ``(__getattr__, __dir__)`` for a package re-exporting ``exports``."""

    def __getattr__(name: str):
        if name in exports:
            module = importlib.import_module(exports[name], package)
            return getattr(module, name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> List[str]:
        return sorted(exports)

    return __getattr__, __dir__
