"""Gradient inversion panel: one panel, five methods (DLG, iDLG, GS, CPL, GradInversion) as presets."""
import time

import numpy as np
import torch
from torch import nn

from aijack_lab.attack import GradientInversion_Attack
from aijack_lab.attack.inversion.metrics import matching_order, psnr, reconstruction_mse
from aijack_lab.models import train_classifier
from aijack_lab.models.lenet import make_lenet_digits

from .base import Panel, figure_to_png
from .common import digits, show_digit_row
from .params import ChoiceParam, IntParam
from .registry import register

METHODS = ("DLG", "iDLG", "GS", "CPL", "GradInversion")

# the attacker's settings for each method (arguments of GradientInversion_Attack)
SETTINGS = {
    "DLG": {"distancename": "l2", "optimize_label": True},
    "iDLG": {"distancename": "l2", "optimize_label": False},
    "GS": {"distancename": "cossim", "optimize_label": False, "tv_reg_coef": 1e-4,
           "optimizer_class": "torch.optim.Adam", "lr": 0.1},
    "CPL": {"distancename": "l2", "optimize_label": False, "lm_reg_coef": 0.01},
    "GradInversion": {"distancename": "l2", "optimize_label": False, "bn_reg_coef": 0.01,
                      "bn_reg_layers": "net.bn_layers", "group_num": 2, "gc_reg_coef": 0.01},
}
# names written as code rather than as values
_CODE_NAMES = {"torch.optim.Adam", "net.bn_layers"}


def distinct_label_indices(labels, batch_size: int, start: int):
    """The first ``batch_size`` indices from ``start`` on whose labels are all different."""
    seen, idx = set(), []
    for i in range(start, len(labels)):
        if int(labels[i]) not in seen:
            seen.add(int(labels[i]))
            idx.append(i)
            if len(idx) == batch_size:
                return idx
    raise ValueError(f"no {batch_size} distinct labels after index {start}")


def _kwargs_code(settings) -> str:
    parts = []
    for k, v in settings.items():
        parts.append(f"{k}={v}" if v in _CODE_NAMES else f"{k}={v!r}")
    return ", ".join(parts)


