"""Panels for the federated defenses of Table 1 "Defense / Others", each shown against its attack:
Soteria vs DLG, FoolsGold vs sybil poisoning, MID vs representation inversion, sparse gradients
(bytes sent vs accuracy).

Each panel's ``compute`` runs exactly the source its Code view shows (plus a progress hook), so the
two give the same numbers.
"""
from typing import Any, Dict

import numpy as np

from .base import Panel
from .common import show_digit_row
from .params import FloatParam, IntParam
from .registry import register


def _exec(source: str, progress, total: int) -> Dict[str, Any]:
    done = [0]

    def step(*_args):
        done[0] += 1
        progress(min(done[0], total), total)

    namespace: Dict[str, Any] = {"__name__": "__defense_panel__", "_panel_step": step, "print": lambda *a, **k: None}
    exec(compile(source, "<defense panel>", "exec"), namespace)
    progress(total, total)
    return namespace


# -- Soteria ----------------------------------------------------------------------------------------
def soteria_source(v) -> str:
    return f"""\
import torch
from torch import nn
from aijack_lab.attack import GradientInversion_Attack
from aijack_lab.attack.inversion.metrics import reconstruction_mse
from aijack_lab.collaborative import FedAVGClient
from aijack_lab.datasets import load_digits
from aijack_lab.defense import SoteriaClientManager
from aijack_lab.models.lenet import make_lenet_digits

X_train, y_train, X_test, y_test = load_digits()
x, y = X_train[{v['sample']}:{v['sample'] + 1}], y_train[{v['sample']}:{v['sample'] + 1}]
manager = SoteriaClientManager("conv", "lin", epsilon={v['epsilon']!r}, target_layer_name="lin.0.weight")
SoteriaFedAVGClient = manager.attach(FedAVGClient)

def upload_after_one_step(client_cls):
    # one SGD step at lr 1 on one digit: the upload is that digit's (pruned) gradient
    client = client_cls(make_lenet_digits(seed={v['seed']}), lr=1.0)
    client.local_train(1, nn.CrossEntropyLoss(), [(x, y)], torch.optim.SGD(client.parameters(), lr=1.0))
    return client, client.upload_gradients()

plain_client, plain_upload = upload_after_one_step(FedAVGClient)
soteria_client, soteria_upload = upload_after_one_step(SoteriaFedAVGClient)

def dlg(upload):
    attacker = GradientInversion_Attack(make_lenet_digits(seed={v['seed']}), (1, 8, 8), distancename="l2",
                                        num_iteration={v['num_iteration']}, seed={v['seed']})
    x_rec, _ = attacker.attack(upload)
    _panel_step() if "_panel_step" in globals() else None
    return x_rec

# reconstructions in the pixel range [0, 1] (an unconstrained DLG run can diverge far outside it)
x_plain, x_soteria = dlg(plain_upload).clamp(0, 1), dlg(soteria_upload).clamp(0, 1)
plain_mse = reconstruction_mse(x_plain, x)
soteria_mse = reconstruction_mse(x_soteria, x)
pruned_fraction = soteria_client.pruned_fractions[-1]
# the cost: how much of the shared gradient Soteria changed
gradient_change = float(torch.cat([(a - b).flatten() for a, b in zip(soteria_upload, plain_upload)]).norm()
                        / torch.cat([b.flatten() for b in plain_upload]).norm())
print(f"DLG error: plain {{plain_mse:.2e}}, Soteria {{soteria_mse:.2e}}")
"""


