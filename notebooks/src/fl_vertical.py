# %% [markdown]
# # Vertical federated learning
#
# **What you will learn:** how two parties that hold different parts of the same examples (features
# on one side, labels on the other) train one model by *split learning*, what they exchange, and why
# that exchange still leaks the labels; then how parties holding different columns grow boosted trees
# together (XGBoost), with the label party's gradients Paillier-encrypted (SecureBoost).
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
# ## Boosted trees over vertically split data: XGBoost and SecureBoost (Cheng et al., 2021)
#
# Now the parties hold different *columns* of the same rows and train a gradient-boosted tree
# ensemble together. Each party bins its columns by quantiles; a tree node only says *which party*
# owns its split and *which record* of that party's lookup table holds the threshold, so thresholds
# never leave their owner. The trees are built in the C++ core (histograms, second-order gain with
# λ and γ, multi-threaded split finding). Here breast cancer's 30 columns are split over 3 parties.

# %%
import numpy as np
from aijack_lab.collaborative.tree import XGBoostClassifierAPI, XGBoostClient
from aijack_lab.datasets import load_breast_cancer

X_train, y_train, X_test, y_test = load_breast_cancer(standardize=False)
cols = [list(range(0, 10)), list(range(10, 20)), list(range(20, 30))]
parties = [XGBoostClient(X_train[:, c], 2, c, i, 1, 1.0, 32, False, 0) for i, c in enumerate(cols)]
clf = XGBoostClassifierAPI(2, boosting_rounds=20, depth=3, learning_rate=0.3, init_value=0.0, min_child_weight=1.0)
clf.fit(parties, y_train)
tree_accuracy = float((clf.predict(X_test) == y_test).mean())
owners = [n["party_id"] for t in clf.trees for n in t if not n["leaf"]]
print(f"accuracy {tree_accuracy:.3f}; splits per party {[owners.count(i) for i in range(3)]}")
print("party 1's lookup table (feature, threshold, missing goes left):", parties[1].lookup_table[:3])
assert tree_accuracy > 0.92 and len(set(owners)) >= 2

# %% [markdown]
# `predict` above joined all columns in one place: convenient in a simulation, not how the parties
# would predict. In `predict_proba_from_parties` each party keeps its test columns and thresholds,
# and answers only left/right bits for its own records that the trees use (`answer_splits`); the
# party holding the trees walks them with those bits. Same probabilities; the bits are all that moved.

# %%
own_columns = [X_test[:, c] for c in cols]
federated = clf.predict_proba_from_parties(own_columns)
print("bits sent per party:", clf.last_prediction_bits)
assert np.abs(federated - clf.predict_proba(X_test)).max() < 1e-12

# %% [markdown]
# The `xgboost` library on the same data, with the same number and depth of trees, for reference
# (when it is installed):

# %%
try:
    import xgboost

    ref = xgboost.XGBClassifier(n_estimators=20, max_depth=3, learning_rate=0.3, tree_method="hist", max_bin=32,
                                n_jobs=1, base_score=0.5).fit(X_train, y_train)
    xgb_accuracy = float((ref.predict(X_test) == y_test).mean())
    print(f"xgboost {xgb_accuracy:.3f} vs ours {tree_accuracy:.3f}")
    assert tree_accuracy >= xgb_accuracy - 0.02
except ImportError:
    print("xgboost is not installed")

# %% [markdown]
# **SecureBoost.** The label party (party 0) must not show its gradients to the others, yet they
# need gradient sums per bin of their columns. So party 0 encrypts each row's gradient and hessian
# with Paillier; the others multiply the ciphertexts of each bin's rows (an encrypted *sum*, no key
# needed), pack several bins' sums into one ciphertext, and party 0 decrypts the sums and picks the
# split. The sums are exact, so the trees are *identical* to the plaintext ones.

# %%
from aijack_lab.collaborative.tree import SecureBoostClassifierAPI, SecureBoostClient
from aijack_lab.defense.paillier import PaillierKeyGenerator

pk, sk = PaillierKeyGenerator(1024, seed=0).generate_keypair()   # 1024 bits: teaching only
sparties = [SecureBoostClient(X_train[:, c], 2, c, i, 1, 1.0, 32, False, 0) for i, c in enumerate(cols)]
for p in sparties:
    p.set_publickey(pk)
sparties[0].set_secretkey(sk)
sclf = SecureBoostClassifierAPI(2, boosting_rounds=3, depth=3, learning_rate=0.3, init_value=0.0,
                                min_child_weight=1.0, n_job=2).fit(sparties, y_train)
plain3 = XGBoostClassifierAPI(2, boosting_rounds=3, depth=3, learning_rate=0.3, init_value=0.0,
                              min_child_weight=1.0).fit(
    [XGBoostClient(X_train[:, c], 2, c, i, 1, 1.0, 32, False, 0) for i, c in enumerate(cols)], y_train)
print({k: round(v, 3) if isinstance(v, float) else v for k, v in sclf.timings.items()})
assert sclf.trees == plain3.trees
assert sclf.timings["decryptions"] < sclf.timings["encrypted_sums"] / 5

# %% [markdown]
# In the panel: choose the parties, trees, depth and key size; the left plot shows where the time
# goes (encryption, the passive parties' aggregation, decryption), the right one the first tree
# coloured by the party that owns each split.

# %%
from aijack_lab.widgets import SecureBoostPanel

secureboost_panel = SecureBoostPanel()
secureboost_panel.run()
assert secureboost_panel.result["trees_equal"]
secureboost_panel

# %% [markdown]
# ## Exercises
#
# 1. In the SplitNN panel, move the cut after the second hidden layer. Does accuracy change? Does the traffic?
# 2. In the norm attack panel, train for 10 epochs. Why does the leak AUC fall as the model learns — and does it reach 0.5?
# 3. Pick another positive digit. Is any digit safer than the others?
# 4. In the SecureBoost panel, switch to a 2048-bit key. Which part of the time grows most, and why?
