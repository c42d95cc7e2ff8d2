# %% [markdown]
# # Horizontal federated learning
#
# **What you will learn:** how clients train one shared model without sharing their data,
# what the server does each round, and how non-IID data slows it down.
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
# ## Exercises
#
# 1. With α = 0.05 each client sees one or two digits. How many rounds does FedAVG now need to pass 80%?
# 2. Raise the local epochs to 5 with non-IID clients. Does more local work help or hurt? Why?
