"""Checks shared by the panel tests: the Code view reproduces the panel's numbers."""
import math
from typing import Any, Dict


def exec_code(code: str) -> Dict[str, Any]:
    namespace: Dict[str, Any] = {"__name__": "__aijack_code_view__"}
    exec(compile(code, "<panel code view>", "exec"), namespace)
    return namespace


def _close(a, b, rtol, atol) -> bool:
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_close(x, y, rtol, atol) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=rtol, abs_tol=atol)
    return a == b


def assert_code_reproduces(panel, rtol: float = 1e-6, atol: float = 1e-6) -> Dict[str, Any]:
    """Run ``panel.code_text`` on its own and compare each ``panel.reproducible`` number with ``panel.result``."""
    if not panel.result:
        raise AssertionError("run the panel before checking its code view")
    if not panel.reproducible:
        raise AssertionError(f"{type(panel).__name__} declares no reproducible numbers")
    ns = exec_code(panel.code_text)
    for key in panel.reproducible:
        if key not in ns:
            raise AssertionError(f"the code view does not define {key!r}")
        value = ns[key]
        if hasattr(value, "tolist"):
            value = value.tolist()
        if not _close(panel.result[key], value, rtol, atol):
            raise AssertionError(f"{key}: panel gave {panel.result[key]!r}, code view gave {value!r}")
    return ns
