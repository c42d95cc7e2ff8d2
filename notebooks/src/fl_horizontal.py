# %% [markdown]
# # Horizontal federated learning
#
# **What you will learn:** how clients train one shared model without sharing their data,
# what the server does each round, how non-IID data slows it down, and how FedProx, FedKD, MOON,
# FedEXP and a server-side Adam (FedAdam) change the clients' or the server's step to counter it.
#
# ## FedAVG (McMahan et al., 2017)
#
# Each round every client trains the global model on its own data for a few local epochs and
# uploads the result; the server replaces the global model by the mean of the uploads weighted
# by the clients' data sizes.

# %%
import torch
from torch import nn

from aijack_lab.collaborative import FedAVGAPI, FedAVGClient, FedAVGServer
from aijack_lab.datasets import load_digits, make_client_dataloaders, partition_iid
from aijack_lab.models import make_digits_model

X_train, y_train, X_test, y_test = load_digits()
parts = partition_iid(len(X_train), 4, seed=0)
dataloaders = make_client_dataloaders(X_train, y_train, parts, batch_size=32, seed=0)
NN = lambda: make_digits_model("cnn", seed=0)
criterion = nn.CrossEntropyLoss()

# %% [markdown]
# The paper's listing (Code 5), with four clients:

# %%
clients = [FedAVGClient(NN(), user_id=i) for i in range(4)]
server = FedAVGServer(clients, NN())
optimizers = [torch.optim.SGD(c.parameters(), lr=0.1, momentum=0.9) for c in clients]

api = FedAVGAPI(
    server, clients,
    criterion, optimizers, dataloaders,
    num_communication=5, local_epoch=1,
    validation_dataloader=(X_test, y_test),
)
history = api.run()
for h in history:
    print(f"round {h['round']}: global accuracy {h['global_accuracy']:.3f}")
assert history[-1]["global_accuracy"] >= 0.9

# %% [markdown]
# The panel runs the same protocol; try a Dirichlet non-IID split with a small α.

# %%
from aijack_lab.widgets import FedAVGPanel

fedavg_panel = FedAVGPanel()
fedavg_panel.run()
assert fedavg_panel.result["final_accuracy"] >= 0.9
fedavg_panel

# %% [markdown]
# ## FedProx (Li et al., 2020)
#
# FedProx adds a proximal term μ/2·‖w − w_global‖² to every client's loss, so on non-IID data the
# local models cannot drift far from the global one. `FedProxAPI` is the FedAVG loop plus each
# round's *client drift* ‖w_k − w_global‖ after local training. FedProx with μ = 0 is FedAVG, which
# gives a fair comparison on the same Dirichlet(α = 0.3) split:

# %%
from aijack_lab.collaborative import FedProxAPI, FedProxClient
from aijack_lab.datasets import partition_dirichlet


def noniid_loaders(n=4, alpha=0.3, seed=0):
    parts = partition_dirichlet(y_train, n, alpha=alpha, seed=seed)
    return make_client_dataloaders(X_train, y_train, parts, batch_size=32, seed=seed)


def fedprox_run(mu, rounds=3):
    clients = [FedProxClient(NN(), user_id=i, lr=0.05, mu=mu) for i in range(4)]
    server = FedAVGServer(clients, NN(), lr=0.05)
    optimizers = [torch.optim.SGD(c.parameters(), lr=0.05, momentum=0.9) for c in clients]
    api = FedProxAPI(server, clients, criterion, optimizers, noniid_loaders(),
                     num_communication=rounds, local_epoch=2, validation_dataloader=(X_test, y_test))
    return api.run()


prox, avg = fedprox_run(mu=0.1), fedprox_run(mu=0.0)
for name, h in (("FedProx", prox), ("FedAVG ", avg)):
    print(name, "accuracy", [round(r["global_accuracy"], 3) for r in h],
          "drift", [round(r["mean_client_drift"], 2) for r in h])
drift_prox = sum(r["mean_client_drift"] for r in prox) / len(prox)
drift_avg = sum(r["mean_client_drift"] for r in avg) / len(avg)
assert drift_prox < drift_avg
assert prox[-1]["global_accuracy"] >= 0.8

# %% [markdown]
# ## FedKD (Wu et al., 2022) and MOON (Li, He, Song, 2021)
#
# Both change only the client, so they plug into `FedAVGServer`/`FedAVGAPI` (paper Code S-11).
# A `FedKDClient` keeps a private *mentor* (here a CNN) and shares a small *mentee* (an MLP); they
# teach each other with KL terms scaled by 1/(sum of their task losses). Only the mentee crosses:

# %%
from aijack_lab.collaborative import FedKDClient, MOONClient

mlp = lambda: make_digits_model("mlp", seed=0)
clients = [FedKDClient(mlp(), teacher_model=make_digits_model("cnn", seed=1 + i), user_id=i) for i in range(4)]
server = FedAVGServer(clients, mlp())
optimizers = [torch.optim.SGD(c.parameters(), lr=0.1, momentum=0.9) for c in clients]
parts = partition_iid(len(X_train), 4, seed=0)
api = FedAVGAPI(server, clients, criterion, optimizers, make_client_dataloaders(X_train, y_train, parts, seed=0),
                num_communication=3, validation_dataloader=(X_test, y_test))
history = api.run()
print("mentee accuracy", [round(h["global_accuracy"], 3) for h in history])
print("distillation loss per client", [round(c.last_distillation_loss, 3) for c in clients])
print("bytes uploaded per round", history[-1]["bytes_uploaded"])
assert history[-1]["global_accuracy"] >= 0.8
assert all(c.last_distillation_loss > 0 for c in clients)
assert history[-1]["bytes_uploaded"] == 4 * sum(p.numel() * 4 for p in mlp().parameters())

