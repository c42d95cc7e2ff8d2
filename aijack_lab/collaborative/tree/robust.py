"""Evaluating cost-aware robust trees: accuracy under a bounded feature attack.

``accuracy_under_attack(clf, x, y, budgets)``: every row counts as correct only if the model's
prediction stays right for every shift of each budgeted feature ``f`` by ``d`` in
``[-budgets[f], budgets[f]]`` (a grid of ``steps`` shifts, one feature at a time). With one
budgeted feature and a fine grid this is the exact worst case of that attacker.
"""
from typing import Mapping

import numpy as np

from ...utils.validation import check_positive, check_positive_int


def accuracy_under_attack(clf, x, y, budgets: Mapping[int, float], steps: int = 81) -> float:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError("x must be 2-D with one label in y per row")
    if not isinstance(budgets, Mapping):
        raise TypeError("budgets must be a mapping {feature id: budget}")
    steps = check_positive_int("steps", steps)
    ok = clf.predict(x) == y
    for f, eps in budgets.items():
        if not 0 <= int(f) < x.shape[1]:
            raise ValueError(f"budgets: feature {f} is not a column of x")
        eps = check_positive("budgets", eps, allow_zero=True)
        for d in np.linspace(-eps, eps, steps):
            z = x.copy()
            z[:, int(f)] += d
            ok &= clf.predict(z) == y
    return float(ok.mean())
