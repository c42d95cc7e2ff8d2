"""Running assertions over a model's outputs on a stream of inputs."""
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional

import torch


@dataclass(frozen=True)
class Violation:
    index: int        # position of the input in the stream
    assertion: str    # the assertion's name
    severity: float   # what the assertion returned (> 0)


class ModelAssertionMonitor:
    """Runs user predicates over ``model(x)`` for every input of a stream and records violations.

    Args:
        model: any callable (a torch module is run under ``no_grad`` in eval mode).
        assertions: ``{name: predicate(output, input, index) -> severity}``; a severity of 0/False
            means the output is fine, anything positive (or True) is a violation.
        sequence_assertions: ``{name: predicate(outputs) -> list of indices}`` for assertions over the
            whole output sequence (e.g. ``except_flicker``).
    """

    def __init__(
        self,
        model: Callable,
        assertions: Optional[Dict[str, Callable]] = None,
        sequence_assertions: Optional[Dict[str, Callable]] = None,
    ):
        if not callable(model):
            raise TypeError("model must be callable")
        self.model = model
        self.assertions = dict(assertions or {})
        self.sequence_assertions = dict(sequence_assertions or {})
        if not self.assertions and not self.sequence_assertions:
            raise ValueError("give at least one assertion")
        for name, fn in {**self.assertions, **self.sequence_assertions}.items():
            if not callable(fn):
                raise TypeError(f"assertion {name!r} is not callable")
        self.outputs: List = []
        self.violations: List[Violation] = []

    def _predict(self, x):
        if isinstance(self.model, torch.nn.Module):
            was = self.model.training
            self.model.eval()
            try:
                with torch.no_grad():
                    return self.model(x)
            finally:
                self.model.train(was)
        return self.model(x)

    def run(self, stream: Iterable) -> List[Violation]:
        """Feed every input of ``stream`` to the model; return (and keep) the violations in order."""
        self.outputs, self.violations = [], []
        for index, x in enumerate(stream):
            out = self._predict(x)
            self.outputs.append(out)
            for name, predicate in self.assertions.items():
                severity = float(predicate(out, x, index))
                if severity != severity:  # NaN severity is itself a bug in the predicate
                    raise ValueError(f"assertion {name!r} returned NaN at input {index}")
                if severity > 0:
                    self.violations.append(Violation(index, name, severity))
        for name, predicate in self.sequence_assertions.items():
            for index in predicate(self.outputs):
                if not 0 <= index < len(self.outputs):
                    raise ValueError(f"sequence assertion {name!r} flagged index {index} outside the stream")
                self.violations.append(Violation(int(index), name, 1.0))
        self.violations.sort(key=lambda v: (v.index, v.assertion))
        return self.violations

    def flagged(self, assertion: Optional[str] = None) -> List[int]:
        """Indices of the inputs with a violation (of ``assertion``, or of any)."""
        return sorted({v.index for v in self.violations if assertion is None or v.assertion == assertion})
