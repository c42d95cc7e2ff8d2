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

# %% [markdown]
# ## Exercises
#
# 1. In the panel, find the smallest ε that halves the accuracy. Is it the same for the `mlp` model?
# 2. Look at the adversarial digits: would you, as a human, label them differently?
# 3. Train the target for fewer epochs (2). Is an under-trained model more or less robust?
