"""SVM poisoning panel: validation accuracy while one attack point climbs the validation loss."""
import numpy as np

from aijack_lab.attack import Poison_attack_sklearn

from .base import Panel
from .common import show_digit_row
from .params import ChoiceParam, FloatParam, IntParam
from .registry import register


def digits_pair(a: int = 3, b: int = 8, n_train: int = 50, seed: int = 0):
    """Digits ``a`` (label 0) vs ``b`` (label 1), scaled to [0, 1]: a small training set and the rest for validation."""
    from sklearn.datasets import load_digits

    d = load_digits()
    m = (d.target == a) | (d.target == b)
    X, y = d.data[m] / 16.0, (d.target[m] == b).astype(int)
    idx = np.random.RandomState(seed).permutation(len(X))
    X, y = X[idx], y[idx]
    return X[:n_train], y[:n_train], X[n_train:n_train + 150], y[n_train:n_train + 150]


@register("Attack", "Poisoning", "SVM Poisoning")
class SVMPoisoningPanel(Panel):
    title = "Poisoning an SVM with one optimised training point"
    description = (
        "The attacker adds one point with a flipped label to the SVM's training set and moves it, by gradient "
        "ascent on the hinge loss the retrained SVM makes on validation data, where it hurts most. The gradient "
        "comes from the SVM's KKT conditions. Digits 3 (label 0) vs 8 (label 1); the attack point starts as an 8 labelled 0."
    )
    reference = "Biggio, Nelson, Laskov. Poisoning Attacks against Support Vector Machines. ICML 2012."
    params = (
        ChoiceParam("kernel", "linear", options=("linear", "rbf"), label="SVM kernel"),
        FloatParam("t", 0.5, min=0.05, max=2.0, step=0.05, label="step t"),
        IntParam("num_iterations", 40, min=1, max=200, label="iterations"),
        IntParam("n_train", 50, min=20, max=150, step=10, label="training points"),
        IntParam("start", 0, min=0, max=20, label="starting point (index)"),
        IntParam("seed", 0, min=0, max=100),
    )
    reproducible = ("clean_accuracy", "random_flip_accuracy", "poisoned_accuracy")

    def compute(self, values, progress):
        from sklearn.svm import SVC

        X_train, y_train, X_valid, y_valid = digits_pair(n_train=values["n_train"], seed=values["seed"])
        clf = SVC(kernel=values["kernel"], C=1.0)
        attacker = Poison_attack_sklearn(clf, X_train, y_train, t=values["t"], bounds=(0.0, 1.0))
        flipped = X_valid[y_valid == 1]
        initial_data = flipped[values["start"]]
        malicious_data, log = attacker.attack(initial_data, 0, X_valid, y_valid,
                                              num_iterations=values["num_iterations"], progress=progress)
        clean = SVC(kernel=values["kernel"], C=1.0).fit(X_train, y_train).score(X_valid, y_valid)
        random_acc = float(np.mean([attacker.fit_poisoned(x, 0).score(X_valid, y_valid) for x in flipped]))
        poisoned = attacker.fit_poisoned(attacker.best_xc, 0).score(X_valid, y_valid)
        result = {
            "clean_accuracy": float(clean),
            "random_flip_accuracy": random_acc,
            "poisoned_accuracy": float(poisoned),
            "start_accuracy": log[0],
            "hinge_loss_start": attacker.loss_log[0],
            "hinge_loss_best": max(attacker.loss_log),
        }
        from sklearn.decomposition import PCA

        pca = PCA(2, random_state=0).fit(X_train)
        data = {"log": np.array(log), "loss": np.array(attacker.loss_log), "train2d": pca.transform(X_train),
                "y_train": y_train, "path2d": pca.transform(np.stack(attacker.path)),
                "images": np.stack([initial_data, attacker.best_xc]).reshape(2, 8, 8)}
        return result, data

    def draw(self, fig, result, data):
        grid = fig.add_gridspec(2, 4)
        ax1 = fig.add_subplot(grid[:, 0:2])
        ax1.plot(data["log"], label="with the attack point")
        ax1.axhline(result["clean_accuracy"], c="g", ls="--", lw=1, label="clean")
        ax1.axhline(result["random_flip_accuracy"], c="tab:orange", ls=":", lw=1.5, label="random flipped point (mean)")
        ax1.set_xlabel("iteration")
        ax1.set_ylabel("validation accuracy")
        ax1.legend(fontsize=6)
        ax1.set_title("validation accuracy of the poisoned SVM", fontsize=9)
        ax2 = fig.add_subplot(grid[:, 2])
        t2, y = data["train2d"], data["y_train"]
        ax2.scatter(t2[y == 0, 0], t2[y == 0, 1], s=6, c="tab:blue", label="3")
        ax2.scatter(t2[y == 1, 0], t2[y == 1, 1], s=6, c="tab:red", label="8")
        p = data["path2d"]
        ax2.plot(p[:, 0], p[:, 1], c="k", lw=1)
        ax2.scatter(p[-1, 0], p[-1, 1], marker="*", s=70, c="yellow", edgecolors="k", zorder=3)
        ax2.set_title("path (PCA of the inputs)", fontsize=9)
        ax2.legend(fontsize=6)
        axes = [fig.add_subplot(grid[0, 3]), fig.add_subplot(grid[1, 3])]
        show_digit_row(axes, data["images"], ["start (label 0)", "optimised"])

    def code(self, v):
        return f"""\
import numpy as np
from sklearn.svm import SVC
from aijack_lab.attack import Poison_attack_sklearn
from sklearn.datasets import load_digits

d = load_digits()                             # digits 3 (label 0) vs 8 (label 1), scaled to [0, 1]
m = (d.target == 3) | (d.target == 8)
X, y = d.data[m] / 16.0, (d.target[m] == 8).astype(int)
idx = np.random.RandomState({v['seed']}).permutation(len(X))
X, y = X[idx], y[idx]
X_train, y_train = X[:{v['n_train']}], y[:{v['n_train']}]
X_valid, y_valid = X[{v['n_train']}:{v['n_train']} + 150], y[{v['n_train']}:{v['n_train']} + 150]
clf = SVC(kernel={v['kernel']!r}, C=1.0)
attacker = Poison_attack_sklearn(clf, X_train, y_train, t={v['t']!r}, bounds=(0.0, 1.0))
flipped = X_valid[y_valid == 1]              # 8s that the attacker labels 0
initial_data = flipped[{v['start']}]
malicious_data, log = attacker.attack(initial_data, 0, X_valid, y_valid, num_iterations={v['num_iterations']})

clean_accuracy = SVC(kernel={v['kernel']!r}, C=1.0).fit(X_train, y_train).score(X_valid, y_valid)
random_flip_accuracy = float(np.mean([attacker.fit_poisoned(x, 0).score(X_valid, y_valid) for x in flipped]))
poisoned_accuracy = attacker.fit_poisoned(attacker.best_xc, 0).score(X_valid, y_valid)
print(f"clean {{clean_accuracy:.3f}}, random flipped point {{random_flip_accuracy:.3f}}, optimised point {{poisoned_accuracy:.3f}}")
"""
