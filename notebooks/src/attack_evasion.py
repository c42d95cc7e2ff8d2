# %% [markdown]
# # Evasion attacks
#
# **What you will learn:** how an adversarial example is built from a model's gradient, how
# much accuracy a tiny perturbation removes, and how to measure it with aijack_lab.
#
# ## FGSM (Goodfellow et al., 2015)
#
# The Fast Gradient Sign Method moves every input pixel by ±ε in the direction that increases
# the loss: `x_adv = clip(x + ε · sign(∇ₓ loss(f(x), y)))`. Inputs here are 8×8 digits in [0, 1].

# %%
import torch
from torch import nn

from aijack_lab.attack import FGSMAttacker
from aijack_lab.datasets import load_digits
from aijack_lab.models import train_digits_model
from aijack_lab.utils import evaluate_accuracy

X_train, y_train, X_test, y_test = load_digits()
model = train_digits_model("cnn", epochs=10, seed=0)
criterion = nn.CrossEntropyLoss()
clean_accuracy = evaluate_accuracy(model, (X_test, y_test))
print(f"clean test accuracy: {clean_accuracy:.3f}")
assert clean_accuracy > 0.9

# %% [markdown]
# The paper's listing (Code 1), with `aijack` renamed `aijack_lab`:

# %%
x, y = X_test, y_test
attacker = FGSMAttacker(model, criterion, eps=0.3)
perturbed_x = attacker.attack((x, y))

adversarial_accuracy = evaluate_accuracy(model, (perturbed_x, y))
print(f"accuracy under FGSM (eps=0.3): {adversarial_accuracy:.3f}")
assert (perturbed_x - x).abs().max() <= 0.3 + 1e-6
assert clean_accuracy - adversarial_accuracy >= 0.4

# %% [markdown]
# The same run in its panel. Move ε and press **Run**; the **Code** tab shows the calls above.

# %%
from aijack_lab.widgets import FGSMPanel

fgsm_panel = FGSMPanel(eps=0.3)
fgsm_panel.run()
assert fgsm_panel.result["accuracy_drop"] >= 0.4
fgsm_panel

# ## Gradient-descent evasion of an SVM (Biggio et al., 2013)
#
# Not every model is a neural network. Against a trained scikit-learn SVM, the attacker moves a
# sample the model scores positive down the gradient of its discriminant `g(x)` (the
# `decision_function`), minimising `g(x) − λ·p(x | −1)`: the second term, a kernel density of the
# negative class, keeps the attack point where real negatives live (*mimicry*), and `d_max`
# bounds how far it may move from where it started. Here: digits 3 (negative) vs 7 (positive).

# %%
import numpy as np
from sklearn.datasets import load_digits as sk_load_digits
from sklearn.svm import SVC

from aijack_lab.attack import Evasion_attack_sklearn

d = sk_load_digits()
pair = (d.target == 3) | (d.target == 7)
X, y = d.data[pair] / 16.0, (d.target[pair] == 7).astype(int)
clf = SVC(kernel="rbf").fit(X[:200], y[:200])
print("SVM accuracy on held-out 3s and 7s:", round(clf.score(X[200:], y[200:]), 3))

# %% [markdown]
# The paper's listing (Code S-1): the attacker knows samples of the class to imitate, and attacks
# a 7 that the SVM recognises.

# %%
initial_data_positive = X[:200][y[:200] == 0]             # 3s: the class to mimic
sevens = X[200:][clf.decision_function(X[200:]) > 0]
initial_data_negative = sevens[0]

attacker = Evasion_attack_sklearn(clf, initial_data_positive, bounds=(0.0, 1.0))
malicious_data, log = attacker.attack(initial_data_negative)
print(f"decision value: {log[0]:.2f} -> {log[-1]:.2f} after {len(log) - 1} steps")
assert log[0] > 0 > log[-1]
assert clf.predict(malicious_data[None])[0] == 0

# %% [markdown]
# A batch at once, with an L1 bound on the change, and what mimicry buys: with λ > 0 the attack
# points stay in denser regions of the 3s than the plain gradient attack's.

