"""Cost-aware robust trees panel: budgets per feature make the split search robust to bounded changes."""
import numpy as np

from aijack_lab.collaborative.tree import XGBoostClassifierAPI, XGBoostClient, accuracy_under_attack

from .base import Panel
from .params import FloatParam, IntParam
from .registry import register


def make_cheap_costly_data(seed: int, n: int = 1000):
    """Feature 0 predicts y well but is cheap for an attacker to change; feature 1 predicts it less
    well but is costly (budget 0); feature 2 is noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 2 * n)
    x = np.c_[y + 0.25 * rng.normal(size=2 * n), y + 0.7 * rng.normal(size=2 * n), rng.normal(size=2 * n)]
    return x[:n], y[:n], x[n:], y[n:]


@register("Defense", "Robustness", "Cost-Aware Robust Trees")
class RobustTreePanel(Panel):
    title = "Cost-aware robust tree ensemble"
    description = (
        "An attacker may move the cheap feature 0 by up to its budget (feature 1 is too costly to change). "
        "set_cost_constraint_map gives the split search those budgets: each split is scored by its worst "
        "case over the rows the attacker could push across the threshold. Compare accuracy under the attack."
    )
    reference = ("Chen, Wang, Jana et al. Cost-aware robust tree ensembles for security applications. "
                 "USENIX Security 2021; Chen et al. Robust decision trees against adversarial examples. ICML 2019.")
    params = (
        FloatParam("budget", 1.0, min=0.0, max=1.5, step=0.05, label="budget of feature 0"),
        IntParam("boosting_rounds", 10, min=1, max=30, label="trees"),
        IntParam("depth", 3, min=1, max=5),
        IntParam("seed", 1, min=0, max=100),
    )
    reproducible = ("plain_attacked_accuracy", "robust_attacked_accuracy")

    def compute(self, v, progress):
        X_train, y_train, X_test, y_test = make_cheap_costly_data(v["seed"])
        budgets = {0: v["budget"]}
        kw = dict(boosting_rounds=v["boosting_rounds"], depth=v["depth"], learning_rate=0.3, init_value=0.0)
        plain = XGBoostClassifierAPI(2, **kw).fit([XGBoostClient(X_train, 2, None, 0, 1, 1.0, 64, False, 0)], y_train)
        p = XGBoostClient(X_train, 2, None, 0, 1, 1.0, 64, False, 0)
        p.set_cost_constraint_map(budgets)
        robust = XGBoostClassifierAPI(2, **kw).fit([p], y_train)
        progress(1, 2)
        share = lambda clf: [float(np.mean([n["feature_id"] == f for t in clf.describe_trees() for n in t
                                            if not n["leaf"]] or [0.0])) for f in range(3)]
        result = {
            "plain_clean_accuracy": float((plain.predict(X_test) == y_test).mean()),
            "robust_clean_accuracy": float((robust.predict(X_test) == y_test).mean()),
            "plain_attacked_accuracy": accuracy_under_attack(plain, X_test, y_test, budgets),
            "robust_attacked_accuracy": accuracy_under_attack(robust, X_test, y_test, budgets),
            "plain_feature_share": share(plain),
            "robust_feature_share": share(robust),
        }
        progress(2, 2)
        return result, {}

    def draw(self, fig, result, data):
        ax1, ax2 = fig.subplots(1, 2)
        idx = np.arange(2)
        ax1.bar(idx - 0.2, [result["plain_clean_accuracy"], result["plain_attacked_accuracy"]], 0.4, label="plain")
        ax1.bar(idx + 0.2, [result["robust_clean_accuracy"], result["robust_attacked_accuracy"]], 0.4,
                label="cost-aware robust")
        ax1.set_xticks(idx, ["clean", "under attack"])
        ax1.set_ylim(0, 1)
        ax1.set_ylabel("test accuracy")
        ax1.legend(fontsize=7)
        ax2.bar(np.arange(3) - 0.2, result["plain_feature_share"], 0.4, label="plain")
        ax2.bar(np.arange(3) + 0.2, result["robust_feature_share"], 0.4, label="robust")
        ax2.set_xticks(range(3), ["0 (cheap)", "1 (costly)", "2 (noise)"])
        ax2.set_ylabel("share of splits")
        ax2.set_title("which features the trees split on", fontsize=9)
        ax2.legend(fontsize=7)

    def code(self, v):
        return f"""\
from aijack_lab.collaborative.tree import XGBoostClassifierAPI, XGBoostClient, accuracy_under_attack
import numpy as np

# feature 0: predictive but cheap to change; feature 1: weaker but costly; feature 2: noise
rng = np.random.default_rng({v['seed']})
y = rng.integers(0, 2, 2000)
x = np.c_[y + 0.25 * rng.normal(size=2000), y + 0.7 * rng.normal(size=2000), rng.normal(size=2000)]
X_train, y_train, X_test, y_test = x[:1000], y[:1000], x[1000:], y[1000:]
constraints = {{0: {v['budget']!r}}}   # the attacker may move feature 0 by at most this much

plain = XGBoostClassifierAPI(2, boosting_rounds={v['boosting_rounds']}, depth={v['depth']}, learning_rate=0.3, init_value=0.0)
plain.fit([XGBoostClient(X_train, 2, None, 0, 1, 1.0, 64, False, 0)], y_train)

p0 = XGBoostClient(X_train, 2, None, 0, 1, 1.0, 64, False, 0)
p0.set_cost_constraint_map(constraints)   # paper Code S-7
clf = XGBoostClassifierAPI(2, boosting_rounds={v['boosting_rounds']}, depth={v['depth']}, learning_rate=0.3, init_value=0.0)
clf.fit([p0], y_train)
pred_proba = clf.predict_proba(X_test)

plain_attacked_accuracy = accuracy_under_attack(plain, X_test, y_test, constraints)
robust_attacked_accuracy = accuracy_under_attack(clf, X_test, y_test, constraints)
print(plain_attacked_accuracy, robust_attacked_accuracy)
"""
