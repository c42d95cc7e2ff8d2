"""Cost-aware robust trees (paper Code S-7): with attack budgets set by set_cost_constraint_map, the
ensemble's accuracy under a bounded feature attack beats the unconstrained ensemble's."""
import numpy as np
import pytest

from aijack_lab.collaborative.tree import XGBoostClassifierAPI, XGBoostClient


def _data(rng, n):
    # feature 0: very predictive but cheap to change; feature 1: weaker, costly to change; feature 2: noise
    y = rng.integers(0, 2, n)
    x = np.c_[y + 0.25 * rng.normal(size=n), y + 0.7 * rng.normal(size=n), rng.normal(size=n)]
    return x, y


def attacked_accuracy(clf, X, y, budgets):
    """Exact worst case over a fine grid: every row may move each budgeted feature within its budget
    (one feature at a time here, since only feature 0 has a budget)."""
    ok = clf.predict(X) == y
    for f, eps in budgets.items():
        for d in np.linspace(-eps, eps, 81):
            Z = X.copy()
            Z[:, f] += d
            ok &= clf.predict(Z) == y
    return ok.mean()


@pytest.mark.parametrize("eps,margin", [(1.0, 0.3), (0.5, 0.1)])
def test_cost_constraints_raise_accuracy_under_attack(eps, margin):
    rng = np.random.default_rng(1)
    Xtr, ytr = _data(rng, 1000)
    Xte, yte = _data(rng, 1000)
    budgets = {0: eps}
    plain = XGBoostClassifierAPI(2, 10, depth=3, learning_rate=0.3, init_value=0.0).fit(
        [XGBoostClient(Xtr, 2, None, 0, 1, 1.0, 64, False, 0)], ytr)
    p = XGBoostClient(Xtr, 2, None, 0, 1, 1.0, 64, False, 0)
    p.set_cost_constraint_map(budgets)
    robust = XGBoostClassifierAPI(2, 10, depth=3, learning_rate=0.3, init_value=0.0).fit([p], ytr)
    a_plain, a_robust = attacked_accuracy(plain, Xte, yte, budgets), attacked_accuracy(robust, Xte, yte, budgets)
    assert a_robust >= a_plain + margin, (a_plain, a_robust)
    assert (robust.predict(Xte) == yte).mean() > 0.7  # still a useful classifier on clean data
    # the robust ensemble leans on the costly feature 1 more than the plain one
    share = lambda clf: np.mean([n["feature_id"] == 1 for t in clf.describe_trees() for n in t if not n["leaf"]])
    assert share(robust) > share(plain)


def test_zero_budgets_change_nothing_and_bad_constraints_raise():
    rng = np.random.default_rng(2)
    X, y = _data(rng, 300)
    a = XGBoostClassifierAPI(2, 3, depth=3).fit([XGBoostClient(X)], y)
    p = XGBoostClient(X).set_cost_constraint_map([0.0, 0.0, 0.0])
    b = XGBoostClassifierAPI(2, 3, depth=3).fit([p], y)
    assert a.trees == b.trees
    with pytest.raises(ValueError, match="constraints"):
        XGBoostClient(X).set_cost_constraint_map({7: 1.0})
    with pytest.raises(ValueError, match="constraints"):
        XGBoostClient(X).set_cost_constraint_map([1.0])
    with pytest.raises(ValueError, match="constraints"):
        XGBoostClient(X).set_cost_constraint_map([1.0, -1.0, 0.0])
    with pytest.raises(TypeError, match="constraints"):
        XGBoostClient(X).set_cost_constraint_map(5)
