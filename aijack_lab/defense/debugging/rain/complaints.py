"""Complaints: what the user says is wrong with the model's predictions on query rows.

Each complaint has a boolean check on hard predictions (``violated``) and a differentiable
relaxation on predicted probabilities (``relaxed``) that is *lower* when the complaint is better
satisfied — the quantity whose change Rain attributes to training records.
"""
from typing import Sequence

import torch

from ....utils.validation import check_positive_int

_OPS = {"<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b, "==": lambda a, b: a == b}


class PointComplaint:
    """The prediction for query row ``row`` should be ``label``."""

    def __init__(self, row: int, label: int):
        self.row = check_positive_int("row", row, allow_zero=True)
        self.label = check_positive_int("label", label, allow_zero=True)

    def check_rows(self, num_rows: int, num_classes: int) -> None:
        if self.row >= num_rows:
            raise ValueError(f"complaint row {self.row} does not exist: the query has {num_rows} rows")
        if self.label >= num_classes:
            raise ValueError(f"complaint label {self.label} is not a class of a {num_classes}-class model")

    def relaxed(self, probs: torch.Tensor) -> torch.Tensor:
        return -torch.log(probs[self.row, self.label].clamp_min(1e-12))

    def violated(self, preds: torch.Tensor) -> bool:
        return int(preds[self.row]) != self.label

    def __repr__(self):
        return f"PointComplaint(row={self.row}, label={self.label})"


class AggregateComplaint:
    """``count(prediction == label over rows) <op> value``, e.g. "at most 3 of these rows predicted positive".

    Args:
        rows: indices of the query rows the aggregate runs over.
        label: the class being counted.
        op: one of "<=", ">=", "==".
        value: the count the user expects.
    """

    def __init__(self, rows: Sequence[int], label: int, op: str = "<=", value: float = 0):
        rows = torch.as_tensor(list(rows), dtype=torch.long)
        if rows.numel() == 0:
            raise ValueError("an aggregate complaint needs at least one row")
        if (rows < 0).any():
            raise ValueError("complaint rows must be non-negative indices")
        if op not in _OPS:
            raise ValueError(f"op must be one of {sorted(_OPS)}, got {op!r}")
        self.rows, self.label, self.op, self.value = rows, check_positive_int("label", label, True), op, float(value)

    def check_rows(self, num_rows: int, num_classes: int) -> None:
        bad = self.rows[self.rows >= num_rows]
        if bad.numel():
            raise ValueError(f"complaint rows {bad.tolist()[:5]} do not exist: the query has {num_rows} rows")
        if self.label >= num_classes:
            raise ValueError(f"complaint label {self.label} is not a class of a {num_classes}-class model")

    def count(self, preds: torch.Tensor) -> int:
        return int((preds[self.rows] == self.label).sum())

    def relaxed(self, probs: torch.Tensor) -> torch.Tensor:
        soft_count = probs[self.rows, self.label].sum()
        if self.op == "<=":
            return soft_count
        if self.op == ">=":
            return -soft_count
        return (soft_count - self.value) ** 2

    def violated(self, preds: torch.Tensor) -> bool:
        return not _OPS[self.op](self.count(preds), self.value)

    def __repr__(self):
        return f"AggregateComplaint(count(pred=={self.label}) {self.op} {self.value:g} over {len(self.rows)} rows)"
