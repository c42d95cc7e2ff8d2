"""Rain panel: a complaint about a corrupted model's predictions, traced back to training records."""
import numpy as np
import torch
from torch import nn

from aijack_lab.datasets import load_breast_cancer
from aijack_lab.defense.debugging import AggregateComplaint, Rain
from aijack_lab.models import train_logistic_regression

from .base import Panel
from .params import IntParam
from .registry import register


@register("Defense", "Debugging", "Rain")
class RainPanel(Panel):
    title = "Rain — complaint-driven training-data debugging"
    description = (
        "Some malignant training records of the breast-cancer set get the label 'benign'. The user complains: "
        "<i>among the malignant test rows, at most as many should be predicted benign as before</i>. Rain relaxes "
        "the complaint into a differentiable function of the predictions and ranks training records by how much "
        "removing each would satisfy it (influence functions, Hessian solved by conjugate gradients), then "
        "removes the top ones and retrains."
    )
    reference = "Wu, Weimer, Madden. Complaint-driven Training Data Debugging for Query 2.0. SIGMOD 2020."
    params = (
        IntParam("num_flipped", 40, min=5, max=100, label="flipped labels"),
        IntParam("k", 40, min=1, max=120, label="records to remove (budget)"),
        IntParam("step", 5, min=1, max=40, label="removed per retraining"),
        IntParam("seed", 0, min=0, max=100),
    )
    reproducible = ("count_before", "count_after", "precision_at_flipped")

    def compute(self, v, progress):
        xtr, ytr, xte, yte = [torch.as_tensor(a) for a in load_breast_cancer()]
        clean = train_logistic_regression(xtr, ytr)
        rows = torch.nonzero(yte == 0).squeeze(1)
        allowed = int((clean(xte[rows]).argmax(1) == 1).sum())
        malignant = torch.nonzero(ytr == 0).squeeze(1)
        gen = torch.Generator().manual_seed(v["seed"])
        flipped = malignant[torch.randperm(len(malignant), generator=gen)[: v["num_flipped"]]]
        y_bad = ytr.clone()
        y_bad[flipped] = 1
        model = train_logistic_regression(xtr, y_bad)
        progress(1, 3)
        complaint = AggregateComplaint(rows.tolist(), label=1, op="<=", value=allowed)
        rain = Rain(model, xtr, y_bad)
        order, scores = rain.rank(complaint, xte)
        progress(2, 3)
        fixed = rain.fix(complaint, xte, k=v["k"], train_fn=train_logistic_regression, step=v["step"])
        progress(3, 3)
        flipped_set = set(flipped.tolist())
        top = order[: len(flipped)].tolist()
        with torch.no_grad():
            loss = nn.functional.cross_entropy(model(xtr), y_bad, reduction="none")
        by_loss = torch.argsort(loss, descending=True)[: len(flipped)].tolist()
        rank_of = torch.empty_like(order)
        rank_of[order] = torch.arange(len(order))
        result = {
            "complaint_value": allowed,
            "count_before": complaint.count(model(xte).argmax(1)),
            "count_after": complaint.count(fixed["predictions"]),
            "resolved": not fixed["violated"],
            "removed": len(fixed["removed"]),
            "removed_that_were_flipped": len(set(fixed["removed"].tolist()) & flipped_set),
            "precision_at_flipped": len(set(top) & flipped_set) / len(flipped),
            "loss_ranking_precision": len(set(by_loss) & flipped_set) / len(flipped),
            "top_records": order[:10].tolist(),
        }
        data = {"rank_flipped": rank_of[flipped].numpy(), "n": len(order),
                "top": [(int(i), float(scores[i]), int(i) in flipped_set) for i in order[:10]]}
        return result, data

    def draw(self, fig, result, data):
        ax1, ax2, ax3 = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.3, 1, 1.2]})
        ax1.hist(data["rank_flipped"], bins=np.linspace(0, data["n"], 30), color="C3")
        ax1.set_xlabel("Rain rank of each flipped record")
        ax1.set_ylabel("records")
        ax1.set_title("flipped records rank first", fontsize=9)
        ax2.bar(["Rain", "highest loss"], [result["precision_at_flipped"], result["loss_ranking_precision"]], color=["C0", "#999"])
        ax2.set_ylim(0, 1)
        ax2.set_title("precision of the top ranks", fontsize=9)
        ax3.bar(["allowed", "corrupted", "after fix"],
                [result["complaint_value"], result["count_before"], result["count_after"]], color=["#999", "C3", "C2"])
        ax3.set_title("malignant rows predicted benign", fontsize=9)
        rows = "\n".join(f"#{i:>3} {'FLIPPED' if f else 'clean  '} {s:+.2e}" for i, s, f in data["top"][:6])
        ax1.text(0.98, 0.97, rows, transform=ax1.transAxes, ha="right", va="top", family="monospace", fontsize=6)

    def code(self, v):
        return f"""\
import torch
from aijack_lab.datasets import load_breast_cancer
from aijack_lab.defense.debugging import AggregateComplaint, Rain
from aijack_lab.models import train_logistic_regression

X_train, y_train, X_test, y_test = [torch.as_tensor(a) for a in load_breast_cancer()]
rows = torch.nonzero(y_test == 0).squeeze(1)                      # malignant test rows
allowed = int((train_logistic_regression(X_train, y_train)(X_test[rows]).argmax(1) == 1).sum())

malignant = torch.nonzero(y_train == 0).squeeze(1)                 # corrupt: malignant -> benign
flipped = malignant[torch.randperm(len(malignant), generator=torch.Generator().manual_seed({v['seed']}))[:{v['num_flipped']}]]
y_bad = y_train.clone(); y_bad[flipped] = 1
model = train_logistic_regression(X_train, y_bad)

complaint = AggregateComplaint(rows.tolist(), label=1, op="<=", value=allowed)
rain = Rain(model, X_train, y_bad)
order, scores = rain.rank(complaint, X_test)
precision_at_flipped = len(set(order[:len(flipped)].tolist()) & set(flipped.tolist())) / len(flipped)

fixed = rain.fix(complaint, X_test, k={v['k']}, train_fn=train_logistic_regression, step={v['step']})
count_before = complaint.count(model(X_test).argmax(1))
count_after = complaint.count(fixed["predictions"])
print(f"precision {{precision_at_flipped:.2f}}; benign predictions {{count_before}} -> {{count_after}} (allowed {{allowed}})")
"""