@register("Attack", "Model Inversion", "DLG", method="DLG")
@register("Attack", "Model Inversion", "iDLG", method="iDLG")
@register("Attack", "Model Inversion", "GS", method="GS", num_iteration=150)
@register("Attack", "Model Inversion", "CPL", method="CPL")
@register("Attack", "Model Inversion", "GradInversion", method="GradInversion", batch_size=4, num_iteration=6)
class GradientInversionPanel(Panel):
    title = "Gradient inversion — DLG, iDLG, GS, CPL, GradInversion"
    description = (
        "A federated client shares the gradient of its loss on a private batch. The attacker makes a dummy "
        "batch and moves it until the model's gradient on the dummy matches the shared one. "
        "<b>DLG</b> also optimises a soft label; <b>iDLG</b> reads the label off the last layer's gradient; "
        "<b>GS</b> matches the gradient's direction (cosine) with a total-variation prior; <b>CPL</b> adds a "
        "label-matching term; <b>GradInversion</b> recovers a batch through a batch-norm model, pulling the "
        "dummy's BN statistics to the model's and averaging consistent restarts after registering them "
        "(batch order within a label, one-pixel shifts). The target is a small "
        "sigmoid LeNet on 8×8 digits (with BN for GradInversion)."
    )
    reference = (
        "Zhu et al. NeurIPS 2019 (DLG); Zhao et al. 2020 (iDLG); Geiping et al. NeurIPS 2020 (GS); "
        "Wei et al. ESORICS 2020 (CPL); Yin et al. CVPR 2021 (GradInversion)."
    )
    params = (
        ChoiceParam("method", "DLG", options=METHODS),
        IntParam("num_iteration", 20, min=1, max=300, label="iterations"),
        IntParam("batch_size", 1, min=1, max=6, label="batch size"),
        IntParam("sample", 0, min=0, max=400, label="first test sample"),
        IntParam("snapshot_every", 2, min=1, max=50, label="live view every N steps"),
        IntParam("seed", 0, min=0, max=100),
    )
    reproducible = ("mse", "recovered_labels")
    figsize = (9.5, 4.2)
    live_interval_s = 1.0  # seconds between live redraws while the attack runs

    def _model(self, method, seed):
        x_train, y_train, _, _ = digits()
        if method == "GradInversion":
            net = make_lenet_digits(seed=seed, batch_norm=True)
            train_classifier(net, x_train, y_train, epochs=3, seed=seed)
            net.train()  # the client's gradient uses batch statistics, as in training
            return net
        return make_lenet_digits(seed=seed)

    def compute(self, values, progress):
        method, seed, bs = values["method"], values["seed"], values["batch_size"]
        _, _, x_test, y_test = digits()
        net = self._model(method, seed)
        idx = distinct_label_indices(y_test, bs, values["sample"])
        x_true, y_true = x_test[idx], y_test[idx]
        loss = nn.CrossEntropyLoss()(net(x_true), y_true)
        received_gradients = [g.detach() for g in torch.autograd.grad(loss, list(net.parameters()))]

        settings = dict(SETTINGS[method])
        if settings.get("optimizer_class") == "torch.optim.Adam":
            settings["optimizer_class"] = torch.optim.Adam
        if settings.get("bn_reg_layers") == "net.bn_layers":
            settings["bn_reg_layers"] = net.bn_layers
        total = values["num_iteration"]
        every = values["snapshot_every"]
        attacker = None

        last_draw = [time.perf_counter()]

        def live(step, _total):
            progress(step, total)
            # redraw with the newest snapshot, at most about once a second (drawing costs more than a step)
            if (attacker is not None and attacker.snapshots and attacker.snapshots[-1][0] == step
                    and time.perf_counter() - last_draw[0] > self.live_interval_s):
                self._show_live(x_true, attacker.snapshots[-1][1], attacker.log_loss, step, total)
                last_draw[0] = time.perf_counter()

        attacker = GradientInversion_Attack(net, (1, 8, 8), num_iteration=total, saving_interval=every,
                                            progress=live, seed=seed, **settings)
        start = torch.randn((bs, 1, 8, 8), generator=torch.Generator().manual_seed(seed))
        x_rec, y_rec = attacker.attack(received_gradients, batch_size=bs)
        order = matching_order(x_rec, x_true)
        recovered = [int(v) for v in y_rec]
        result = {
            "method": method,
            "mse": reconstruction_mse(x_rec, x_true),
            "psnr_db": psnr(x_rec, x_true),
            "start_mse": reconstruction_mse(start, x_true),
            "recovered_labels": recovered,
            "true_labels": [int(v) for v in y_true],
            "label_accuracy": float(np.mean([recovered[i] == int(y_true[order[i]]) for i in range(bs)])),
            "final_loss": attacker.log_loss[-1],
            "loss_curve": list(attacker.log_loss),
        }
        data = {
            "x_true": x_true.numpy(),
            "x_rec": x_rec.numpy()[np.argsort(order)],
            "snapshots": [(s, x.numpy()) for s, x in attacker.snapshots],
        }
        return result, data

    def _show_live(self, x_true, x_now, log_loss, step, total):
        from matplotlib.figure import Figure

        n = min(len(x_true), 4)
        fig = Figure(figsize=(1.3 * (n + 2), 2.6))
        axes = fig.subplots(2, n + 1, squeeze=False)
        show_digit_row(axes[0, :n], x_true.numpy()[:n], ["original"] * n)
        show_digit_row(axes[1, :n], np.clip(x_now.numpy()[:n], 0, 1), [f"step {step}/{total}"] * n)
        for ax in axes[:, n]:
            ax.axis("off")
        ax = fig.add_subplot(1, n + 2, n + 2)
        ax.semilogy(np.maximum(log_loss, 1e-12))
        ax.set_title("loss", fontsize=8)
        self.image.value = figure_to_png(fig)

    def draw(self, fig, result, data):
        snaps = data["snapshots"]
        picks = [snaps[i] for i in np.linspace(0, len(snaps) - 1, min(4, len(snaps))).astype(int)] if snaps else []
        n = len(data["x_true"])
        cols = max(n, len(picks)) + 2
        grid = fig.add_gridspec(3, cols)
        ax = fig.add_subplot(grid[:, :2])
        ax.semilogy(np.maximum(result["loss_curve"], 1e-12))
        ax.set_xlabel("iteration")
        ax.set_ylabel("gradient-matching loss")
        ax.set_title(f"{result['method']}: MSE {result['mse']:.2g}, PSNR {result['psnr_db']:.1f} dB", fontsize=9)
        top = [fig.add_subplot(grid[0, 2 + i]) for i in range(cols - 2)]
        mid = [fig.add_subplot(grid[1, 2 + i]) for i in range(cols - 2)]
        bottom = [fig.add_subplot(grid[2, 2 + i]) for i in range(cols - 2)]
        show_digit_row(top, data["x_true"], [f"original y={y}" for y in result["true_labels"]])
        show_digit_row(mid, np.clip(data["x_rec"], 0, 1), ["reconstruction"] * n)
        show_digit_row(bottom, [np.clip(x[0], 0, 1) for _, x in picks], [f"step {s}" for s, _ in picks])

    def code(self, v):
        method = v["method"]
        settings = SETTINGS[method]
        if method == "GradInversion":
            model = (f"net = make_lenet_digits(seed={v['seed']}, batch_norm=True)\n"
                     f"train_classifier(net, X_train, y_train, epochs=3, seed={v['seed']})\n"
                     "net.train()  # the client's gradient uses batch statistics")
        else:
            model = f"net = make_lenet_digits(seed={v['seed']})"
        return f"""\
import torch
from torch import nn
from aijack_lab.attack import GradientInversion_Attack
from aijack_lab.attack.inversion.metrics import reconstruction_mse
from aijack_lab.datasets import load_digits
from aijack_lab.models import train_classifier
from aijack_lab.models.lenet import make_lenet_digits

X_train, y_train, X_test, y_test = load_digits()
{model}

# the victim's private batch ({v['batch_size']} test digits with different labels) and the gradient it shares
idx, seen = [], set()
for i in range({v['sample']}, len(y_test)):
    if int(y_test[i]) not in seen and len(idx) < {v['batch_size']}:
        seen.add(int(y_test[i]))
        idx.append(i)
x_true, y_true = X_test[idx], y_test[idx]
loss = nn.CrossEntropyLoss()(net(x_true), y_true)
received_gradients = [g.detach() for g in torch.autograd.grad(loss, list(net.parameters()))]

# {method}
attacker = GradientInversion_Attack(net, (1, 8, 8), num_iteration={v['num_iteration']}, seed={v['seed']},
                                    {_kwargs_code(settings)})
x_rec, y_rec = attacker.attack(received_gradients, batch_size={v['batch_size']})

mse = reconstruction_mse(x_rec, x_true)  # pairs each reconstruction with its closest original
recovered_labels = y_rec.tolist()
print(f"MSE {{mse:.3g}}, labels {{recovered_labels}} (true {{y_true.tolist()}})")
"""
