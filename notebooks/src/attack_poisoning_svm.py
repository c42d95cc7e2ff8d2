# %% [markdown]
# # Poisoning a support vector machine
#
# **What you will learn:** how a single, carefully placed training point can lower an SVM's
# accuracy more than a mislabelled point chosen at random; how the attack gets its gradient
# from the SVM's optimality (KKT) conditions; and how to run it with aijack_lab.
#
# ## The attack (Biggio, Nelson and Laskov, 2012)
#
# The attacker adds one point `(x_c, y_c)` to the training set. Moving `x_c` changes the trained
# SVM; as long as the set of margin support vectors stays the same, the KKT conditions
# (`y_s f(x_s) = 1` on the margin, `Σ α_j y_j = 0`) fix how the dual variables and the bias move
# with `x_c`. That gives the gradient of the validation hinge loss
# `L(x_c) = Σ_k max(0, 1 − y_k f(x_k))` with respect to `x_c`, and the attacker climbs it.
#
# The data: digits 3 (label 0) vs 8 (label 1), scaled to [0, 1]; a small training set (50) as in
# the paper's experiments, and 150 validation digits the attacker optimises against.

# %%
import numpy as np
from sklearn.datasets import load_digits
from sklearn.svm import SVC

from aijack_lab.attack import Poison_attack_sklearn

d = load_digits()
m = (d.target == 3) | (d.target == 8)
X, y = d.data[m] / 16.0, (d.target[m] == 8).astype(int)
idx = np.random.RandomState(0).permutation(len(X))
X, y = X[idx], y[idx]
X_train, y_train = X[:50], y[:50]
X_valid, y_valid = X[50:200], y[50:200]

clf = SVC(kernel="linear", C=1.0)
clean_accuracy = SVC(kernel="linear", C=1.0).fit(X_train, y_train).score(X_valid, y_valid)
print(f"clean validation accuracy: {clean_accuracy:.3f}")
assert clean_accuracy > 0.9

# %% [markdown]
# The paper's listing (Code S-3): the attack point starts as an 8 with the flipped label 0.

# %%
initial_data = X_valid[y_valid == 1][0]
attacker = Poison_attack_sklearn(clf, X_train, y_train, t=0.5, bounds=(0.0, 1.0))
malicious_data, log = attacker.attack(initial_data, 0, X_valid, y_valid, num_iterations=40)

poisoned_accuracy = attacker.fit_poisoned(attacker.best_xc, 0).score(X_valid, y_valid)
print(f"validation accuracy with the starting point: {log[0]:.3f}, after optimising it: {poisoned_accuracy:.3f}")
print(f"validation hinge loss: {attacker.loss_log[0]:.1f} -> {max(attacker.loss_log):.1f}")
assert max(attacker.loss_log) > attacker.loss_log[0]
assert poisoned_accuracy < log[0]

# %% [markdown]
# Is the optimisation worth it? Compare with every 8 of the validation set added, label flipped,
# as it is (a random flipped point):

# %%
flipped = X_valid[y_valid == 1]
random_flip_accuracy = np.mean([attacker.fit_poisoned(x, 0).score(X_valid, y_valid) for x in flipped])
print(f"clean {clean_accuracy:.3f} | random flipped point {random_flip_accuracy:.3f} | optimised point {poisoned_accuracy:.3f}")
assert poisoned_accuracy < random_flip_accuracy - 0.02

# %% [markdown]
# The gradient is exact where the support-vector sets do not change: compare it with finite
# differences of the retrained SVM's loss (a tight solver tolerance makes the SVM solution exact).

# %%
exact = Poison_attack_sklearn(SVC(kernel="linear", tol=1e-10), X_train, y_train)
signs = np.where(y_valid == 1, 1.0, -1.0)
model = exact.fit_poisoned(initial_data, 0)
grad = exact._gradient(model, initial_data, -1.0, X_valid, signs)
e = 1e-3
numeric = np.array([(exact._hinge(exact.fit_poisoned(initial_data + e * np.eye(64)[j], 0), X_valid, signs)
                     - exact._hinge(exact.fit_poisoned(initial_data - e * np.eye(64)[j], 0), X_valid, signs)) / (2 * e)
                    for j in range(64)])
cosine = grad @ numeric / (np.linalg.norm(grad) * np.linalg.norm(numeric))
print(f"cosine(KKT gradient, finite differences) = {cosine:.5f}")
assert cosine > 0.999

# %% [markdown]
# The panel: validation accuracy along the attack, the attack point's path (projected to 2-D) and
# the digit before and after.

# %%
from aijack_lab.widgets import SVMPoisoningPanel

panel = SVMPoisoningPanel()
panel.run()
assert panel.result["poisoned_accuracy"] < panel.result["random_flip_accuracy"]
panel

# %% [markdown]
# ## Exercises
#
# 1. Try other starting points (`start` in the panel). Does every start end at a similarly harmful point?
# 2. Switch the kernel to `rbf`. Is the RBF SVM easier or harder to poison with one point?
# 3. Grow the training set (`training points`). How does one point's influence scale with it?
# 4. Look at the optimised digit: does it still look like an 8? Would a human reviewer catch it?
