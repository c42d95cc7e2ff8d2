"""PixelDP panel: certified accuracy vs radius, and FGSM against the plain and the PixelDP model."""
import math

import numpy as np
import torch
from torch import nn

from aijack_lab.attack import FGSMAttacker
from aijack_lab.defense import PixelDP
from aijack_lab.defense.pixeldp import certified_accuracy
from aijack_lab.models import make_digits_model
from aijack_lab.models.training import train_classifier
from aijack_lab.utils import evaluate_accuracy

from .base import Panel
from .common import digits
from .params import ChoiceParam, FloatParam, IntParam
from .registry import register

RADII = [0.0, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3]
FGSM_EPS = [0.0, 0.05, 0.1, 0.2, 0.3]


def train_pair(mode, L, eps, epochs, n_population_mc, seed, progress=None):
    """A plain digits MLP and a PixelDP-wrapped one trained the same way (what the code view shows)."""
    x_train, y_train, _, _ = digits()
    plain = train_classifier(make_digits_model("mlp", seed=seed), x_train, y_train, epochs=epochs, lr=3e-3,
                             batch_size=128, seed=seed)
    pdp = PixelDP(make_digits_model("mlp", seed=seed), 10, L=L, eps=eps, delta=1e-5, mode=mode,
                  n_population_mc=n_population_mc, batch_size_mc=100, seed=seed)
    train_classifier(pdp, x_train, y_train, epochs=epochs, lr=3e-3, batch_size=128, seed=seed, progress=progress)
    return plain, pdp.eval()


@register("Defense", "Robustness", "PixelDP")
class PixelDPPanel(Panel):
    title = "PixelDP — certified robustness with differential privacy"
    description = (
        "A noise layer makes the classifier's output differentially private with respect to small input "
        "changes; averaging many noisy predictions then certifies a radius (L1 for Laplace, L2 for Gaussian "
        "noise) inside which no attack can change the prediction. Left: certified accuracy per radius. "
        "Right: the same FGSM attack against the plain model and the PixelDP model."
    )
    reference = ("Lecuyer, Atlas, Geambasu, Hsu, Jana. Certified Robustness to Adversarial Examples with "
                 "Differential Privacy. IEEE S&P 2019.")
    params = (
        ChoiceParam("mode", "gaussian", options=("gaussian", "laplace"), label="noise (attack norm)"),
        FloatParam("L", 0.1, min=0.02, max=0.5, step=0.01, label="construction bound L"),
        FloatParam("eps", 1.0, min=0.1, max=1.0, step=0.05, label="DP ε"),
        IntParam("epochs", 10, min=1, max=40, label="training epochs"),
        IntParam("n_population_mc", 200, min=50, max=2000, step=50, label="Monte Carlo draws"),
        IntParam("seed", 0, min=0, max=100),
    )
    reproducible = ("clean_accuracy", "pixeldp_accuracy", "certified_fraction", "certified_accuracy")
    figsize = (10.0, 3.8)

    def compute(self, values, progress):
        _, _, x_test, y_test = digits()
        epochs = values["epochs"]
        total = epochs + 2 + len(FGSM_EPS)
        plain, pdp = train_pair(values["mode"], values["L"], values["eps"], epochs, values["n_population_mc"],
                                values["seed"], progress=lambda s, _t: progress(s, total))
        pred_proba, counts = pdp(x_test)
        cert = pdp.certify(counts)
        progress(epochs + 1, total)
        curve = certified_accuracy(cert, y_test, RADII)
        criterion = nn.CrossEntropyLoss()
        plain_acc, pdp_acc = [], []
        for i, e in enumerate(FGSM_EPS):
            xa = FGSMAttacker(plain, criterion, eps=e).attack((x_test, y_test))
            plain_acc.append(evaluate_accuracy(plain, (xa, y_test)))
            xb = FGSMAttacker(pdp.model, criterion, eps=e).attack((x_test, y_test))
            _, c = pdp(xb)
            pdp_acc.append(float((c.argmax(1) == y_test).float().mean()))
            progress(epochs + 2 + i, total)
        result = {
            "mode": values["mode"],
            "attack_norm": f"L{pdp.attack_norm}",
            "noise_scale": float(pdp.sigma),
            "clean_accuracy": plain_acc[0],
            "pixeldp_accuracy": float((counts.argmax(1) == y_test).float().mean()),
            "certified_fraction": float(np.mean(cert.certified)),
            "median_radius": float(np.median(cert.radius)),
            "radii": RADII,
            "certified_accuracy": curve,
            "fgsm_eps": FGSM_EPS,
            "fgsm_plain_accuracy": plain_acc,
            "fgsm_pixeldp_accuracy": pdp_acc,
        }
        return result, {}

    def draw(self, fig, result, data):
        ax1, ax2 = fig.subplots(1, 2)
        ax1.plot(result["radii"], result["certified_accuracy"], marker="o")
        ax1.set_xlabel(f"radius ({result['attack_norm']} norm)")
        ax1.set_ylabel("certified accuracy")
        ax1.set_ylim(0, 1)
        ax1.set_title("accuracy certified at each radius", fontsize=9)
        ax2.plot(result["fgsm_eps"], result["fgsm_plain_accuracy"], marker="o", label="plain model")
        ax2.plot(result["fgsm_eps"], result["fgsm_pixeldp_accuracy"], marker="s", label="PixelDP")
        ax2.set_xlabel("FGSM ε (L∞)")
        ax2.set_ylabel("accuracy under attack")
        ax2.set_ylim(0, 1)
        ax2.legend(fontsize=8)
        ax2.set_title("same FGSM attack, both models", fontsize=9)

    def code(self, v):
        return f"""\
import numpy as np
from aijack_lab.datasets import load_digits
from aijack_lab.defense import PixelDP
from aijack_lab.defense.pixeldp import certified_accuracy
from aijack_lab.models import make_digits_model
from aijack_lab.models.training import train_classifier

X_train, y_train, X_test, y_test = load_digits()
num_classes = 10

pdp = PixelDP(make_digits_model("mlp", seed={v['seed']}), num_classes, L={v['L']!r}, eps={v['eps']!r}, delta=1e-5,
              mode={v['mode']!r}, n_population_mc={v['n_population_mc']}, batch_size_mc=100, seed={v['seed']})
train_classifier(pdp, X_train, y_train, epochs={v['epochs']}, lr=3e-3, batch_size=128, seed={v['seed']})

pdp.eval()
pred_proba, counts = pdp(X_test)
cert = pdp.certify(counts)   # cert.certified, cert.radius, cert.prediction per test digit

plain = train_classifier(make_digits_model("mlp", seed={v['seed']}), X_train, y_train, epochs={v['epochs']},
                         lr=3e-3, batch_size=128, seed={v['seed']})
from aijack_lab.utils import evaluate_accuracy
clean_accuracy = evaluate_accuracy(plain, (X_test, y_test))
pixeldp_accuracy = float((counts.argmax(1) == y_test).float().mean())
certified_fraction = float(np.mean(cert.certified))
certified_accuracy = certified_accuracy(cert, y_test, {RADII!r})
print(f"plain {{clean_accuracy:.3f}}, PixelDP {{pixeldp_accuracy:.3f}}, certified {{certified_fraction:.2f}}")
print("certified accuracy per radius:", certified_accuracy)
"""
