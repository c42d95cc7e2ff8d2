# %% [markdown]
# # Vertical federated learning
#
# **What you will learn:** how two parties that hold different parts of the same examples (features
# on one side, labels on the other) train one model by *split learning*, what they exchange, and why
# that exchange still leaks the labels.
#
# ## SplitNN (Vepakomma et al., 2018)
#
# The feature party runs the first layers and sends the cut-layer activations; the label party runs
# the rest and sends back the gradient of those activations. The paper's listing (Code S-13):

# %%
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from aijack_lab.collaborative.splitnn import SplitNNAPI, SplitNNClient
from aijack_lab.datasets import load_digits
from aijack_lab.models import split_digits_mlp
from aijack_lab.utils import make_generator

X_train, y_train, X_test, y_test = load_digits()
NN_1, NN_2 = split_digits_mlp(cut=1, num_classes=10, seed=0)
train_loader = DataLoader(TensorDataset(X_train, y_train), batch_size=32, shuffle=True, generator=make_generator(0))
criterion = nn.CrossEntropyLoss()

client_1 = SplitNNClient(NN_1, user_id=0)
client_2 = SplitNNClient(NN_2, user_id=1)
clients = [client_1, client_2]
optimizers = [torch.optim.Adam(c.model.parameters(), lr=5e-3) for c in clients]

crossed = set()
splitnn = SplitNNAPI(clients, optimizers, train_loader, criterion, 5, validation_dataloader=(X_test, y_test),
                     on_transfer=lambda kind, sender, receiver, t: crossed.add((kind, sender, receiver, tuple(t.shape[1:]))))
history = splitnn.run()
print("accuracy per epoch:", [round(h["accuracy"], 3) for h in history])
print("what crossed:", sorted(crossed))
assert history[-1]["accuracy"] >= 0.9
assert {shape for *_, shape in crossed} == {(32,)}

# %%
from aijack_lab.widgets import SplitNNPanel

splitnn_panel = SplitNNPanel()
splitnn_panel.run()
assert splitnn_panel.result["final_accuracy"] >= 0.9
splitnn_panel

# %% [markdown]
# ## The norm attack (Li et al., ICLR 2022)
#
# On an imbalanced binary task ("is it a 0?", 10% yes) the gradient the label party returns is larger
# for the rare class. The feature party ranks its examples by that norm (Code S-15):

# %%
from aijack_lab.attack.labelleakage import NormAttackSplitNNManager

y_bin_train, y_bin_test = (y_train == 0).long(), (y_test == 0).long()
NN_1, NN_2 = split_digits_mlp(cut=1, num_classes=2, seed=0)
clients = [SplitNNClient(NN_1, user_id=0), SplitNNClient(NN_2, user_id=1)]
optimizers = [torch.optim.Adam(c.model.parameters(), lr=1e-2) for c in clients]
train_loader = DataLoader(TensorDataset(X_train, y_bin_train), batch_size=32, shuffle=True, generator=make_generator(0))

manager = NormAttackSplitNNManager(criterion, device="cpu")
NormAttackSplitNNAPI = manager.attach(SplitNNAPI)
normattacksplitnn = NormAttackSplitNNAPI(clients, optimizers, train_loader, criterion, 3,
                                         validation_dataloader=(X_test, y_bin_test))
normattacksplitnn.run()
print("leak AUC per epoch:", [round(a, 3) for a in normattacksplitnn.leak_auc_history])
assert normattacksplitnn.leak_auc_history[0] >= 0.9

# %%
from aijack_lab.widgets import NormAttackPanel

norm_panel = NormAttackPanel()
norm_panel.run()
assert norm_panel.result["test_leak_auc"] >= 0.9
norm_panel

# %% [markdown]
# ## Exercises
#
# 1. In the SplitNN panel, move the cut after the second hidden layer. Does accuracy change? Does the traffic?
# 2. In the norm attack panel, train for 10 epochs. Why does the leak AUC fall as the model learns — and does it reach 0.5?
# 3. Pick another positive digit. Is any digit safer than the others?
