# %% [markdown]
# # Model inversion with MI-FACE
#
# **What you will learn:** how white-box access to a trained classifier lets an attacker
# reconstruct what each class "looks like" — a face in the original paper, a digit here — by
# gradient descent on the input; how to run MI-FACE with aijack_lab, with an optional denoising
# step and auxiliary prior; and how to measure the reconstruction against class means.
#
# ## The attack (Fredrikson, Jha and Ristenpart, 2015)
#
# Starting from a blank image, MI-FACE minimises `c(x) = 1 − f_label(x) + AuxTerm(x)`, where
# `f_label` is the model's softmax confidence in the target label, taking a step
# `x ← Process(x − λ ∇c(x))` each iteration (`Process`: a denoiser or a projection onto the valid
# range). The attacker needs the model, not its training data.

# %%
import torch

from aijack_lab.attack import MI_FACE
from aijack_lab.datasets import load_digits
from aijack_lab.models import train_digits_model

X_train, y_train, X_test, y_test = load_digits()
nn = train_digits_model("mlp", epochs=10, seed=0)
# the class means are used only to judge the reconstructions
means = torch.stack([X_train[y_train == c].mean(0) for c in range(10)])

# %% [markdown]
# The paper's listing (Code S-4), with the input shape of the 8×8 digits (batch axis first):

# %%
input_shape = (1, 1, 8, 8)
mi = MI_FACE(nn, input_shape)
x_result_1, log = mi.attack()
print(f"cost 1 - p(0|x): {log[0]:.3f} -> {min(log):.3f}")
assert x_result_1.shape == input_shape
assert min(log) < log[0] - 0.3

# %% [markdown]
# Every class in turn: is each reconstruction nearer (in mean squared error) to its own class's
# mean image than to any other class's?

# %%
reconstructions, correct = [], 0
for label in range(10):
    x_result, log = MI_FACE(nn, input_shape, target_label=label, lam=0.1, num_itr=150).attack()
    mse = ((means - x_result[0]) ** 2).flatten(1).mean(1)
    print(f"class {label}: nearest mean {mse.argmin().item()}, final cost {log[-1]:.3f}")
    correct += int(mse.argmin().item() == label)
    reconstructions.append(x_result)
assert correct == 10

# %% [markdown]
# ## Denoising and an auxiliary prior
#
# `process_func` runs after each step; `smooth_process(w)` blends every pixel with its 3×3
# neighbourhood (a denoiser) and clips to [0, 1]. `auxterm_func` adds a prior to the cost; here
# `l2_prior` pulls towards the average of *all* digits — auxiliary knowledge of what inputs look
# like in general, with no information about the target class.

# %%
from aijack_lab.attack.inversion.miface import l2_prior, smooth_process

aux = l2_prior(0.1, X_train.mean(0, keepdim=True))
x_prior, log_prior = MI_FACE(nn, input_shape, target_label=3, num_itr=150, auxterm_func=aux,
                             process_func=smooth_process(0.05)).attack()
mse = ((means - x_prior[0]) ** 2).flatten(1).mean(1)
print("nearest class mean with prior and denoising:", mse.argmin().item())
assert mse.argmin().item() == 3

# %% [markdown]
# The panel shows the ten reconstructions beside the class means.

# %%
from aijack_lab.widgets import MIFACEPanel

panel = MIFACEPanel(num_itr=100)
panel.run()
assert panel.result["nearest_mean_correct"] >= 9
panel

# %% [markdown]
# ## Exercises
#
# 1. Switch the panel to the CNN. Do its reconstructions look more or less like digits?
# 2. Raise the denoise weight. When does it start to hurt the nearest-mean score, and why?
# 3. Differential privacy is a defence against model inversion: if `aijack_lab.defense` has
#    `DPSGDManager` in your version, train the target privately and run MI-FACE again.