@register("Defense", "Others", "Soteria")
class SoteriaPanel(Panel):
    title = "Soteria — pruning the representation's gradient against DLG"
    description = (
        "A client's gradient on its linear layer is δ·rᵀ: each column shows one feature r_f of its "
        "representation. Soteria zeroes the columns whose removal moves the reconstructable input most "
        "(largest |r_f| / ||∂r_f/∂x||), a fraction ε of them, before the gradient is sent. DLG then "
        "inverts the plain and the Soteria client's upload of the same digit."
    )
    reference = "Sun et al. Soteria: Provable Defense against Privacy Leakage in Federated Learning from Representation Perspective. CVPR 2021."
    params = (
        FloatParam("epsilon", 0.3, min=0.0, max=0.9, step=0.05, label="pruned fraction ε"),
        IntParam("num_iteration", 20, min=5, max=100, label="DLG iterations"),
        IntParam("sample", 0, min=0, max=200, label="victim digit index"),
        IntParam("seed", 0, min=0, max=100),
    )
    reproducible = ("plain_mse", "soteria_mse", "pruned_fraction", "gradient_change")
    figsize = (8.0, 3.0)

    def compute(self, values, progress):
        ns = _exec(soteria_source(values), progress, 2)
        result = {k: ns[k] for k in self.reproducible}
        result["error_ratio"] = ns["soteria_mse"] / max(ns["plain_mse"], 1e-12)
        data = {"images": [ns["x"][0, 0].numpy(), ns["x_plain"][0, 0].detach().numpy(),
                           ns["x_soteria"][0, 0].detach().numpy()]}
        return result, data

    def draw(self, fig, result, data):
        axes = fig.subplots(1, 3)
        show_digit_row(axes, data["images"], [
            "private digit", f"DLG vs plain\nMSE {result['plain_mse']:.1e}",
            f"DLG vs Soteria (ε={result['pruned_fraction']:.2f})\nMSE {result['soteria_mse']:.1e}"])

    def code(self, values):
        return soteria_source(values)


# -- FoolsGold --------------------------------------------------------------------------------------
def foolsgold_source(v) -> str:
    return f"""\
import torch
from torch import nn
from aijack_lab.attack import MAPFClientWrapper
from aijack_lab.attack.fl_utils import make_fl_clients
from aijack_lab.collaborative import FedAVGAPI, FedAVGClient, FedAVGServer
from aijack_lab.datasets import load_digits, make_client_dataloaders, partition_iid
from aijack_lab.defense.foolsgold import FoolsGoldServerManager
from aijack_lab.models import make_digits_model

X_train, y_train, X_test, y_test = load_digits()
parts = partition_iid(len(X_train), {v['num_clients']}, seed={v['seed']})
NN = lambda: make_digits_model("cnn", seed={v['seed']})
SybilClient = MAPFClientWrapper(lam={v['lam']!r}, seed={v['seed']}).attach(FedAVGClient)  # alike poisoned updates
manager = FoolsGoldServerManager()
FoolsGoldFedAVGServer = manager.attach(FedAVGServer)

def run(server_cls, num_sybils):
    dataloaders = make_client_dataloaders(X_train, y_train, parts, batch_size=32, seed={v['seed']})
    clients = make_fl_clients(FedAVGClient, SybilClient, NN, {v['num_clients']}, num_sybils)  # sybils last
    server = server_cls(clients, NN())
    optimizers = [torch.optim.SGD(c.parameters(), lr=0.1, momentum=0.9) for c in clients]
    api = FedAVGAPI(server, clients, nn.CrossEntropyLoss(), optimizers, dataloaders,
                    num_communication={v['num_communication']}, validation_dataloader=(X_test, y_test),
                    on_round=globals().get("_panel_step", lambda *a: None))
    return [h["global_accuracy"] for h in api.run()], server

clean_accuracy_per_round, _ = run(FedAVGServer, 0)
fedavg_accuracy_per_round, _ = run(FedAVGServer, {v['num_sybils']})
foolsgold_accuracy_per_round, server = run(FoolsGoldFedAVGServer, {v['num_sybils']})
client_weights_per_round = server.foolsgold_history  # rounds x clients
print("clean    ", [round(a, 3) for a in clean_accuracy_per_round])
print("FedAVG   ", [round(a, 3) for a in fedavg_accuracy_per_round])
print("FoolsGold", [round(a, 3) for a in foolsgold_accuracy_per_round])
"""


