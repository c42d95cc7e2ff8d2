# %% [markdown]
# # Robustness: certified defenses against evasion attacks
#
# **What you will learn:** what a *certified* prediction is, how PixelDP turns differential
# privacy into a robustness certificate for a neural network, how certified accuracy falls with
# the radius, and why an attack inside the radius cannot work.
#
# Sections: PixelDP (this notebook's first section). Further robustness methods are added as
# their own sections before the exercises.
#
# ## PixelDP (Lecuyer et al., IEEE S&P 2019)
#
# A noise layer (Laplace or Gaussian) makes the network's output *differentially private* with
# respect to changes of the input of size `L`. DP bounds how much the *expected* output can move
# when the input moves; if the top class's expected score is far enough above the runner-up's,
# no input change of the certified size can swap them. The expectation is estimated with many
# noise draws, and Clopper-Pearson bounds make the certificate hold with probability `1 - eta`.

# %%
import math

import numpy as np
import torch
from torch import nn

from aijack_lab.attack import FGSMAttacker
from aijack_lab.datasets import load_digits
from aijack_lab.defense import PixelDP
from aijack_lab.defense.pixeldp import certified_accuracy
from aijack_lab.models import make_digits_model
from aijack_lab.models.training import train_classifier

torch.set_num_threads(1)
X_train, y_train, X_test, y_test = load_digits()
num_classes = 10
nn_model = make_digits_model("mlp", seed=0)

# %% [markdown]
# The paper's listing (Code S-6) with Gaussian noise (L2 attacks), trained the normal PyTorch way:
# in `train()` mode PixelDP is one noisy forward pass.

# %%
pdp = PixelDP(
    nn_model,
    num_classes,
    eps=0.3,
    delta=1e-5,
    L=0.03,  # the noise depends on L / eps only
    mode="gaussian",
    n_population_mc=300,
    batch_size_mc=100,
    seed=0,
)

# Normal Training of PyTorch
train_classifier(pdp, X_train, y_train, epochs=12, lr=3e-3, batch_size=128, seed=0)

pdp.eval()
pred_proba, counts = pdp(X_test)
cert = pdp.certify(counts)
accuracy = float((counts.argmax(1) == y_test).float().mean())
print(f"noise σ = {pdp.sigma:.2f}; accuracy of the noisy prediction {accuracy:.3f}; "
      f"{cert.certified.mean():.1%} of the test digits certified, median radius {np.median(cert.radius):.3f} (L2)")
assert accuracy > 0.8 and cert.certified.mean() > 0.5

# %% [markdown]
# **Certified accuracy at radius r**: the share of test digits that are predicted correctly *and*
# certified for every change of L2 size up to r. It can only fall with r.

# %%
radii = [0.0, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1]
curve = certified_accuracy(cert, y_test, radii)
for r, a in zip(radii, curve):
    print(f"r = {r:5.3f}: certified accuracy {a:.3f}")
assert all(a >= b for a, b in zip(curve, curve[1:]))
assert curve[0] > 0.8 and curve[-1] < curve[0]

# %% [markdown]
# ## An attack inside the radius cannot change a certified prediction
#
# FGSM moves every pixel by ±ε: its L2 size is ε·√64 = 8ε. For the digits certified at radius r,
# attack with ε just below r/8 and ask PixelDP again.

# %%
criterion = nn.CrossEntropyLoss()
r = 0.03
sel = torch.from_numpy(cert.radius >= r)
x_adv = FGSMAttacker(pdp.model, criterion, eps=0.99 * r / math.sqrt(64)).attack((X_test[sel], y_test[sel]))
_, counts_adv = pdp(x_adv)
unchanged = (counts_adv.argmax(1).numpy() == cert.prediction[sel.numpy()]).mean()
print(f"{int(sel.sum())} digits certified at r={r}; prediction unchanged under FGSM for {unchanged:.1%}")
assert unchanged >= 0.99

# %% [markdown]
# Outside the certificate nothing is promised: the same attack with ε = 0.3 (L2 size 2.4) flips
# many predictions of both the plain model and PixelDP.