# %% [markdown]
# A `MOONClient` adds μ·ℓ_con, a contrastive loss that pulls each sample's representation (here the
# CNN's `conv` features) towards the global model's and away from the client's previous model's.
# In round 1 the previous model is the initial global model, so ℓ_con = log 2.

# %%
clients = [MOONClient(NN(), user_id=i, mu=1.0, tau=0.5, rep_layer="conv") for i in range(4)]
server = FedAVGServer(clients, NN())
optimizers = [torch.optim.SGD(c.parameters(), lr=0.1, momentum=0.9) for c in clients]
contrastive = []
api = FedAVGAPI(server, clients, criterion, optimizers, noniid_loaders(alpha=0.5), num_communication=3,
                validation_dataloader=(X_test, y_test),
                on_round=lambda api, info: contrastive.append([round(c.last_contrastive_loss, 3) for c in clients]))
history = api.run()
print("accuracy", [round(h["global_accuracy"], 3) for h in history])
print("contrastive loss per round and client", contrastive)
assert history[-1]["global_accuracy"] >= 0.8
assert all(abs(v - 0.6931) < 1e-3 for v in contrastive[0])

# %% [markdown]
# ## FedEXP (Jhunjhunwala, Wang, Joshi, 2023)
#
# `FedEXPServer` moves the global model η_g times the mean client update, with
# η_g = max(1, Σ‖Δ_i‖² / (2M(‖Δ̄‖² + ε))). When non-IID clients pull in different directions the mean
# update is short and the server extrapolates. Extrapolated steps oscillate around the optimum, so
# (as in the paper) the accuracy reported is that of the mean of the last two global models,
# `server.evaluation_model()`; `FedEXPServer(..., average_last_two=False)` reports the last one.
# Eight clients, plain local SGD:

# %%
from aijack_lab.collaborative import FedEXPServer


def fedexp_run(server_cls, rounds=6):
    loaders = noniid_loaders(n=8, alpha=0.5)
    clients = [FedAVGClient(mlp(), user_id=i, lr=0.05) for i in range(8)]
    server = server_cls(clients, mlp(), lr=0.05)
    optimizers = [torch.optim.SGD(c.parameters(), lr=0.05) for c in clients]
    api = FedAVGAPI(server, clients, criterion, optimizers, loaders, num_communication=rounds,
                    validation_dataloader=(X_test, y_test))
    return [h["global_accuracy"] for h in api.run()], server


exp_acc, exp_server = fedexp_run(FedEXPServer)
avg_acc, _ = fedexp_run(FedAVGServer)
print("FedEXP", [round(a, 3) for a in exp_acc], "η_g", [round(e, 2) for e in exp_server.eta_history])
print("FedAVG", [round(a, 3) for a in avg_acc])
assert min(exp_server.eta_history) >= 1.0
assert next(i for i, a in enumerate(exp_acc) if a >= avg_acc[-1]) <= len(avg_acc) - 1

# %% [markdown]
# ## Server optimizers: `SGDFLOptimizer`, `AdamFLOptimizer`
#
# They apply an aggregated (pseudo-)gradient to the global model, `step(grads)`, or stand in for the
# server's torch optimizer. With Adam on the server, FedAVG becomes FedAdam (Reddi et al., 2021):

# %%
from aijack_lab.collaborative import AdamFLOptimizer

clients = [FedAVGClient(mlp(), user_id=i) for i in range(4)]
server = FedAVGServer(clients, mlp())
server.optimizer = AdamFLOptimizer(server.server_model.parameters(), lr=0.03)
optimizers = [torch.optim.SGD(c.parameters(), lr=0.1) for c in clients]
api = FedAVGAPI(server, clients, criterion, optimizers, make_client_dataloaders(X_train, y_train, parts, seed=0),
                num_communication=4, validation_dataloader=(X_test, y_test))
history = api.run()
print("FedAdam accuracy", [round(h["global_accuracy"], 3) for h in history])
assert history[-1]["global_accuracy"] >= 0.75

# %% [markdown]
# ## The panels
#
# One panel per protocol (each shows the protocol next to what it improves on), and `FLComparePanel`
# to overlay several protocols on the same clients. Press **Run**; the **Code** tab holds the exact
# calls. The distillation protocols (FedMD, FedGEMS, DSFL) have their own notebook, `fl_distillation`.

# %%
from aijack_lab.widgets import FedEXPPanel, FedKDPanel, FedProxPanel, MOONPanel
from aijack_lab.widgets.fl_compare import FLComparePanel

fedprox_panel = FedProxPanel()
assert "run_fedprox" in fedprox_panel.code_text
fedprox_panel

# %%
compare_panel = FLComparePanel(protocols=("FedAVG", "FedProx", "FedEXP", "MOON"))
assert compare_panel.values["protocols"] == ("FedAVG", "FedProx", "FedEXP", "MOON")
compare_panel

# %% [markdown]
# ## Exercises
#
# 1. With α = 0.05 each client sees one or two digits. How many rounds does FedAVG now need to pass 80%?
# 2. Raise the local epochs to 5 with non-IID clients. Does more local work help or hurt? Why?
# 3. In the FedProx panel, sweep μ from 0.001 to 10 at α = 0.1: where does less drift start to cost accuracy?
# 4. FedEXP's η_g grows with the number of clients M when their updates are independent. Check it with 4 and 16 clients.
# 5. In `FLComparePanel`, which protocol gains most over FedAVG as α shrinks?
