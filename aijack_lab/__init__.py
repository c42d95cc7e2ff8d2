"""aijack_lab: simulate and measure the security and privacy risks of machine learning.

The library imports no notebook stack; the panels live in ``aijack_lab.widgets``.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "core"]


def core():
    """Return the compiled C++ core (``aijack_lab._core``) with a clear error if it is missing."""
    try:
        from . import _core
    except ImportError as exc:  # pragma: no cover - only on a broken install
        raise ImportError(
            "aijack_lab's C++ core is not built; run `make build` (needs libgmp-dev and pkg-config)"
        ) from exc
    return _core
