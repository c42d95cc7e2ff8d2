"""FGSM panel: accuracy against the perturbation budget, and adversarial digits."""
import numpy as np
import torch
from torch import nn

from aijack_lab.attack import FGSMAttacker
from aijack_lab.utils import evaluate_accuracy, predict

from .base import Panel
from .common import digits, digits_model, show_digit_row
from .params import ChoiceParam, FloatParam, IntParam
from .registry import register

EPS_GRID = [round(0.05 * i, 2) for i in range(11)]


@register("Attack", "Evasion", "FGSM")
class FGSMPanel(Panel):
    title = "FGSM — Fast Gradient Sign Method"
    description = (
        "Perturbs every pixel by ±ε in the direction that increases the loss, in one gradient step. "
        "Small ε already fools an undefended digits classifier; the curve shows accuracy against ε."
    )
    reference = "Goodfellow, Shlens, Szegedy. Explaining and Harnessing Adversarial Examples. ICLR 2015."
    params = (
        FloatParam("eps", 0.3, min=0.0, max=0.5, step=0.01, label="ε (L∞ budget)"),
        ChoiceParam("model", "cnn", options=("cnn", "mlp"), label="target model"),
        IntParam("epochs", 10, min=1, max=30, label="training epochs"),
        IntParam("seed", 0, min=0, max=100),
    )
    reproducible = ("clean_accuracy", "adversarial_accuracy")

    def compute(self, values, progress):
        _, _, x_test, y_test = digits()
        model = digits_model(values["model"], values["epochs"], values["seed"])
        criterion = nn.CrossEntropyLoss()
        clean = evaluate_accuracy(model, (x_test, y_test))
        curve = []
        for i, eps in enumerate(EPS_GRID):
            x_adv = FGSMAttacker(model, criterion, eps=eps).attack((x_test, y_test))
            curve.append(evaluate_accuracy(model, (x_adv, y_test)))
            progress(i + 1, len(EPS_GRID) + 1)
        x_adv = FGSMAttacker(model, criterion, eps=values["eps"]).attack((x_test, y_test))
        adv = evaluate_accuracy(model, (x_adv, y_test))
        progress(len(EPS_GRID) + 1, len(EPS_GRID) + 1)
        show = slice(0, 6)
        result = {
            "eps": values["eps"],
            "clean_accuracy": clean,
            "adversarial_accuracy": adv,
            "accuracy_drop": clean - adv,
            "eps_grid": EPS_GRID,
            "accuracy_curve": curve,
        }
        data = {
            "x": x_test[show].numpy(),
            "x_adv": x_adv[show].numpy(),
            "y": y_test[show].numpy(),
            "pred": predict(model, x_test[show]).argmax(1).numpy(),
            "pred_adv": predict(model, x_adv[show]).argmax(1).numpy(),
        }
        return result, data

    def draw(self, fig, result, data):
        grid = fig.add_gridspec(2, 8)
        ax = fig.add_subplot(grid[:, :2])
        ax.plot(result["eps_grid"], result["accuracy_curve"], marker="o")
        ax.axvline(result["eps"], color="r", ls="--", lw=1)
        ax.set_xlabel("ε")
        ax.set_ylabel("test accuracy")
        ax.set_ylim(0, 1)
        ax.set_title("accuracy vs ε", fontsize=9)
        top = [fig.add_subplot(grid[0, 2 + i]) for i in range(6)]
        bottom = [fig.add_subplot(grid[1, 2 + i]) for i in range(6)]
        show_digit_row(top, data["x"], [f"y={y} ŷ={p}" for y, p in zip(data["y"], data["pred"])])
        show_digit_row(bottom, data["x_adv"], [f"adv ŷ={p}" for p in data["pred_adv"]])

    def code(self, v):
        return f"""\
from torch import nn
from aijack_lab.attack import FGSMAttacker
from aijack_lab.datasets import load_digits
from aijack_lab.models import train_digits_model
from aijack_lab.utils import evaluate_accuracy

X_train, y_train, X_test, y_test = load_digits()
model = train_digits_model({v['model']!r}, epochs={v['epochs']}, seed={v['seed']})
criterion = nn.CrossEntropyLoss()

attacker = FGSMAttacker(model, criterion, eps={v['eps']!r})
x_adv = attacker.attack((X_test, y_test))

clean_accuracy = evaluate_accuracy(model, (X_test, y_test))
adversarial_accuracy = evaluate_accuracy(model, (x_adv, y_test))
print(f"clean {{clean_accuracy:.3f}} -> adversarial {{adversarial_accuracy:.3f}}")
"""
