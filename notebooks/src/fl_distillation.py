# %% [markdown]
# # Federated learning by knowledge distillation: FedMD, FedGEMS, DSFL
#
# **What you will learn:** how parties can learn together by exchanging *predictions on a public
# dataset* instead of model parameters, so that each can keep its own architecture; how FedMD
# builds a consensus, how FedGEMS grows a larger server model from small clients, and how DSFL
# learns from an unlabeled public set with entropy-reduced aggregation. All three share
# `BaseFLKnowledgeDistillationAPI` and record the same per-round `history` as `FedAVGAPI`.
#
# The first 300 training digits are the public set; the rest is split among three clients by a
# Dirichlet(α) draw, and the clients have different architectures (two MLP widths and a CNN).

# %%
import torch
from torch.utils.data import DataLoader, TensorDataset

from aijack_lab.collaborative import (
    DSFLAPI, DSFLClient, DSFLServer, FedGEMSAPI, FedGEMSClient, FedGEMSServer, FedMDAPI, FedMDClient, FedMDServer,
)
from aijack_lab.datasets import load_digits, make_client_dataloaders, partition_dirichlet
from aijack_lab.models import make_digits_model

X_train, y_train, X_test, y_test = load_digits()
X_pub, y_pub = X_train[:300], y_train[:300]
X_priv, y_priv = X_train[300:], y_train[300:]


def private_loaders(alpha):
    parts = partition_dirichlet(y_priv, 3, alpha=alpha, seed=0)
    return make_client_dataloaders(X_priv, y_priv, parts, batch_size=32, seed=0)


def client_models():
    return [make_digits_model("mlp", seed=0, hidden=16), make_digits_model("mlp", seed=1, hidden=32),
            make_digits_model("cnn", seed=2, channels=4)]


public_dataloader = DataLoader(TensorDataset(X_pub, y_pub), batch_size=32)

# %% [markdown]
# ## FedMD (Li & Wang, 2019)
#
# Transfer learning (public, then private data); then each round the clients upload their logits on
# the public set, the server averages them into a *consensus*, and each client trains towards it
# (*digest*) and then on its own data (*revisit*). This is the paper's Code S-19 with data added:

# %%
clients = [FedMDClient(m, public_dataloader, output_dim=10, batch_size=32, user_id=i)
           for i, m in enumerate(client_models())]
server = FedMDServer(clients, make_digits_model("cnn", seed=3))
optimizers = [torch.optim.Adam(c.model.parameters(), lr=3e-3) for c in clients]
api = FedMDAPI(server, clients, public_dataloader, private_loaders(alpha=0.1), client_optimizers=optimizers,
               validation_dataloader=(X_test, y_test), num_communication=4,
               transfer_epoch_public=5, transfer_epoch_private=2, consensus_epoch=2, server_training_epoch=3)
history = api.run()
before = api.transfer_scores["clients_score"]
after = history[-1]["client_accuracies"]
print("client accuracy after transfer learning", [round(a, 3) for a in before])
print("client accuracy after FedMD            ", [round(a, 3) for a in after])
print("bytes uploaded per round:", history[-1]["bytes_uploaded"], "= 3 clients x 300 x 10 logits x 4 bytes")
assert sum(after) / 3 > sum(before) / 3 + 0.05
assert history[-1]["bytes_uploaded"] == 3 * 300 * 10 * 4

# %% [markdown]
# ## FedGEMS (Cheng et al., 2021)
#
# The server owns a *larger* model. For each public sample it first evaluates itself: if it is right
# and confident (≥ ε) it keeps its own knowledge; otherwise it distils the entropy-weighted
# predictions of the clients that are right. The clients then distil the server's knowledge.

