# %% [markdown]
# # Federated defenses: Soteria, FoolsGold, MID and sparse gradients
#
# **What you will learn:** how four defenses of federated learning each answer one attack, and
# what each costs:
#
# - **Soteria** prunes the representation layer's gradient so that gradient inversion (DLG) fails;
# - **FoolsGold** gives near-zero weight to sybil clients whose updates look alike;
# - **MID** trains through an information bottleneck so that a representation reveals less of its input;
# - **sparse gradients** send only the top-k entries of each update (fewer bytes, less to invert).
#
# Every section ends with `assert`s on the numbers it shows, and with the defense's panel.

# %%
import numpy as np
import torch
from torch import nn

from aijack_lab.attack import GradientInversion_Attack, MAPFClientWrapper
from aijack_lab.attack.fl_utils import make_fl_clients
from aijack_lab.attack.inversion.metrics import reconstruction_mse
from aijack_lab.collaborative import FedAVGAPI, FedAVGClient, FedAVGServer
from aijack_lab.datasets import load_digits, make_client_dataloaders, partition_iid
from aijack_lab.defense import (
    VIB,
    FoolsGoldServerManager,
    KL_between_normals,
    SoteriaClientManager,
    SparseGradientClientManager,
    SparseGradientServerManager,
    mib_loss,
)
from aijack_lab.models import make_digits_model
from aijack_lab.models.lenet import make_lenet_digits
from aijack_lab.utils import seeded

torch.set_num_threads(1)
X_train, y_train, X_test, y_test = load_digits()
criterion = nn.CrossEntropyLoss()

# %% [markdown]
# ## Soteria (Sun et al., CVPR 2021) against DLG
#
# A linear layer's weight gradient on a representation `r` is `δ rᵀ`: column `f` is `r_f` times
# the error signal, so the server reads the representation off the gradient and inverts it.
# Soteria scores each feature by `|r_f| / ||∂r_f/∂x||` (how far the reconstructable input moves if
# `r_f` is removed) and zeroes the gradient columns of the top fraction `epsilon` before sending.
#
# The paper's listing (Code S-21) attaches it to `FedAVGClient`; the model's parts are named
# `conv` (takes the data) and `lin` (takes the representation).

# %%
manager = SoteriaClientManager("conv", "lin", epsilon=0.3, target_layer_name="lin.0.weight")
SoteriaFedAVGClient = manager.attach(FedAVGClient)

x, y = X_train[:1], y_train[:1]


def upload_after_one_step(client_cls):
    """One SGD step at lr 1 on one digit: the upload is that digit's gradient (pruned by Soteria)."""
    client = client_cls(make_lenet_digits(seed=0), lr=1.0)
    client.local_train(1, criterion, [(x, y)], torch.optim.SGD(client.parameters(), lr=1.0))
    return client, client.upload_gradients()


errors = {}
for name, cls in (("plain", FedAVGClient), ("Soteria", SoteriaFedAVGClient)):
    client, upload = upload_after_one_step(cls)
    attacker = GradientInversion_Attack(make_lenet_digits(seed=0), (1, 8, 8), distancename="l2",
                                        num_iteration=20, seed=0)
    x_rec, _ = attacker.attack(upload)
    errors[name] = reconstruction_mse(x_rec, x)
    print(f"DLG against a {name} client: reconstruction MSE {errors[name]:.2e}")
zero_columns = int((upload[-2].abs().sum(0) == 0).sum())
print(f"Soteria zeroed {zero_columns} of 192 columns ({client.pruned_fractions[-1]:.1%})")
assert errors["plain"] < 1e-3 and errors["Soteria"] > 100 * errors["plain"]
assert zero_columns == int(0.3 * 192)

# %% [markdown]
# The cost: the pruned columns do not learn from that batch. FedAVG with Soteria clients (Code S-21
# with the digits CNN, default `epsilon=0.2`) still converges.

# %%
client_num = 2
parts = partition_iid(600, client_num, seed=0)
dataloaders = make_client_dataloaders(X_train[:600], y_train[:600], parts, batch_size=32, seed=0)
manager = SoteriaClientManager("conv", "lin", target_layer_name="lin.0.weight")
SoteriaFedAVGClient = manager.attach(FedAVGClient)
clients = [SoteriaFedAVGClient(make_digits_model("cnn", seed=0), user_id=i) for i in range(client_num)]
global_model = make_digits_model("cnn", seed=0)  # seeded: the run is reproducible
server = FedAVGServer(clients, global_model)
optimizers = [torch.optim.SGD(c.parameters(), lr=0.1, momentum=0.9) for c in clients]
api = FedAVGAPI(server, clients, criterion, optimizers, dataloaders, num_communication=4,
                validation_dataloader=(X_test, y_test))