@register("Defense", "Others", "FoolsGold")
class FoolsGoldPanel(Panel):
    title = "FoolsGold — down-weighting alike (sybil) clients"
    description = (
        "The last clients are sybils of one attacker (MPAF: they all push the global model to the same "
        "base model). FoolsGold sums each client's updates over rounds and gives client i the weight "
        "1 − max_j cos(H_i, H_j), with pardoning and a logit squashing: alike clients get ≈ 0, honest "
        "clients keep theirs. Compared: the clean run, plain FedAVG with sybils, FoolsGold with sybils."
    )
    reference = "Fung, Yoon, Beschastnikh. The Limitations of Federated Learning in Sybil Settings. RAID 2020."
    params = (
        IntParam("num_clients", 5, min=3, max=10, label="clients"),
        IntParam("num_sybils", 2, min=0, max=8, label="sybil clients"),
        FloatParam("lam", 3.0, min=0.5, max=10.0, step=0.5, label="sybil λ (MPAF)"),
        IntParam("num_communication", 3, min=1, max=10, label="rounds"),
        IntParam("seed", 0, min=0, max=100),
    )
    reproducible = ("clean_accuracy_per_round", "fedavg_accuracy_per_round", "foolsgold_accuracy_per_round",
                    "client_weights_per_round")
    figsize = (10.0, 3.4)

    def compute(self, values, progress):
        if values["num_sybils"] >= values["num_clients"]:
            raise ValueError(f"num_sybils ({values['num_sybils']}) must be smaller than num_clients ({values['num_clients']})")
        ns = _exec(foolsgold_source(values), progress, 3 * values["num_communication"])
        result = {k: ns[k] for k in self.reproducible}
        n, m = values["num_clients"], values["num_sybils"]
        last = result["client_weights_per_round"][-1]
        result["final_sybil_weight"] = float(np.mean(last[n - m:])) if m else float("nan")
        result["final_honest_weight"] = float(np.mean(last[: n - m]))
        return result, {}

    def draw(self, fig, result, data):
        ax1, ax2 = fig.subplots(1, 2)
        rounds = np.arange(1, len(result["clean_accuracy_per_round"]) + 1)
        ax1.plot(rounds, result["clean_accuracy_per_round"], marker="o", label="clean")
        ax1.plot(rounds, result["fedavg_accuracy_per_round"], marker="s", color="C3", label="FedAVG + sybils")
        ax1.plot(rounds, result["foolsgold_accuracy_per_round"], marker="^", color="C2", label="FoolsGold + sybils")
        ax1.set_ylim(0, 1)
        ax1.set_xlabel("round")
        ax1.set_ylabel("global test accuracy")
        ax1.legend(fontsize=7)
        w = np.array(result["client_weights_per_round"])
        im = ax2.imshow(w.T, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax2.set_xlabel("round")
        ax2.set_ylabel("client (sybils last)")
        ax2.set_xticks(range(w.shape[0]), [str(i + 1) for i in range(w.shape[0])])
        ax2.set_title("FoolsGold weight per client", fontsize=9)
        fig.colorbar(im, ax=ax2)

    def code(self, values):
        return foolsgold_source(values)


# -- MID --------------------------------------------------------------------------------------------
def mid_source(v) -> str:
    return f"""\
import torch
from torch import nn
from aijack_lab.datasets import load_digits
from aijack_lab.defense import VIB
from aijack_lab.defense.mid import invert_representations, train_inversion_decoder
from aijack_lab.utils import seeded

X_train, y_train, X_test, y_test = load_digits()
dim_z = {v['dim_z']}
with seeded({v['seed']}):
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, dim_z))
    plain = nn.Sequential(encoder, nn.Linear(dim_z, 10))
    vib = VIB(nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2 * dim_z)),
              nn.Linear(dim_z, 10), dim_z=dim_z, num_samples=5, beta={v['beta']!r},
              generator=torch.Generator().manual_seed({v['seed']}))

def train(model, is_vib):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed({v['seed']})
    model.train()
    for _ in range({v['epochs']}):
        perm = torch.randperm(len(X_train), generator=g)
        for i in range(0, len(X_train), 64):
            idx = perm[i:i + 64]
            optimizer.zero_grad()
            if is_vib:
                outputs, result = vib(X_train[idx])
                loss = vib.loss(y_train[idx], result)  # cross-entropy + beta * KL(p(z|x) || N(0, I))
            else:
                loss = nn.functional.cross_entropy(model(X_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
        _panel_step() if "_panel_step" in globals() else None
    model.eval()
    with torch.no_grad():
        return float((model(X_test).argmax(1) == y_test).float().mean())

plain_accuracy, vib_accuracy = train(plain, False), train(vib, True)
# the attacker queries each model's representation on its own data and learns to invert it
aux, private = X_test[:225], X_train[:300]
dec_plain = train_inversion_decoder(encoder, aux, epochs=150, seed={v['seed']})
x_rec_plain, plain_inversion_mse = invert_representations(dec_plain, encoder, private)
dec_vib = train_inversion_decoder(vib.encode, aux, epochs=150, seed={v['seed']})
x_rec_vib, vib_inversion_mse = invert_representations(dec_vib, vib.encode, private)
print(f"accuracy plain {{plain_accuracy:.3f}}, VIB {{vib_accuracy:.3f}}; "
      f"inversion MSE plain {{plain_inversion_mse:.4f}}, VIB {{vib_inversion_mse:.4f}}")
"""


@register("Defense", "Others", "MID")
class MIDPanel(Panel):
    title = "MID — an information bottleneck against model inversion"
    description = (
        "MID trains the classifier through a stochastic bottleneck z ~ N(μ(x), σ(x)²) with the loss "
        "cross-entropy + β·KL(p(z|x) ‖ N(0, I)), which bounds the information z keeps about x. An "
        "attacker who sees representations learns a decoder z → x on its own data; compare what it "
        "recovers from a plain model's representation and from the VIB's bottleneck (same size)."
    )
    reference = "Wang et al. Improving Robustness to Model Inversion Attacks via Mutual Information Regularization. AAAI 2021."
    params = (
        FloatParam("beta", 1e-2, min=-4, max=0, step=0.5, log=True, label="β (information weight)"),
        IntParam("dim_z", 16, min=4, max=64, step=4, label="representation size"),
        IntParam("epochs", 8, min=1, max=30, label="training epochs"),
        IntParam("seed", 0, min=0, max=100),
    )
    reproducible = ("plain_accuracy", "vib_accuracy", "plain_inversion_mse", "vib_inversion_mse")
    figsize = (9.0, 3.6)

    def compute(self, values, progress):
        ns = _exec(mid_source(values), progress, 2 * values["epochs"])
        result = {k: ns[k] for k in self.reproducible}
        result["inversion_error_ratio"] = ns["vib_inversion_mse"] / max(ns["plain_inversion_mse"], 1e-12)
        data = {"private": ns["private"][:6, 0].numpy(), "plain": ns["x_rec_plain"][:6, 0].numpy(),
                "vib": ns["x_rec_vib"][:6, 0].numpy()}
        return result, data

    def draw(self, fig, result, data):
        axes = fig.subplots(3, 6)
        show_digit_row(axes[0], data["private"], ["private"] + [""] * 5)
        show_digit_row(axes[1], data["plain"], [f"plain (MSE {result['plain_inversion_mse']:.3f})"] + [""] * 5)
        show_digit_row(axes[2], data["vib"], [f"VIB (MSE {result['vib_inversion_mse']:.3f})"] + [""] * 5)

    def code(self, values):
        return mid_source(values)


# -- sparse gradients -------------------------------------------------------------------------------
def sparse_source(v) -> str:
    return f"""\
import torch
from torch import nn
from aijack_lab.collaborative import FedAVGAPI, FedAVGClient, FedAVGServer
from aijack_lab.datasets import load_digits, make_client_dataloaders, partition_iid
from aijack_lab.defense.sparse import SparseGradientClientManager, SparseGradientServerManager
from aijack_lab.models import make_digits_model

X_train, y_train, X_test, y_test = load_digits()
client_num = {v['num_clients']}
parts = partition_iid(len(X_train), client_num, seed={v['seed']})
NN = lambda: make_digits_model("cnn", seed={v['seed']})
SparseGradientFedAVGClient = SparseGradientClientManager(k={v['k']!r}).attach(FedAVGClient)
SparseGradientFedAVGServer = SparseGradientServerManager().attach(FedAVGServer)

def run(client_cls, server_cls):
    dataloaders = make_client_dataloaders(X_train, y_train, parts, batch_size=32, seed={v['seed']})
    clients = [client_cls(NN(), user_id=i, server_side_update=False) for i in range(client_num)]
    server = server_cls(clients, NN(), server_side_update=False)
    optimizers = [torch.optim.SGD(c.parameters(), lr=0.1, momentum=0.9) for c in clients]
    api = FedAVGAPI(server, clients, nn.CrossEntropyLoss(), optimizers, dataloaders,
                    num_communication={v['num_communication']}, validation_dataloader=(X_test, y_test),
                    on_round=globals().get("_panel_step", lambda *a: None))
    history = api.run()
    return [h["global_accuracy"] for h in history], [h["bytes_uploaded"] for h in history]

dense_accuracy_per_round, dense_bytes_per_round = run(FedAVGClient, FedAVGServer)
sparse_accuracy_per_round, sparse_bytes_per_round = run(SparseGradientFedAVGClient, SparseGradientFedAVGServer)
print("dense ", dense_bytes_per_round, [round(a, 3) for a in dense_accuracy_per_round])
print("sparse", sparse_bytes_per_round, [round(a, 3) for a in sparse_accuracy_per_round])
"""


@register("Defense", "Others", "Sparse Gradient")
class SparseGradientPanel(Panel):
    title = "Sparse gradients — send only the top-k entries"
    description = (
        "Each client sends only the fraction k of its update's entries with the largest magnitude (values "
        "and indices); the server turns them back into dense tensors, aggregates, and sends the aggregate "
        "back for the clients to apply (server_side_update=False). Fewer bytes go up, and the upload "
        "carries less of the client's data; the cost is slower learning as k shrinks."
    )
    reference = "Aji & Heafield. Sparse Communication for Distributed Gradient Descent. EMNLP 2017; Zhu et al. DLG, NeurIPS 2019."
    params = (
        FloatParam("k", 0.3, min=0.01, max=1.0, step=0.01, label="fraction sent k"),
        IntParam("num_clients", 3, min=2, max=8, label="clients"),
        IntParam("num_communication", 3, min=1, max=10, label="rounds"),
        IntParam("seed", 0, min=0, max=100),
    )
    reproducible = ("dense_accuracy_per_round", "sparse_accuracy_per_round", "dense_bytes_per_round",
                    "sparse_bytes_per_round")
    figsize = (9.0, 3.4)

    def compute(self, values, progress):
        ns = _exec(sparse_source(values), progress, 2 * values["num_communication"])
        result = {k: ns[k] for k in self.reproducible}
        result["bytes_ratio"] = ns["sparse_bytes_per_round"][0] / ns["dense_bytes_per_round"][0]
        return result, {}

    def draw(self, fig, result, data):
        ax1, ax2 = fig.subplots(1, 2)
        for key, label, marker in (("dense", "dense", "o"), ("sparse", "top-k sparse", "s")):
            sent = np.cumsum(result[f"{key}_bytes_per_round"]) / 1e3
            ax1.plot(sent, result[f"{key}_accuracy_per_round"], marker=marker, label=label)
        ax1.set_xlabel("kB uploaded (cumulative)")
        ax1.set_ylabel("global test accuracy")
        ax1.set_ylim(0, 1)
        ax1.legend(fontsize=7)
        rounds = np.arange(1, len(result["dense_bytes_per_round"]) + 1)
        ax2.bar(rounds - 0.2, np.array(result["dense_bytes_per_round"]) / 1e3, width=0.4, label="dense")
        ax2.bar(rounds + 0.2, np.array(result["sparse_bytes_per_round"]) / 1e3, width=0.4, label="top-k sparse")
        ax2.set_xlabel("round")
        ax2.set_ylabel("kB uploaded")
        ax2.legend(fontsize=7)

    def code(self, values):
        return sparse_source(values)
