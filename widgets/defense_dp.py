"""Differential-privacy panels: the moments accountant, and DP-SGD / AdaDPS / DPlis training on digits."""
import numpy as np
import torch
from torch import nn, optim
from torch.utils.data import TensorDataset

from aijack_lab.defense import AdaDPSManager, DPSGDManager, GeneralMomentAccountant, PRVAccountant
from aijack_lab.models import make_digits_model
from aijack_lab.utils import evaluate_accuracy

from .base import Panel
from .common import digits, digits_model
from .params import BoolParam, ChoiceParam, FloatParam, IntParam
from .registry import register

LOT_VS_BATCH = (
    "<br><b>Lot vs batch.</b> A <i>lot</i> is the set of samples of one noisy update: the unit of privacy "
    "accounting (sampling rate q = lot size / N, one accountant step per lot). A <i>batch</i> only splits a "
    "lot's computation; changing the batch size changes neither ε nor the update."
)
DELTA = 1e-5
CURVE_EPS = (1.0, 2.0, 8.0)


class AccountantPanel(Panel):
    title = "Moments accountant — ε of the subsampled Gaussian mechanism"
    description = (
        "DP-SGD's privacy loss is tracked in Rényi DP: each step (lot) of the sampled Gaussian mechanism with "
        "noise multiplier σ and sampling rate q adds RDP at every order α; the total converts to (ε, δ)-DP at "
        "the best order. The tight bound is the exact RDP under Poisson sampling; the closed formula is a "
        "general upper bound (Wang et al. 2019). 'Find σ' returns the smallest σ whose ε stays within the target. "
        "The PRV accountant (Gopi et al. 2021) composes the privacy loss distribution itself numerically: a "
        "tighter, still guaranteed, ε for the same steps."
        + LOT_VS_BATCH
    )
    reference = "Abadi et al. Deep Learning with Differential Privacy. CCS 2016; Mironov, Talwar, Zhang. Rényi DP of the Sampled Gaussian Mechanism. 2019; Gopi, Lee, Wutschitz. Numerical Composition of Differential Privacy. NeurIPS 2021."
    params = (
        FloatParam("sigma", 1.5, min=0.3, max=10.0, step=0.05, label="σ (noise multiplier)"),
        FloatParam("sampling_rate", 0.04, min=-4, max=0, step=0.05, log=True, label="q = lot size / N"),
        IntParam("steps", 2250, min=1, max=20000, step=1, label="steps (lots)"),
        FloatParam("delta", 1e-5, min=-9, max=-2, step=0.5, log=True, label="δ"),
        FloatParam("target_epsilon", 2.0, min=0.1, max=20.0, step=0.1, label="target ε (find σ)"),
        ChoiceParam("backend", "cpp", options=("cpp", "python")),
    )
    reproducible = ("epsilon", "epsilon_closedformula", "sigma_for_target", "epsilon_prv")

    def compute(self, values, progress):
        kw = dict(backend=values["backend"])
        tight = GeneralMomentAccountant(bound_type="rdp_tight_upperbound", **kw)
        closed = GeneralMomentAccountant(bound_type="rdp_upperbound_closedformula", **kw)
        s, q, T, d = values["sigma"], values["sampling_rate"], values["steps"], values["delta"]
        grid = np.unique(np.linspace(1, T, 25).astype(int)).tolist()
        curves = {}
        for name, acc in (("tight", tight), ("closed", closed)):
            eps = []
            for t in grid:
                acc.reset_step_info()
                acc.add_step_info({"sigma": s}, q, t)
                eps.append(acc.get_epsilon(d))
            curves[name] = eps
        progress(1, 2)
        tight.reset_step_info()
        tight.add_step_info({"sigma": s}, q, T)
        epsilon, order = tight.get_epsilon_and_order(d)
        closed.reset_step_info()
        closed.add_step_info({"sigma": s}, q, T)
        sigma_t = tight.get_noise_multiplier("sigma", values["target_epsilon"], d, q, None, num_steps=T,
                                             noise_multiplier_precision=0.01)
        # PRV on every third point of the curve (each is an FFT composition); None where σ is too small for it
        prv_grid = grid[::3] if grid[-1] in grid[::3] else grid[::3] + [grid[-1]]
        prv_curve = []
        for t in prv_grid:
            try:
                prv = PRVAccountant()
                prv.add_step_info({"sigma": s}, q, t)
                prv_curve.append(prv.get_epsilon(d))
            except ValueError:
                prv_curve.append(None)
        progress(2, 2)
        result = {
            "epsilon": epsilon,
            "best_order": order,
            "epsilon_closedformula": closed.get_epsilon(d),
            "sigma_for_target": sigma_t,
            "target_epsilon": values["target_epsilon"],
            "steps_grid": grid,
            "epsilon_curve_tight": curves["tight"],
            "epsilon_curve_closedformula": curves["closed"],
            "epsilon_prv": prv_curve[-1],
            "steps_grid_prv": prv_grid,
            "epsilon_curve_prv": prv_curve,
        }
        return result, {}

    def draw(self, fig, result, data):
        ax = fig.add_subplot(1, 1, 1)
        ax.plot(result["steps_grid"], result["epsilon_curve_tight"], label="rdp_tight_upperbound")
        ax.plot(result["steps_grid"], result["epsilon_curve_closedformula"], "--", label="rdp_upperbound_closedformula")
        points = [(t, e) for t, e in zip(result["steps_grid_prv"], result["epsilon_curve_prv"]) if e is not None]
        if points:
            ax.plot(*zip(*points), "o:", label="PRV accountant")
        ax.set_xlabel("steps (lots)")
        ax.set_ylabel("ε")
        prv = "" if result["epsilon_prv"] is None else f", PRV {result['epsilon_prv']:.3f}"
        ax.set_title(f"ε = {result['epsilon']:.3f} (order {result['best_order']:g}{prv}); "
                     f"σ for ε ≤ {result['target_epsilon']:g}: {result['sigma_for_target']:.3f}", fontsize=9)
        ax.legend(fontsize=8)

    def code(self, v):
        return f"""\
from aijack_lab.defense import GeneralMomentAccountant, PRVAccountant

accountant = GeneralMomentAccountant(noise_type="Gaussian", bound_type="rdp_tight_upperbound", backend={v['backend']!r})
accountant.reset_step_info()
accountant.add_step_info({{"sigma": {v['sigma']!r}}}, {v['sampling_rate']!r}, {v['steps']})  # (noise, q = lot/N, lots)
epsilon = accountant.get_epsilon({v['delta']!r})

closed = GeneralMomentAccountant(noise_type="Gaussian", bound_type="rdp_upperbound_closedformula", backend={v['backend']!r})
closed.add_step_info({{"sigma": {v['sigma']!r}}}, {v['sampling_rate']!r}, {v['steps']})
epsilon_closedformula = closed.get_epsilon({v['delta']!r})

# the smallest sigma (to 0.01) whose epsilon is <= the target after the same number of lots
sigma_for_target = accountant.get_noise_multiplier("sigma", {v['target_epsilon']!r}, {v['delta']!r}, {v['sampling_rate']!r},
                                                   None, num_steps={v['steps']}, noise_multiplier_precision=0.01)
print(f"epsilon {{epsilon:.4f}} (closed formula {{epsilon_closedformula:.4f}}), sigma for target {{sigma_for_target:.3f}}")

# the PRV accountant: same steps, a tighter guaranteed epsilon (raises ValueError if sigma is too small for it)
prv = PRVAccountant()
prv.add_step_info({{"sigma": {v['sigma']!r}}}, {v['sampling_rate']!r}, {v['steps']})
try:
    epsilon_prv = prv.get_epsilon({v['delta']!r})
except ValueError:
    epsilon_prv = None
print("PRV epsilon", epsilon_prv)
"""