soteria_acc = [h["global_accuracy"] for h in api.run()]
print("FedAVG with Soteria clients, accuracy per round:", [round(a, 3) for a in soteria_acc])
assert soteria_acc[-1] >= 0.85

# %% [markdown]
# The panel: pick ε and a digit; DLG's reconstructions from the plain and the Soteria upload side by side.

# %%
from aijack_lab.widgets import SoteriaPanel

soteria_panel = SoteriaPanel(num_iteration=15)
soteria_panel.run()
assert soteria_panel.result["soteria_mse"] > 100 * soteria_panel.result["plain_mse"]
soteria_panel

# %% [markdown]
# ## FoolsGold (Fung et al., RAID 2020) against sybil poisoning
#
# Two of five clients are sybils of one attacker (MPAF: both drag the global model toward the same
# random base model). FoolsGold keeps the sum of each client's updates, compares every pair by
# cosine similarity, and weights client `i` by `1 − max_j cs_ij` (with pardoning and a logit
# squashing): clients that always agree get ≈ 0. Code S-22 attaches it to `FedAVGServer`.

# %%
N, SYBILS = 5, 2
fl_parts = partition_iid(len(X_train), N, seed=0)
SybilClient = MAPFClientWrapper(lam=3.0).attach(FedAVGClient)
manager = FoolsGoldServerManager()
FoolsGoldFedAVGServer = manager.attach(FedAVGServer)


def run(server_cls, num_sybils, rounds=3):
    loaders = make_client_dataloaders(X_train, y_train, fl_parts, batch_size=32, seed=0)
    clients = make_fl_clients(FedAVGClient, SybilClient, lambda: make_digits_model("cnn", seed=0), N, num_sybils)
    server = server_cls(clients, make_digits_model("cnn", seed=0))
    optimizers = [torch.optim.SGD(c.parameters(), lr=0.1, momentum=0.9) for c in clients]
    api = FedAVGAPI(server, clients, criterion, optimizers, loaders, num_communication=rounds,
                    validation_dataloader=(X_test, y_test))
    return [h["global_accuracy"] for h in api.run()], server


clean, _ = run(FedAVGServer, 0)
attacked, _ = run(FedAVGServer, SYBILS)
defended, fg_server = run(FoolsGoldFedAVGServer, SYBILS)
print("clean      ", [round(a, 3) for a in clean])
print("FedAVG     ", [round(a, 3) for a in attacked])
print("FoolsGold  ", [round(a, 3) for a in defended])
print("weights per round (sybils last):")
print(np.round(fg_server.foolsgold_history, 3))
weights = np.array(fg_server.foolsgold_history)
assert (weights[:, N - SYBILS:] <= 0.01).all() and (weights[:, : N - SYBILS] >= 0.9).all()
assert attacked[-1] < clean[-1] - 0.5 and defended[-1] >= clean[-1] - 0.05

# %% [markdown]
# The cost: FoolsGold cannot tell sybils from honest clients whose data are nearly the same; with
# only two clients that share data, both get weight 0 and the model does not move. The panel:

# %%
from aijack_lab.widgets import FoolsGoldPanel

foolsgold_panel = FoolsGoldPanel(num_communication=2)
foolsgold_panel.run()
assert foolsgold_panel.result["final_sybil_weight"] <= 0.01
foolsgold_panel

# %% [markdown]
# ## MID (Wang et al., AAAI 2021): an information bottleneck against inversion
#
# `VIB(encoder, decoder, dim_z)` draws `z ~ N(μ(x), σ(x)²)` and classifies from `z`; its loss
# `mib_loss` is cross-entropy plus `β · KL(p(z|x) ‖ N(0, I))` (`KL_between_normals`), an upper bound
# on `−I(Z;Y) + β·I(Z;X)`. First the KL against torch's own:

# %%
mu, sigma = torch.randn(3, 4), torch.rand(3, 4) + 0.1
ours = KL_between_normals(mu, sigma, torch.zeros_like(mu), torch.ones_like(sigma))
ref = torch.distributions.kl_divergence(torch.distributions.Normal(mu, sigma), torch.distributions.Normal(0.0, 1.0)).sum(1)
print(ours, ref)
assert torch.allclose(ours, ref, atol=1e-5)

