"""Gradient-descent evasion panel: an SVM's decision regions on a 2-feature set and the attack paths."""
import numpy as np

from aijack_lab.attack import Evasion_attack_sklearn

from .base import Panel
from .params import ChoiceParam, FloatParam, IntParam
from .registry import register


def _toy(seed):
    from sklearn.datasets import make_moons

    return make_moons(n_samples=200, noise=0.2, random_state=seed)


@register("Attack", "Evasion", "Gradient-Descent")
class EvasionSVMPanel(Panel):
    title = "Gradient-descent evasion of an SVM"
    description = (
        "Samples the SVM scores positive (class 1) walk down the gradient of its discriminant g(x) until "
        "they are classified negative. The mimicry term λ·p(x|−1), a kernel density of the negative class, "
        "keeps them in regions where real negatives live; d_max bounds how far they may move."
    )
    reference = "Biggio et al. Evasion Attacks against Machine Learning at Test Time. ECML PKDD 2013."
    params = (
        ChoiceParam("kernel", "rbf", options=("rbf", "linear"), label="SVM kernel"),
        FloatParam("lam", 1.0, min=0.0, max=20.0, step=0.5, label="λ (mimicry weight)"),
        FloatParam("dmax", 1.5, min=0.1, max=3.0, step=0.1, label="d_max (L2 bound)"),
        FloatParam("t", 0.05, min=0.01, max=0.3, step=0.01, label="step t"),
        IntParam("max_iter", 60, min=5, max=300, label="iterations"),
        IntParam("num_points", 8, min=1, max=30, label="attacked samples"),
        IntParam("seed", 0, min=0, max=100),
    )
    reproducible = ("evaded_fraction", "mean_final_decision")

    def compute(self, values, progress):
        from sklearn.svm import SVC

        X, y = _toy(values["seed"])
        clf = SVC(kernel=values["kernel"], C=1.0).fit(X, y)
        initial_data = X[(y == 1) & (clf.decision_function(X) > 0)][: values["num_points"]]
        attacker = Evasion_attack_sklearn(clf, X[y == 0], dmax=values["dmax"], max_iter=values["max_iter"],
                                          lam=values["lam"], t=values["t"], distance="L2", kde_type="L2")
        malicious_data, log = attacker.attack(initial_data, progress=progress)
        final = clf.decision_function(malicious_data)
        result = {
            "evaded_fraction": float(np.mean(final < 0)),
            "mean_initial_decision": float(np.mean(log[0])),
            "mean_final_decision": float(np.mean(final)),
            "iterations": len(log) - 1,
        }
        lo, hi = X.min(0) - 0.5, X.max(0) + 0.5
        gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 120), np.linspace(lo[1], hi[1], 120))
        grid = clf.decision_function(np.c_[gx.ravel(), gy.ravel()]).reshape(gx.shape)
        data = {"X": X, "y": y, "gx": gx, "gy": gy, "grid": grid, "path": np.stack(attacker.path),
                "log": np.stack(log)}
        return result, data

    def draw(self, fig, result, data):
        ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.4, 1]})
        lim = np.abs(data["grid"]).max()
        ax1.contourf(data["gx"], data["gy"], data["grid"], levels=20, cmap="RdBu_r", vmin=-lim, vmax=lim, alpha=0.6)
        ax1.contour(data["gx"], data["gy"], data["grid"], levels=[0], colors="k", linewidths=1)
        X, y = data["X"], data["y"]
        ax1.scatter(X[y == 0, 0], X[y == 0, 1], s=8, c="tab:blue", label="class 0 (negative)")
        ax1.scatter(X[y == 1, 0], X[y == 1, 1], s=8, c="tab:red", label="class 1 (positive)")
        path = data["path"]
        for j in range(path.shape[1]):
            ax1.plot(path[:, j, 0], path[:, j, 1], c="k", lw=1)
            ax1.scatter(path[-1, j, 0], path[-1, j, 1], marker="*", s=60, c="yellow", edgecolors="k", zorder=3)
        ax1.set_title("decision g(x) (black: g=0) and attack paths", fontsize=9)
        ax1.legend(fontsize=6, loc="lower left")
        ax2.plot(data["log"], c="tab:gray", lw=0.8)
        ax2.axhline(0, c="k", ls="--", lw=1)
        ax2.set_xlabel("iteration")
        ax2.set_ylabel("g(x)")
        ax2.set_title(f"{result['evaded_fraction']:.0%} evaded", fontsize=9)

    def code(self, v):
        return f"""\
import numpy as np
from sklearn.datasets import make_moons
from sklearn.svm import SVC
from aijack_lab.attack import Evasion_attack_sklearn

X, y = make_moons(n_samples=200, noise=0.2, random_state={v['seed']})
clf = SVC(kernel={v['kernel']!r}, C=1.0).fit(X, y)
initial_data_positive = X[y == 0]          # the class to mimic (negative decisions)
initial_data_negative = X[(y == 1) & (clf.decision_function(X) > 0)][:{v['num_points']}]

attacker = Evasion_attack_sklearn(clf, initial_data_positive, dmax={v['dmax']!r}, max_iter={v['max_iter']},
                                  lam={v['lam']!r}, t={v['t']!r}, distance="L2", kde_type="L2")
malicious_data, log = attacker.attack(initial_data_negative)

final = clf.decision_function(malicious_data)
evaded_fraction = float(np.mean(final < 0))
mean_final_decision = float(np.mean(final))
print(f"evaded {{evaded_fraction:.0%}}, mean decision {{np.mean(log[0]):.2f}} -> {{mean_final_decision:.2f}}")
"""