# %%
plain = train_classifier(make_digits_model("mlp", seed=0), X_train, y_train, epochs=12, lr=3e-3, batch_size=128, seed=0)
for eps in (0.05, 0.1, 0.3):
    xa_plain = FGSMAttacker(plain, criterion, eps=eps).attack((X_test, y_test))
    acc_plain = float((plain(xa_plain).argmax(1) == y_test).float().mean())
    xa_pdp = FGSMAttacker(pdp.model, criterion, eps=eps).attack((X_test, y_test))
    acc_pdp = float((pdp(xa_pdp)[1].argmax(1) == y_test).float().mean())
    print(f"FGSM ε={eps}: plain {acc_plain:.3f}, PixelDP {acc_pdp:.3f}")
assert acc_plain < 0.3 and acc_pdp < 0.5

# %% [markdown]
# The same in its panel: choose the noise, `L` and ε, press **Run**. Left: certified accuracy per
# radius; right: the same FGSM attack against the plain and the PixelDP model.

# %%
from aijack_lab.widgets import PixelDPPanel

pixeldp_panel = PixelDPPanel(epochs=8, n_population_mc=200)
pixeldp_panel.run()
assert pixeldp_panel.result["certified_fraction"] > 0.5
pixeldp_panel

# %% [markdown]
# ## Cost-aware robust tree ensembles (Chen et al., USENIX Security 2021)
#
# Tree ensembles are attacked by nudging a feature across a threshold. Some features are cheap for
# an attacker to change, others costly. `set_cost_constraint_map` gives each feature a budget (how
# far the attacker may move it); the split search then scores each split by its *worst case* over
# the rows the attacker could push across the threshold, so it prefers splits that survive the
# attack (paper Code S-7). Here feature 0 predicts the label well but is cheap to change (budget
# 1.0), feature 1 predicts it less well but cannot be changed.

# %%
import numpy as np
from aijack_lab.collaborative.tree import XGBoostClassifierAPI, XGBoostClient, accuracy_under_attack

rng = np.random.default_rng(1)
y = rng.integers(0, 2, 2000)
x = np.c_[y + 0.25 * rng.normal(size=2000), y + 0.7 * rng.normal(size=2000), rng.normal(size=2000)]
X_train, y_train, X_test, y_test = x[:1000], y[:1000], x[1000:], y[1000:]
constraints = {0: 1.0}

plain_trees = XGBoostClassifierAPI(2, boosting_rounds=10, depth=3, learning_rate=0.3, init_value=0.0)
plain_trees.fit([XGBoostClient(X_train)], y_train.tolist())

p0 = XGBoostClient(X_train)
p0.set_cost_constraint_map(constraints)   # Code S-7
clf = XGBoostClassifierAPI(2, boosting_rounds=10, depth=3, learning_rate=0.3, init_value=0.0)
clf.fit([p0], y_train.tolist())
pred_proba = clf.predict_proba(X_test)

plain_attacked = accuracy_under_attack(plain_trees, X_test, y_test, constraints)
robust_attacked = accuracy_under_attack(clf, X_test, y_test, constraints)
print(f"clean: plain {(plain_trees.predict(X_test) == y_test).mean():.3f}, robust {(pred_proba.argmax(1) == y_test).mean():.3f}")
print(f"under attack: plain {plain_attacked:.3f}, robust {robust_attacked:.3f}")
assert robust_attacked > plain_attacked + 0.3

# %% [markdown]
# The panel: change the budget and watch the clean/attacked accuracies and which features the trees use.

# %%
from aijack_lab.widgets import RobustTreePanel

robust_tree_panel = RobustTreePanel()
robust_tree_panel.run()
assert robust_tree_panel.result["robust_attacked_accuracy"] > robust_tree_panel.result["plain_attacked_accuracy"]
robust_tree_panel

# %% [markdown]
# ## Exercises
#
# 1. Double `L` (more noise): how do the accuracy and the certified radii change?
# 2. Switch to `mode="laplace"`: the radius is now an L1 size. Which FGSM ε stays inside it?
# 3. Raise `n_population_mc` to 2000. Why do the radii grow even though the model is the same?
# 4. In the robust-tree panel, lower the budget to 0.5. Does the robust ensemble still win under attack? Why can a worst-case split still be attacked?