# %% [markdown]
# A plain model and a VIB with a representation of the same size (16) learn digits; an attacker who
# can query each model's representation on data of its own trains a decoder `z → x` and applies it
# to the private training digits.

# %%
from aijack_lab.defense.mid import invert_representations, train_inversion_decoder

dim_z = 16
with seeded(0):
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, dim_z))
    plain = nn.Sequential(encoder, nn.Linear(dim_z, 10))
    vib = VIB(nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2 * dim_z)),
              nn.Linear(dim_z, 10), dim_z=dim_z, num_samples=5, beta=1e-2,
              generator=torch.Generator().manual_seed(0))


def train(model, is_vib, epochs=10):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(X_train), generator=g)
        for i in range(0, len(X_train), 64):
            idx = perm[i:i + 64]
            optimizer.zero_grad()
            if is_vib:
                outputs, result = model(X_train[idx])
                loss = model.loss(y_train[idx], result)  # mib_loss with the N(0, I) prior
            else:
                loss = criterion(model(X_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        return float((model(X_test).argmax(1) == y_test).float().mean())


acc_plain, acc_vib = train(plain, False), train(vib, True)
aux, private = X_test[:225], X_train[:300]
_, mse_plain = invert_representations(train_inversion_decoder(encoder, aux, epochs=150), encoder, private)
_, mse_vib = invert_representations(train_inversion_decoder(vib.encode, aux, epochs=150), vib.encode, private)
print(f"accuracy: plain {acc_plain:.3f}, VIB {acc_vib:.3f}")
print(f"inversion MSE from the representation: plain {mse_plain:.4f}, VIB {mse_vib:.4f}")
assert acc_vib >= 0.9 and mse_vib > 2 * mse_plain

# %% [markdown]
# The panel shows the reconstructions; move β to trade accuracy against leakage.

# %%
from aijack_lab.widgets import MIDPanel

mid_panel = MIDPanel(epochs=4)
mid_panel.run()
assert mid_panel.result["vib_inversion_mse"] > mid_panel.result["plain_inversion_mse"]
mid_panel

# %% [markdown]
# ## Sparse gradients (Code S-20)
#
# Each client sends only the top `k` fraction of its update's entries (by magnitude) with their
# indices; the server densifies, aggregates and, with `server_side_update=False` on both sides,
# sends the aggregate back for the clients to apply.

# %%
client_num = 3


def NN():
    return make_digits_model("cnn", seed=0)


client_manager = SparseGradientClientManager(k=0.3)
SparseGradientFedAVGClient = client_manager.attach(FedAVGClient)
server_manager = SparseGradientServerManager()
SparseGradientFedAVGServer = server_manager.attach(FedAVGServer)

clients = [SparseGradientFedAVGClient(NN(), server_side_update=False) for i in range(client_num)]
server = SparseGradientFedAVGServer(clients, NN(), server_side_update=False)
parts = partition_iid(len(X_train), client_num, seed=0)
dataloaders = make_client_dataloaders(X_train, y_train, parts, batch_size=32, seed=0)
optimizers = [torch.optim.SGD(c.parameters(), lr=0.1, momentum=0.9) for c in clients]
api = FedAVGAPI(server, clients, criterion, optimizers, dataloaders, num_communication=4,
                validation_dataloader=(X_test, y_test))
history = api.run()
dense_bytes = client_num * sum(p.numel() * 4 for p in NN().parameters())
for h in history:
    print(f"round {h['round']}: {h['bytes_uploaded']} bytes up ({h['bytes_uploaded'] / dense_bytes:.0%} of dense), "
          f"accuracy {h['global_accuracy']:.3f}")
assert history[-1]["global_accuracy"] >= 0.85
assert abs(history[0]["bytes_uploaded"] / dense_bytes - 0.6) < 0.01  # 30% of entries, value + index each

# %% [markdown]
# The panel: bytes sent against accuracy, dense and sparse.

# %%
from aijack_lab.widgets import SparseGradientPanel

sparse_panel = SparseGradientPanel(num_communication=2, num_clients=2)
sparse_panel.run()
assert sparse_panel.result["bytes_ratio"] < 0.7
sparse_panel

# %% [markdown]
# ## Exercises
#
# 1. Soteria: lower `epsilon` step by step. At which fraction does DLG start to succeed again?
# 2. FoolsGold: give the sybils different MPAF seeds (different base models). Do they still get weight 0?
# 3. MID: sweep β from 1e-4 to 1. Plot accuracy and inversion MSE against β.
# 4. Sparse gradients: run DLG (the gradient-inversion notebook) on a sparsified upload with k = 0.1.
