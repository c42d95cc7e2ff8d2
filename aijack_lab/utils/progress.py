"""Progress callbacks: long loops call ``progress(step, total)`` after each step.

A callback may raise to stop the loop early (the panels' Stop button raises ``StopRequested``);
library loops never swallow such exceptions.
"""
from typing import Callable, Optional

ProgressCallback = Callable[[int, int], None]


class StopRequested(Exception):
    """Raised by a progress callback to end a long run early."""


def report_progress(progress: Optional[ProgressCallback], step: int, total: int) -> None:
    if progress is not None:
        progress(step, total)