# each method's best SGD lr on the default task (digits MLP, ε=4, 8 epochs, lots of 64, C=1), from
# the grids DP-SGD {0.7, 1, 1.4}, AdaDPS {1, 1.4, 2} x eps_root {0.03, 0.1, 0.3} (seeds 0-4); DPlis uses DP-SGD's
TUNED_LR = {"dpsgd": 1.0, "adadps": 1.4, "dplis": 1.0}


def train_private(method, target_epsilon, model_kind="mlp", epochs=8, lot_size=64, l2_norm_clip=1.0, lr=None,
                  smoothing_radius=3.0, seed=0, public_size=100, progress=None):
    """Train a digits model privately at ``target_epsilon`` (δ=1e-5); return (model, sigma, epsilon).

    ``lr=None`` takes the method's tuned lr (``TUNED_LR``). The same function is spelled out in the
    panels' Code view.
    """
    lr = TUNED_LR[method] if lr is None else lr
    X_train, y_train, X_test, y_test = digits()
    dataset = TensorDataset(X_train, y_train)
    steps = epochs * (len(dataset) // lot_size)
    accountant = GeneralMomentAccountant(noise_type="Gaussian", backend="cpp")
    sigma = accountant.get_noise_multiplier("sigma", target_epsilon, DELTA, lot_size / len(dataset), None, num_steps=steps)
    model = make_digits_model(model_kind, seed=seed)
    criterion = nn.CrossEntropyLoss()
    common = dict(l2_norm_clip=l2_norm_clip, dataset=dataset, lot_size=lot_size, batch_size=lot_size, seed=seed)
    if method == "adadps":
        public = TensorDataset(X_test[:public_size], y_test[:public_size])
        manager = AdaDPSManager(accountant, optim.SGD, public_dataset=public, model=model, criterion=criterion, **common)
    else:
        manager = DPSGDManager(accountant, optim.SGD, smoothing=(method == "dplis"), smoothing_radius=smoothing_radius, **common)
    accountant.reset_step_info()
    dpoptimizer_cls, lot_loader, batch_loader = manager.privatize(noise_multiplier=sigma)
    optimizer = dpoptimizer_cls(model.parameters(), lr=lr)
    for epoch in range(epochs):
        for X_lot, y_lot in lot_loader(optimizer):
            for X_batch, y_batch in batch_loader(TensorDataset(X_lot, y_lot)):
                optimizer.zero_grad()
                loss = criterion(model(X_batch), y_batch)
                loss.backward()
                optimizer.step()
        if progress is not None:
            progress(epoch + 1, epochs)  # the panel's Stop raises here
    optimizer.dp_engine.close()
    model.eval()
    return model, sigma, accountant.get_epsilon(DELTA)


def loss_threshold_auc(model, members, non_members):
    """Membership-inference AUC of the loss-threshold attack (Yeom et al. 2018): lower loss → 'member'."""
    from sklearn.metrics import roc_auc_score

    with torch.no_grad():
        lm = nn.functional.cross_entropy(model(members[0]), members[1], reduction="none")
        ln = nn.functional.cross_entropy(model(non_members[0]), non_members[1], reduction="none")
    labels = np.r_[np.ones(len(lm)), np.zeros(len(ln))]
    return float(roc_auc_score(labels, -np.r_[lm.numpy(), ln.numpy()]))


@register("Defense", "Differential Privacy", "DPSGD")
@register("Defense", "Differential Privacy", "AdaDPS", method="adadps")
@register("Defense", "Differential Privacy", "DPlis", method="dplis")
class DPSGDPanel(Panel):
    title = "DP-SGD, AdaDPS and DPlis — private training of a digits classifier"
    description = (
        "DP-SGD clips each sample's gradient to norm C and adds Gaussian noise σ·C to each lot's sum; the "
        "accountant turns σ, q and the number of lots into ε. σ is chosen as the smallest that meets the target ε. "
        "<b>AdaDPS</b> preconditions the per-sample gradients with second moments from a small public set "
        "(side information) before clipping; <b>DPlis</b> takes the gradients at randomly perturbed weights "
        "(a smoothed loss); both are compared with DP-SGD at the same ε (each at its tuned lr). "
        "The curve shows accuracy against ε; the table compares a loss-threshold "
        "membership-inference AUC of the private and a non-private model (the reference digits model, "
        "Adam, 10 epochs)." + LOT_VS_BATCH
    )
    reference = ("Abadi et al. CCS 2016; Li et al. Private Adaptive Optimization with Side Information. ICML 2022; "
                 "Wang et al. DPlis: Boosting Utility of Differentially Private Deep Learning via Randomized Smoothing. PETS 2021.")
    params = (
        ChoiceParam("method", "dpsgd", options=("dpsgd", "adadps", "dplis")),
        FloatParam("target_epsilon", 4.0, min=0.5, max=16.0, step=0.5, label="target ε (δ = 1e-5)"),
        ChoiceParam("model", "mlp", options=("mlp", "cnn")),
        IntParam("epochs", 8, min=1, max=30, label="epochs"),
        IntParam("lot_size", 64, min=16, max=256, step=16, label="lot size"),
        FloatParam("l2_norm_clip", 1.0, min=0.1, max=5.0, step=0.1, label="C (clip norm)"),
        FloatParam("lr", 0.0, min=0.0, max=4.0, step=0.05, label="SGD lr (0: the method's tuned lr)"),
        FloatParam("smoothing_radius", 3.0, min=0.0, max=20.0, step=0.5, label="DPlis radius"),
        BoolParam("curve", True, label="accuracy vs ε curve"),
        IntParam("seed", 0, min=0, max=100),
    )
    reproducible = ("accuracy", "epsilon", "noise_multiplier")

    def _kw(self, v):
        return dict(model_kind=v["model"], epochs=v["epochs"], lot_size=v["lot_size"], l2_norm_clip=v["l2_norm_clip"],
                    lr=self._lr(v), smoothing_radius=v["smoothing_radius"], seed=v["seed"])

    @staticmethod
    def _lr(v, method=None):
        return v["lr"] if v["lr"] > 0 else TUNED_LR[method or v["method"]]

    def compute(self, values, progress):
        X_train, y_train, X_test, y_test = digits()
        # AdaDPS uses the first 100 test samples as public data: evaluate every method on the rest
        test = (X_test[100:], y_test[100:])
        kw = self._kw(values)
        grid = [e for e in CURVE_EPS if e != values["target_epsilon"]] if values["curve"] else []
        compare = values["method"] != "dpsgd"
        total = len(grid) + 2 + compare
        model, sigma, eps = train_private(values["method"], values["target_epsilon"], **kw,
                                          progress=lambda e, n: progress(e / (n + 1), total))
        acc = evaluate_accuracy(model, test)
        progress(1, total)
        baseline = digits_model(values["model"], 10, values["seed"])  # non-private: Adam, 10 epochs (cached)
        base_acc = evaluate_accuracy(baseline, test)
        members, non_members = (X_train[:350], y_train[:350]), test
        progress(2, total)
        curve = {values["target_epsilon"]: acc}
        for i, e in enumerate(grid):
            m, _, _ = train_private(values["method"], e, **kw, progress=lambda k, n: progress(2 + i + k / (n + 1), total))
            curve[e] = evaluate_accuracy(m, test)
            progress(3 + i, total)
        dpsgd_acc = None
        if compare:  # the same ε, lots and noise draws (same seed), DP-SGD at its own tuned lr
            m, _, _ = train_private("dpsgd", values["target_epsilon"], **{**kw, "lr": self._lr(values, "dpsgd")})
            dpsgd_acc = evaluate_accuracy(m, test)
            progress(total, total)
        eps_sorted = sorted(curve)
        result = {
            "method": values["method"],
            "accuracy": acc,
            "epsilon": eps,
            "noise_multiplier": sigma,
            "non_private_accuracy": base_acc,
            "dpsgd_accuracy": dpsgd_acc,
            "mi_auc_private": loss_threshold_auc(model, members, non_members),
            "mi_auc_non_private": loss_threshold_auc(baseline, members, non_members),
            "epsilon_grid": eps_sorted,
            "accuracy_curve": [curve[e] for e in eps_sorted],
        }
        return result, {}

    def draw(self, fig, result, data):
        ax1, ax2 = fig.subplots(1, 2)
        ax1.plot(result["epsilon_grid"], result["accuracy_curve"], marker="o", label=result["method"])
        ax1.axhline(result["non_private_accuracy"], color="gray", ls="--", lw=1, label="non-private")
        if result.get("dpsgd_accuracy") is not None:
            ax1.plot([result["epsilon"]], [result["dpsgd_accuracy"]], "kx", label="DP-SGD, same ε")
        ax1.set_xscale("log")
        ax1.set_xlabel("ε (δ = 1e-5)")
        ax1.set_ylabel("test accuracy")
        ax1.set_ylim(0, 1)
        ax1.legend(fontsize=8)
        ax1.set_title("accuracy vs ε", fontsize=9)
        ax2.bar(["private", "non-private"], [result["mi_auc_private"], result["mi_auc_non_private"]], color=["C0", "C7"])
        ax2.axhline(0.5, color="k", lw=0.8)
        ax2.set_ylim(0.4, 1.0)
        ax2.set_ylabel("membership-inference AUC")
        ax2.set_title("loss-threshold MI attack (0.5 = chance)", fontsize=9)

    def code(self, v):
        if v["method"] == "adadps":
            mgr = ("public = TensorDataset(X_test[:100], y_test[:100])  # side information\n"
                   "manager = AdaDPSManager(accountant, optim.SGD, public_dataset=public, model=model, criterion=criterion,\n"
                   f"                        l2_norm_clip={v['l2_norm_clip']!r}, dataset=dataset, lot_size={v['lot_size']}, batch_size={v['lot_size']}, seed={v['seed']})")
        else:
            smooth = f", smoothing=True, smoothing_radius={v['smoothing_radius']!r}" if v["method"] == "dplis" else ""
            mgr = (f"manager = DPSGDManager(accountant, optim.SGD, l2_norm_clip={v['l2_norm_clip']!r}, dataset=dataset,\n"
                   f"                       lot_size={v['lot_size']}, batch_size={v['lot_size']}, seed={v['seed']}{smooth})")
        return f"""\
from torch import nn, optim
from torch.utils.data import TensorDataset
from aijack_lab.datasets import load_digits
from aijack_lab.defense import AdaDPSManager, DPSGDManager, GeneralMomentAccountant
from aijack_lab.models import make_digits_model
from aijack_lab.utils import evaluate_accuracy

X_train, y_train, X_test, y_test = load_digits()
dataset = TensorDataset(X_train, y_train)
lots_per_epoch = len(dataset) // {v['lot_size']}   # one lot = one noisy step = one accountant step
accountant = GeneralMomentAccountant(noise_type="Gaussian", backend="cpp")
noise_multiplier = accountant.get_noise_multiplier("sigma", {v['target_epsilon']!r}, 1e-5, {v['lot_size']} / len(dataset),
                                                   None, num_steps={v['epochs']} * lots_per_epoch)
model = make_digits_model({v['model']!r}, seed={v['seed']})
criterion = nn.CrossEntropyLoss()
{mgr}

accountant.reset_step_info()
dpoptimizer_cls, lot_loader, batch_loader = manager.privatize(noise_multiplier=noise_multiplier)
optimizer = dpoptimizer_cls(model.parameters(), lr={self._lr(v)!r})
for epoch in range({v['epochs']}):
    for X_lot, y_lot in lot_loader(optimizer):
        for X_batch, y_batch in batch_loader(TensorDataset(X_lot, y_lot)):
            optimizer.zero_grad()
            loss = criterion(model(X_batch), y_batch)
            loss.backward()
            optimizer.step()

model.eval()
accuracy = evaluate_accuracy(model, (X_test[100:], y_test[100:]))
epsilon = accountant.get_epsilon(1e-5)
print(f"sigma {{noise_multiplier:.3f}}: accuracy {{accuracy:.3f}} at epsilon {{epsilon:.3f}}")
"""
