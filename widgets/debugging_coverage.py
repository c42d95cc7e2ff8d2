"""Neuron coverage panel: coverage per layer for clean and adversarial (FGSM) digits."""
import numpy as np
from torch import nn

from aijack_lab.attack import FGSMAttacker
from aijack_lab.defense.debugging.neuroncoverage import NeuronCoverageTracker

from .base import Panel
from .common import digits, digits_model
from .params import ChoiceParam, FloatParam, IntParam
from .registry import register


@register("Defense", "Debugging", "Neuron Coverage")
class NeuronCoveragePanel(Panel):
    title = "Neuron coverage"
    description = (
        "The fraction of neurons that some test input activates above a threshold (after scaling each layer's "
        "activations to [0, 1] per input) — a test-adequacy measure akin to code coverage. More diverse inputs "
        "cover more; adversarial (FGSM) inputs reach neurons the clean inputs leave idle."
    )
    reference = "Pei, Cao, Yang, Jana. DeepXplore: Automated Whitebox Testing of Deep Learning Systems. SOSP 2017."
    params = (
        ChoiceParam("model", "cnn", options=("cnn", "mlp")),
        FloatParam("threshold", 0.75, min=0.0, max=0.95, step=0.05),
        IntParam("num_inputs", 100, min=10, max=450, step=10, label="clean inputs"),
        FloatParam("eps", 0.3, min=0.0, max=0.5, step=0.05, label="FGSM ε"),
    )
    reproducible = ("clean_coverage", "clean_plus_adversarial_coverage")

    def compute(self, v, progress):
        _, _, x, y = digits()
        model = digits_model(v["model"], 5, 0)
        n = v["num_inputs"]
        x_adv = FGSMAttacker(model, nn.CrossEntropyLoss(), eps=v["eps"]).attack((x[:n], y[:n]))
        tracker = NeuronCoverageTracker(model, x[:2], threshold=v["threshold"])
        growth = []
        for i in range(1, 11):
            growth.append(tracker.coverage(x[: max(1, n * i // 10)])["total"])
        progress(1, 2)
        clean = tracker.coverage(x[:n])
        idle = {k: ~m.clone() for k, m in tracker.covered.items()}
        both = tracker.coverage(x_adv, reset=False)
        newly = sum(int((tracker.covered[k] & idle[k]).sum()) for k in idle)
        progress(2, 2)
        result = {
            "clean_coverage": clean["total"],
            "clean_plus_adversarial_coverage": both["total"],
            "newly_covered_by_adversarial": newly,
            "per_layer_clean": clean["per_layer"],
            "per_layer_with_adversarial": both["per_layer"],
        }
        return result, {"growth": growth, "n": n}

    def draw(self, fig, result, data):
        ax1, ax2 = fig.subplots(1, 2)
        names = list(result["per_layer_clean"])
        pos = np.arange(len(names))
        ax1.bar(pos - 0.2, [result["per_layer_clean"][k] for k in names], 0.4, label="clean")
        ax1.bar(pos + 0.2, [result["per_layer_with_adversarial"][k] for k in names], 0.4, label="clean + FGSM")
        ax1.set_xticks(pos, names, fontsize=7)
        ax1.set_ylim(0, 1)
        ax1.set_ylabel("coverage")
        ax1.legend(fontsize=7)
        ax1.set_title("coverage per layer", fontsize=9)
        sizes = [max(1, data["n"] * i // 10) for i in range(1, 11)]
        ax2.plot(sizes, data["growth"], marker="o")
        ax2.set_xlabel("clean inputs")
        ax2.set_ylabel("total coverage")
        ax2.set_ylim(0, 1)
        ax2.set_title("coverage grows with more inputs", fontsize=9)

    def code(self, v):
        return f"""\
from torch import nn
from aijack_lab.attack import FGSMAttacker
from aijack_lab.datasets import load_digits
from aijack_lab.defense.debugging.neuroncoverage import NeuronCoverageTracker
from aijack_lab.models import train_digits_model

X_train, y_train, X_test, y_test = load_digits()
model = train_digits_model({v['model']!r}, epochs=5, seed=0)
x, y = X_test[:{v['num_inputs']}], y_test[:{v['num_inputs']}]
x_adv = FGSMAttacker(model, nn.CrossEntropyLoss(), eps={v['eps']!r}).attack((x, y))

NCT = NeuronCoverageTracker(model, X_test[:2], threshold={v['threshold']!r})
clean_coverage = NCT.coverage(x)["total"]
clean_plus_adversarial_coverage = NCT.coverage(x_adv, reset=False)["total"]
print(f"coverage: clean {{clean_coverage:.3f}}, with FGSM inputs {{clean_plus_adversarial_coverage:.3f}}")
"""