# %%
clients = [FedGEMSClient(m, public_dataloader, output_dim=10, user_id=i) for i, m in enumerate(client_models())]
server = FedGEMSServer(clients, make_digits_model("cnn", seed=3, channels=32), output_dim=10, epsilon=0.75)
api = FedGEMSAPI(server, clients, public_dataloader, private_loaders(alpha=0.3),
                 client_optimizers=[torch.optim.Adam(c.model.parameters(), lr=3e-3) for c in clients],
                 server_optimizer=torch.optim.Adam(server.server_model.parameters(), lr=3e-3),
                 validation_dataloader=(X_test, y_test), num_communication=3, epoch_server_on_publicdataset=2)
history = api.run()
for h in history:
    print(f"round {h['round']}: server {h['global_accuracy']:.3f}, mean client {h['mean_client_accuracy']:.3f}, "
          f"knowledge used {h['fusion_stats']}")
assert history[-1]["global_accuracy"] > history[-1]["mean_client_accuracy"] + 0.1
assert sum(h["fusion_stats"]["fused"] for h in history) > 0

# %% [markdown]
# ## DSFL (Itahara et al., 2021)
#
# The public set has **no labels** here. Clients upload soft predictions; their plain average is
# flat when the clients are non-IID, so the server sharpens it, softmax(mean / T) (entropy-reduction
# aggregation, ERA), trains the global model on it and sends it back.

# %%
unlabeled = DataLoader(TensorDataset(X_pub), batch_size=32)
clients = [DSFLClient(m, unlabeled, output_dim=10, user_id=i) for i, m in enumerate(client_models())]
server = DSFLServer(clients, make_digits_model("cnn", seed=3), unlabeled, aggregation="ERA", era_temperature=0.1)
api = DSFLAPI(server, clients, unlabeled, private_loaders(alpha=0.3), num_communication=4,
              client_optimizers=[torch.optim.Adam(c.model.parameters(), lr=3e-3) for c in clients],
              server_optimizer=torch.optim.Adam(server.server_model.parameters(), lr=3e-3),
              validation_dataloader=(X_test, y_test), epoch_local_training=2, epoch_global_distillation=3)
history = api.run()
for h in history:
    print(f"round {h['round']}: global {h['global_accuracy']:.3f}, "
          f"soft-label entropy {h['entropy_before']:.2f} -> {h['entropy_after']:.2f} nats")
assert all(h["entropy_after"] < h["entropy_before"] for h in history)
assert history[-1]["global_accuracy"] >= 0.7

# %% [markdown]
# ## The panels
#
# Each panel runs its protocol with the settings above (two rounds here, to keep the notebook
# quick; press Run for more); the **Code** tab holds the exact calls.

# %%
from aijack_lab.widgets import DSFLPanel, FedGEMSPanel, FedMDPanel

fedmd_panel = FedMDPanel().set(num_communication=2)
fedmd_panel.run()
assert fedmd_panel.result["bytes_uploaded_per_round"] == 3 * 300 * 10 * 4  # logits on the public set only
assert fedmd_panel.result["mean_gain"] > 0
fedmd_panel

# %%
fedgems_panel = FedGEMSPanel().set(num_communication=2)
fedgems_panel.run()
assert fedgems_panel.result["server_accuracy"] > fedgems_panel.result["mean_client_accuracy"]
fedgems_panel

# %%
dsfl_panel = DSFLPanel().set(num_communication=2)
dsfl_panel.run()
r = dsfl_panel.result
assert all(a < b for a, b in zip(r["entropy_after_per_round"], r["entropy_before_per_round"]))
dsfl_panel

# %% [markdown]
# ## Exercises
#
# 1. FedMD with α = 10 (nearly IID private data): does the consensus still help? Why less?
# 2. Set DSFL's aggregation to "SA" (plain averaging) in the panel. What happens to the entropy and the accuracy?
# 3. In FedGEMS, set ε = 0 (the server trusts itself whenever it is right) and ε = 1. How do the knowledge counts change?
# 4. Count the bytes: how many rounds of FedMD cost as much as one FedAVG upload of the 16-channel CNN?