# %%
batch = sevens[:20]
plain, log_plain = Evasion_attack_sklearn(clf, initial_data_positive, lam=0.0, bounds=(0, 1)).attack(batch)
mimic_attacker = Evasion_attack_sklearn(clf, initial_data_positive, lam=10.0, dmax=12.0, bounds=(0, 1))
mimic, log_mimic = mimic_attacker.attack(batch)
print("evaded (plain, mimicry):", np.mean(log_plain[-1] < 0), np.mean(log_mimic[-1] < 0))
print("density of the 3s at the attack points (plain, mimicry):",
      mimic_attacker.density(plain).mean().round(3), mimic_attacker.density(mimic).mean().round(3))
assert np.all(log_plain[-1] < 0) and np.mean(log_mimic[-1] < 0) >= 0.9
assert np.abs(mimic - batch).sum(1).max() <= 12.0 + 1e-9
assert mimic_attacker.density(mimic).mean() > mimic_attacker.density(plain).mean()

# %% [markdown]
# The panel shows the same attack on a two-feature set, where the decision regions and the attack
# paths can be drawn.

# %%
from aijack_lab.widgets import EvasionSVMPanel

evasion_panel = EvasionSVMPanel()
evasion_panel.run()
assert evasion_panel.result["evaded_fraction"] >= 0.75
evasion_panel

# %% [markdown]
# ## DIVA: attacking an edge model (Hao et al., 2022)
#
# Devices often run a compressed copy of a model: int8-quantized, pruned. DIVA searches, inside an
# L∞ ball of radius ε, for inputs the **edge** model gets wrong while the **original** still gets
# them right — so comparing the two does not reveal the attack. It ascends
# `p_original(y|x) − c · p_edge(y|x)`. `make_edge_model` builds a differentiable simulation of the
# edge copy (int8 weights and activations with straight-through gradients, magnitude pruning).

# %%
from aijack_lab.attack import DIVAWhiteBoxAttacker
from aijack_lab.attack.evasion import evasion_rates, make_edge_model

edge_model = make_edge_model(model, bits=8, prune_ratio=0.5)
x, y = X_test[:200], y_test[:200]
print("before the attack:", evasion_rates(model, edge_model, x, y))

attacker = DIVAWhiteBoxAttacker(model, edge_model, c=1.0, num_itr=50, eps=0.2, lam=0.01)
x_diva = attacker.attack((x, y))
x_fgsm = FGSMAttacker(model, criterion, eps=0.2).attack((x, y))
diva, fgsm = evasion_rates(model, edge_model, x_diva, y), evasion_rates(model, edge_model, x_fgsm, y)
print(f"edge wrong while the original is right: DIVA {diva['edge_only']:.3f}, FGSM {fgsm['edge_only']:.3f}")
print(f"original model's accuracy: DIVA {diva['original_accuracy']:.3f}, FGSM {fgsm['original_accuracy']:.3f}")
assert diva["edge_only"] >= fgsm["edge_only"] + 0.2
assert diva["original_accuracy"] >= 0.9 > fgsm["original_accuracy"]

# %%
from aijack_lab.widgets import DIVAPanel

diva_panel = DIVAPanel(num_samples=100, num_itr=40)
diva_panel.run()
assert diva_panel.result["diva_edge_only_rate"] > diva_panel.result["fgsm_edge_only_rate"]
diva_panel

# %% [markdown]
# ## Exercises
#
# 1. In the panel, find the smallest ε that halves the accuracy. Is it the same for the `mlp` model?
# 2. Look at the adversarial digits: would you, as a human, label them differently?
# 3. Train the target for fewer epochs (2). Is an under-trained model more or less robust?
# 4. Evasion of the SVM: set λ = 0 and λ = 20 in the panel. Which attack points look more like
#    the negative class? What happens to the number of iterations needed?
# 5. DIVA: set the edge model's pruning to 0 (int8 only). How much of DIVA's advantage is left?
