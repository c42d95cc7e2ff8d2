"""DIVA panel: inputs the edge (quantized/pruned) model gets wrong while the original gets them right."""
import numpy as np
from torch import nn

from aijack_lab.attack import DIVAWhiteBoxAttacker, FGSMAttacker
from aijack_lab.attack.evasion import evasion_rates, make_edge_model
from aijack_lab.utils import predict

from .base import Panel
from .common import digits, digits_model, show_digit_row
from .params import ChoiceParam, FloatParam, IntParam
from .registry import register


@register("Attack", "Evasion", "DIVA")
class DIVAPanel(Panel):
    title = "DIVA — attacking the gap between a model and its edge version"
    description = (
        "An edge device runs an int8-quantized, pruned copy of the digits CNN. DIVA perturbs inputs (L∞ ≤ ε) to "
        "raise the original model's confidence in the true class while lowering the edge model's, so that the "
        "edge errs while the original — the reference a defender would check against — stays right. "
        "FGSM with the same ε fools both models alike."
    )
    reference = "Hao et al. A Tale of Two Models: Constructing Evasive Attacks on Edge Models. MLSys 2022."
    params = (
        FloatParam("eps", 0.2, min=0.02, max=0.4, step=0.02, label="ε (L∞ budget)"),
        IntParam("num_itr", 50, min=5, max=200, label="iterations"),
        FloatParam("c", 1.0, min=0.0, max=5.0, step=0.1, label="c (edge weight)"),
        FloatParam("prune_ratio", 0.5, min=0.0, max=0.9, step=0.05, label="edge: pruned share"),
        ChoiceParam("bits", 8, options=(("int8", 8), ("int4", 4), ("none", 0)), label="edge: quantization"),
        IntParam("num_samples", 200, min=20, max=450, step=10, label="test digits"),
        IntParam("seed", 0, min=0, max=100),
    )
    reproducible = ("diva_edge_only_rate", "fgsm_edge_only_rate")
    figsize = (9.0, 4.2)

    def compute(self, values, progress):
        _, _, x_test, y_test = digits()
        x, y = x_test[: values["num_samples"]], y_test[: values["num_samples"]]
        model = digits_model("cnn", 10, values["seed"])
        edge = make_edge_model(model, bits=values["bits"], prune_ratio=values["prune_ratio"])
        attacker = DIVAWhiteBoxAttacker(model, edge, c=values["c"], num_itr=values["num_itr"], eps=values["eps"], lam=0.01)
        x_diva = attacker.attack((x, y), progress=progress)
        x_fgsm = FGSMAttacker(model, nn.CrossEntropyLoss(), eps=values["eps"]).attack((x, y))
        clean, diva, fgsm = (evasion_rates(model, edge, z, y) for z in (x, x_diva, x_fgsm))
        result = {
            "clean_edge_only_rate": clean["edge_only"],
            "diva_edge_only_rate": diva["edge_only"],
            "fgsm_edge_only_rate": fgsm["edge_only"],
            "diva_original_accuracy": diva["original_accuracy"],
            "diva_edge_accuracy": diva["edge_accuracy"],
            "fgsm_original_accuracy": fgsm["original_accuracy"],
        }
        po, pe = predict(model, x_diva).argmax(1), predict(edge, x_diva).argmax(1)
        hits = np.nonzero(((pe != y) & (po == y)).numpy())[0][:8]
        data = {"x": x[hits].numpy(), "x_adv": x_diva[hits].numpy(), "y": y[hits].numpy(),
                "orig": po[hits].numpy(), "edge": pe[hits].numpy(), "log": np.array(attacker.log),
                "grid": np.array([[clean["edge_only"], diva["edge_only"], fgsm["edge_only"]],
                                  [clean["original_accuracy"], diva["original_accuracy"], fgsm["original_accuracy"]],
                                  [clean["edge_accuracy"], diva["edge_accuracy"], fgsm["edge_accuracy"]]])}
        return result, data

    def draw(self, fig, result, data):
        grid = fig.add_gridspec(2, 10)
        ax = fig.add_subplot(grid[:, :3])
        im = ax.imshow(data["grid"], cmap="viridis", vmin=0, vmax=1)
        for i in range(3):
            for j in range(3):
                ax.text(j, i, f"{data['grid'][i, j]:.2f}", ha="center", va="center",
                        color="w" if data["grid"][i, j] < 0.6 else "k", fontsize=8)
        ax.set_xticks(range(3), ["clean", "DIVA", "FGSM"], fontsize=7)
        ax.set_yticks(range(3), ["edge wrong,\noriginal right", "original acc.", "edge acc."], fontsize=7)
        ax.set_title("original vs edge", fontsize=9)
        n = len(data["x"])
        top = [fig.add_subplot(grid[0, 3 + i]) for i in range(7)]
        bottom = [fig.add_subplot(grid[1, 3 + i]) for i in range(7)]
        show_digit_row(top, data["x"][:7], [f"y={y}" for y in data["y"][:7]])
        show_digit_row(bottom, data["x_adv"][:7], [f"orig {o} / edge {e}" for o, e in zip(data["orig"][:7], data["edge"][:7])])
        if n == 0:
            top[0].set_title("no edge-only errors", fontsize=8)

    def code(self, v):
        return f"""\
from torch import nn
from aijack_lab.attack import DIVAWhiteBoxAttacker, FGSMAttacker
from aijack_lab.attack.evasion import evasion_rates, make_edge_model
from aijack_lab.datasets import load_digits
from aijack_lab.models import train_digits_model

X_train, y_train, X_test, y_test = load_digits()
x, y = X_test[:{v['num_samples']}], y_test[:{v['num_samples']}]
model = train_digits_model("cnn", epochs=10, seed={v['seed']})
edge_model = make_edge_model(model, bits={v['bits']}, prune_ratio={v['prune_ratio']!r})  # simulated int8 + pruning

attacker = DIVAWhiteBoxAttacker(model, edge_model, c={v['c']!r}, num_itr={v['num_itr']}, eps={v['eps']!r}, lam=0.01)
x_diva = attacker.attack((x, y))
x_fgsm = FGSMAttacker(model, nn.CrossEntropyLoss(), eps={v['eps']!r}).attack((x, y))

# the share of inputs the edge model gets wrong while the original gets them right
diva_edge_only_rate = evasion_rates(model, edge_model, x_diva, y)["edge_only"]
fgsm_edge_only_rate = evasion_rates(model, edge_model, x_fgsm, y)["edge_only"]
print(f"edge-only errors: DIVA {{diva_edge_only_rate:.3f}}, FGSM {{fgsm_edge_only_rate:.3f}}")
"""
