"""Norm attack panel: the feature party of split learning reads the labels off gradient norms."""
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from aijack_lab.attack.labelleakage import NormAttackSplitNNManager, norm_leak_auc
from aijack_lab.collaborative.splitnn import SplitNNAPI, SplitNNClient
from aijack_lab.models import split_digits_mlp
from aijack_lab.utils import make_generator

from .base import Panel
from .common import digits
from .params import FloatParam, IntParam
from .registry import register


@register("Attack", "Label Leakage", "Norm Attack")
class NormAttackPanel(Panel):
    title = "Norm attack — label leakage in split learning"
    description = (
        "A binary, imbalanced task (is the digit a <i>d</i>? about 10% yes) is trained by split learning. The "
        "feature party never sees labels, but the gradients it receives are larger for the rare class: ranking "
        "examples by gradient norm recovers the labels (AUC near 1)."
    )
    reference = "Li, Sun, Wang, Yang et al. Label Leakage and Protection in Two-party Split Learning. ICLR 2022."
    params = (
        IntParam("positive_digit", 0, min=0, max=9, label="positive digit d"),
        IntParam("num_epoch", 3, min=1, max=10, label="epochs"),
        FloatParam("lr", 0.01, min=0.001, max=0.05, step=0.001, label="Adam lr"),
        IntParam("seed", 0, min=0, max=100),
    )
    reproducible = ("leak_auc_per_epoch", "test_leak_auc")

    def compute(self, v, progress):
        x_tr, y_tr, x_te, y_te = digits()
        d = v["positive_digit"]
        yb_tr, yb_te = (y_tr == d).long(), (y_te == d).long()
        bottom, top = split_digits_mlp(1, 2, seed=v["seed"])
        clients = [SplitNNClient(bottom, user_id=0), SplitNNClient(top, user_id=1)]
        optimizers = [torch.optim.Adam(c.model.parameters(), lr=v["lr"]) for c in clients]
        loader = DataLoader(TensorDataset(x_tr, yb_tr), batch_size=32, shuffle=True, generator=make_generator(v["seed"]))
        API = NormAttackSplitNNManager(nn.CrossEntropyLoss(), device="cpu").attach(SplitNNAPI)
        api = API(clients, optimizers, loader, nn.CrossEntropyLoss(), v["num_epoch"],
                  validation_dataloader=(x_te, yb_te), progress=progress)
        history = api.run()
        scores, labels = api.attack(DataLoader(TensorDataset(x_te, yb_te), batch_size=64))
        result = {
            "leak_auc_per_epoch": api.leak_auc_history,
            "test_leak_auc": norm_leak_auc(scores, labels == 1),
            "task_accuracy": history[-1]["accuracy"],
            "positive_fraction": float(yb_tr.float().mean()),
        }
        return result, {"scores": scores, "labels": labels}

    def draw(self, fig, result, data):
        from sklearn.metrics import roc_curve

        ax1, ax2 = fig.subplots(1, 2)
        s, y = data["scores"], data["labels"]
        bins = np.linspace(0, s.max(), 40)
        ax1.hist(s[y == 0], bins=bins, alpha=0.6, label="label 0 (common)", density=True)
        ax1.hist(s[y == 1], bins=bins, alpha=0.6, label="label 1 (rare)", density=True)
        ax1.set_xlabel("norm of the received gradient")
        ax1.legend(fontsize=7)
        ax1.set_title("what the feature party sees", fontsize=9)
        fpr, tpr, _ = roc_curve(y, s)
        ax2.plot(fpr, tpr, label=f"AUC {result['test_leak_auc']:.3f}")
        ax2.plot([0, 1], [0, 1], "k--", lw=0.8)
        ax2.set_xlabel("false positive rate")
        ax2.set_ylabel("true positive rate")
        ax2.legend(fontsize=7)
        ax2.set_title("labels leaked (test pass)", fontsize=9)

    def code(self, v):
        return f"""\
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from aijack_lab.attack.labelleakage import NormAttackSplitNNManager, norm_leak_auc
from aijack_lab.collaborative.splitnn import SplitNNAPI, SplitNNClient
from aijack_lab.datasets import load_digits
from aijack_lab.models import split_digits_mlp
from aijack_lab.utils import make_generator

X_train, y_train, X_test, y_test = load_digits()
y_train, y_test = (y_train == {v['positive_digit']}).long(), (y_test == {v['positive_digit']}).long()
bottom, top = split_digits_mlp(1, 2, seed={v['seed']})
clients = [SplitNNClient(bottom, user_id=0), SplitNNClient(top, user_id=1)]
optimizers = [torch.optim.Adam(c.model.parameters(), lr={v['lr']!r}) for c in clients]
train_loader = DataLoader(TensorDataset(X_train, y_train), batch_size=32, shuffle=True, generator=make_generator({v['seed']}))

criterion = nn.CrossEntropyLoss()
manager = NormAttackSplitNNManager(criterion, device="cpu")
NormAttackSplitNNAPI = manager.attach(SplitNNAPI)
normattacksplitnn = NormAttackSplitNNAPI(clients, optimizers, train_loader, criterion, {v['num_epoch']},
                                         validation_dataloader=(X_test, y_test))
normattacksplitnn.run()
leak_auc_per_epoch = normattacksplitnn.leak_auc_history
scores, labels = normattacksplitnn.attack(DataLoader(TensorDataset(X_test, y_test), batch_size=64))
test_leak_auc = norm_leak_auc(scores, labels == 1)
print(leak_auc_per_epoch, test_leak_auc)
"""
