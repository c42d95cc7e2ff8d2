"""SplitNN panel: two parties train one network split at a cut layer."""
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from aijack_lab.collaborative import SplitNNAPI, SplitNNClient
from aijack_lab.models import split_digits_mlp
from aijack_lab.utils import make_generator

from .base import Panel
from .common import digits
from .params import ChoiceParam, FloatParam, IntParam
from .registry import register


@register("FL", "Vertical", "SplitNN")
class SplitNNPanel(Panel):
    title = "SplitNN — split learning"
    description = (
        "The feature party runs the first layers of a network and sends the cut-layer activations; the label "
        "party runs the rest, computes the loss and sends back only the gradient of those activations. "
        "Neither raw features nor labels cross."
    )
    reference = "Vepakomma, Gupta, Swedish, Raskar. Split learning for health. 2018."
    params = (
        ChoiceParam("cut", 1, options=(("after hidden layer 1", 1), ("after hidden layer 2", 2)), label="cut layer"),
        IntParam("num_epoch", 5, min=1, max=20, label="epochs"),
        FloatParam("lr", 0.005, min=0.0005, max=0.05, step=0.0005, label="Adam lr"),
        IntParam("seed", 0, min=0, max=100),
    )
    reproducible = ("accuracy_per_epoch",)

    def compute(self, v, progress):
        x_tr, y_tr, x_te, y_te = digits()
        bottom, top = split_digits_mlp(v["cut"], 10, seed=v["seed"])
        clients = [SplitNNClient(bottom, user_id=0), SplitNNClient(top, user_id=1)]
        optimizers = [torch.optim.Adam(c.model.parameters(), lr=v["lr"]) for c in clients]
        loader = DataLoader(TensorDataset(x_tr, y_tr), batch_size=32, shuffle=True, generator=make_generator(v["seed"]))
        crossed = {"activation": 0, "gradient": 0}

        def count(kind, sender, receiver, tensor):
            crossed[kind] += tensor.numel() * tensor.element_size()

        api = SplitNNAPI(clients, optimizers, loader, nn.CrossEntropyLoss(), v["num_epoch"],
                         validation_dataloader=(x_te, y_te), progress=progress, on_transfer=count)
        history = api.run()
        result = {
            "accuracy_per_epoch": [h["accuracy"] for h in history],
            "final_accuracy": history[-1]["accuracy"],
            "activation_bytes_sent": crossed["activation"],
            "gradient_bytes_sent": crossed["gradient"],
            "feature_bytes_kept_private": int(x_tr.numel() * x_tr.element_size()),
        }
        return result, {"loss": [h["loss"] for h in history]}

    def draw(self, fig, result, data):
        ax1, ax2 = fig.subplots(1, 2)
        epochs = np.arange(1, len(data["loss"]) + 1)
        ax1.plot(epochs, result["accuracy_per_epoch"], marker="o", label="test accuracy")
        ax1.plot(epochs, data["loss"], marker="s", label="train loss")
        ax1.set_xlabel("epoch")
        ax1.legend(fontsize=7)
        ax1.set_title("training", fontsize=9)
        ax2.bar(["activations →", "← gradients"], [result["activation_bytes_sent"] / 1e6, result["gradient_bytes_sent"] / 1e6])
        ax2.set_ylabel("MB crossed")
        ax2.set_title("what crossed between the parties", fontsize=9)

    def code(self, v):
        return f"""\
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from aijack_lab.collaborative.splitnn import SplitNNAPI, SplitNNClient
from aijack_lab.datasets import load_digits
from aijack_lab.models import split_digits_mlp
from aijack_lab.utils import make_generator

X_train, y_train, X_test, y_test = load_digits()
bottom, top = split_digits_mlp(cut={v['cut']}, num_classes=10, seed={v['seed']})
clients = [SplitNNClient(bottom, user_id=0), SplitNNClient(top, user_id=1)]
optimizers = [torch.optim.Adam(c.model.parameters(), lr={v['lr']!r}) for c in clients]
train_loader = DataLoader(TensorDataset(X_train, y_train), batch_size=32, shuffle=True, generator=make_generator({v['seed']}))

splitnn = SplitNNAPI(clients, optimizers, train_loader, nn.CrossEntropyLoss(), {v['num_epoch']},
                     validation_dataloader=(X_test, y_test))
history = splitnn.run()
accuracy_per_epoch = [h["accuracy"] for h in history]
print(accuracy_per_epoch)
"""
