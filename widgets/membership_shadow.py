"""Shadow-model membership inference panel: ROC curve and member/non-member confidence histograms."""
import numpy as np

from aijack_lab.attack import ShadowMembershipInferenceAttack

from .base import Panel
from .params import ChoiceParam, IntParam
from .registry import register


def membership_split(n_members: int = 250, seed: int = 0):
    """Digits (flat, in [0, 1]) split into the target's members, equally many non-members, and the attacker's shadow data."""
    from sklearn.datasets import load_digits

    d = load_digits()
    X, y = (d.data / 16.0).astype(np.float32), d.target
    idx = np.random.RandomState(seed).permutation(len(X))
    mem, non, shadow = idx[:n_members], idx[n_members:2 * n_members], idx[2 * n_members:]
    return X[mem], y[mem], X[non], y[non], X[shadow], y[shadow]


def _make(kind: str, seed: int):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    if kind == "random_forest":
        return RandomForestClassifier(n_estimators=50, random_state=seed)
    return LogisticRegression(C=100.0, max_iter=2000)


@register("Attack", "Membership Inference", "Shadow")
class ShadowMIAPanel(Panel):
    title = "Membership inference with shadow models"
    description = (
        "The attacker trains shadow models like the target on data of its own, so it knows their members. "
        "Their prediction vectors on members and non-members train one attack classifier per class, which then "
        "guesses from the target's outputs alone whether a record was in its training set. Overfit targets "
        "(here a random forest, 100% training accuracy) are the most exposed."
    )
    reference = "Shokri, Stronati, Song, Shmatikov. Membership Inference Attacks against Machine Learning Models. IEEE S&P 2017."
    params = (
        ChoiceParam("target", "random_forest", options=("random_forest", "logistic_regression"), label="target model"),
        IntParam("n_shadow", 2, min=1, max=6, label="shadow models"),
        IntParam("n_members", 250, min=100, max=400, step=50, label="target's training size"),
        IntParam("seed", 0, min=0, max=100),
    )
    reproducible = ("attack_auc", "attack_accuracy")

    def compute(self, values, progress):
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import roc_auc_score, roc_curve

        X_in, y_in, X_out, y_out, X_shadow, y_shadow = membership_split(values["n_members"], values["seed"])
        clf = _make(values["target"], values["seed"]).fit(X_in, y_in)
        progress(1, 3)
        shadow_models = [_make(values["target"], values["seed"] + 1 + i) for i in range(values["n_shadow"])]
        attack_models = [LogisticRegression(max_iter=1000) for _ in range(10)]
        attacker = ShadowMembershipInferenceAttack(clf, shadow_models, attack_models)
        attacker.fit(X_shadow, y_shadow)
        progress(2, 3)
        x_eval, y_eval = np.vstack([X_in, X_out]), np.concatenate([y_in, y_out])
        is_member = np.r_[np.ones(len(X_in)), np.zeros(len(X_out))]
        score = attacker.attack(x_eval, y_eval, proba=True)
        guess = attacker.attack(x_eval, y_eval)
        fpr, tpr, _ = roc_curve(is_member, score)
        conf = clf.predict_proba(x_eval)[np.arange(len(y_eval)), y_eval]
        result = {
            "attack_auc": float(roc_auc_score(is_member, score)),
            "attack_accuracy": float(np.mean(guess == is_member)),
            "target_train_accuracy": float(clf.score(X_in, y_in)),
            "target_test_accuracy": float(clf.score(X_out, y_out)),
        }
        progress(3, 3)
        return result, {"fpr": fpr, "tpr": tpr, "conf_in": conf[is_member == 1], "conf_out": conf[is_member == 0]}

    def draw(self, fig, result, data):
        ax1, ax2 = fig.subplots(1, 2)
        ax1.plot(data["fpr"], data["tpr"], label=f"attack (AUC {result['attack_auc']:.2f})")
        ax1.plot([0, 1], [0, 1], "k--", lw=1, label="chance")
        ax1.set_xlabel("false positive rate")
        ax1.set_ylabel("true positive rate")
        ax1.legend(fontsize=7)
        ax1.set_title("membership ROC", fontsize=9)
        bins = np.linspace(0, 1, 21)
        ax2.hist(data["conf_in"], bins=bins, alpha=0.6, label="members")
        ax2.hist(data["conf_out"], bins=bins, alpha=0.6, label="non-members")
        ax2.set_xlabel("target's confidence in the true label")
        ax2.legend(fontsize=7)
        ax2.set_title("what the attack sees", fontsize=9)

    def code(self, v):
        if v["target"] == "random_forest":
            make = "RandomForestClassifier(n_estimators=50, random_state={})"
        else:
            make = "LogisticRegression(C=100.0, max_iter=2000)"
        target = make.format(v["seed"])
        shadow = make.format(f"{v['seed']} + 1 + i")
        return f"""\
import numpy as np
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from aijack_lab.attack.membership import ShadowMembershipInferenceAttack

d = load_digits()
X, y = (d.data / 16.0).astype(np.float32), d.target
idx = np.random.RandomState({v['seed']}).permutation(len(X))
n = {v['n_members']}
X_in, y_in = X[idx[:n]], y[idx[:n]]                  # the target's training set (members)
X_out, y_out = X[idx[n:2 * n]], y[idx[n:2 * n]]      # non-members
X_shadow, y_shadow = X[idx[2 * n:]], y[idx[2 * n:]]  # the attacker's own data

clf = {target}.fit(X_in, y_in)
shadow_models = [{shadow} for i in range({v['n_shadow']})]
attack_models = [LogisticRegression(max_iter=1000) for _ in range(10)]

attacker = ShadowMembershipInferenceAttack(clf, shadow_models, attack_models)
attacker.fit(X_shadow, y_shadow)

x_eval, y_eval = np.vstack([X_in, X_out]), np.concatenate([y_in, y_out])
is_member = np.r_[np.ones(n), np.zeros(n)]
attack_auc = roc_auc_score(is_member, attacker.attack(x_eval, y_eval, proba=True))
attack_accuracy = float(np.mean(attacker.attack(x_eval, y_eval) == is_member))
print(f"attack AUC {{attack_auc:.3f}}, accuracy {{attack_accuracy:.3f}}")
"""
