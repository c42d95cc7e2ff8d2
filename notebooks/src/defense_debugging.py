# %% [markdown]
# # Debugging models
#
# **What you will learn:** three ways to find what is wrong with a trained model without a labelled
# test set: *model assertions* flag suspicious outputs at run time, *Rain* traces a complaint about
# predictions back to the training records that caused it, and *neuron coverage* measures how much of
# a network a test set exercises.
#
# ## Model assertions (Kang et al., MLSys 2020)
#
# A detector watches an object move across 40 frames. Its faults are injected at known frames:
# several boxes for one object (*multibox*) and an object missing for one frame (*flicker*).

# %%
from aijack_lab.defense.debugging.assertions import (
    ModelAssertionMonitor, assert_multibox, except_flicker, simulate_detections)

frames, injected = simulate_detections(40, multibox_rate=0.1, flicker_rate=0.1, seed=0)
monitor = ModelAssertionMonitor(
    lambda i: frames[i],
    assertions={"multibox": lambda out, x, i: assert_multibox(out)},
    sequence_assertions={"flicker": except_flicker},
)
violations = monitor.run(range(len(frames)))
print("injected:", injected)
print("flagged: ", {"multibox": monitor.flagged("multibox"), "flicker": monitor.flagged("flicker")})
assert monitor.flagged("multibox") == injected["multibox"]
assert monitor.flagged("flicker") == injected["flicker"]

# %%
from aijack_lab.widgets import ModelAssertionsPanel

assertions_panel = ModelAssertionsPanel()
assertions_panel.run()
assert assertions_panel.result["recall"] == 1.0
assertions_panel

# %% [markdown]
# ## Rain (Wu et al., SIGMOD 2020)
#
# Forty malignant training records of the breast-cancer set are relabelled benign. The complaint:
# *no more malignant test rows should be predicted benign than with the clean model*. Rain ranks
# training records by the influence of their removal on a relaxed form of the complaint.

# %%
import torch
from aijack_lab.datasets import load_breast_cancer
from aijack_lab.defense.debugging import AggregateComplaint, Rain
from aijack_lab.models import train_logistic_regression

X_train, y_train, X_test, y_test = [torch.as_tensor(a) for a in load_breast_cancer()]
rows = torch.nonzero(y_test == 0).squeeze(1)
allowed = int((train_logistic_regression(X_train, y_train)(X_test[rows]).argmax(1) == 1).sum())

malignant = torch.nonzero(y_train == 0).squeeze(1)
flipped = malignant[torch.randperm(len(malignant), generator=torch.Generator().manual_seed(0))[:40]]
y_bad = y_train.clone(); y_bad[flipped] = 1
model = train_logistic_regression(X_train, y_bad)

complaint = AggregateComplaint(rows.tolist(), label=1, op="<=", value=allowed)
print(complaint, "- now:", complaint.count(model(X_test).argmax(1)))
rain = Rain(model, X_train, y_bad)
order, scores = rain.rank(complaint, X_test)
precision = len(set(order[:40].tolist()) & set(flipped.tolist())) / 40
print(f"{precision:.0%} of the 40 top-ranked records are flipped ones")
assert precision >= 0.8

fixed = rain.fix(complaint, X_test, k=40, train_fn=train_logistic_regression, step=5)
print("complaint resolved:", not fixed["violated"], "after removing", len(fixed["removed"]), "records")
assert not fixed["violated"]

# %%
from aijack_lab.widgets import RainPanel

rain_panel = RainPanel()
rain_panel.run()
assert rain_panel.result["resolved"]
rain_panel

# %% [markdown]
# ## Neuron coverage (Pei et al., SOSP 2017)
#
# The paper's listing (Code S-8): a neuron counts as covered when some input activates it above the
# threshold.

# %%
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from aijack_lab.attack import FGSMAttacker
from aijack_lab.datasets import load_digits
from aijack_lab.defense.debugging.neuroncoverage import *
from aijack_lab.models import train_digits_model

_, _, x_digits, y_digits = load_digits()
cnn = train_digits_model("cnn", epochs=5, seed=0)
threshold, dummy_data = 0.75, x_digits[:2]
debug_data_loader = DataLoader(TensorDataset(x_digits[:100], y_digits[:100]), batch_size=50)

NCT = neuroncoverage.NeuronCoverageTracker(cnn, threshold, dummy_data)
nc = NCT.coverage(debug_data_loader)
x_adv = FGSMAttacker(cnn, nn.CrossEntropyLoss(), eps=0.3).attack((x_digits[:100], y_digits[:100]))
nc_adv = NCT.coverage(x_adv, reset=False)
print(f"coverage: clean {nc['total']:.3f}, clean + FGSM {nc_adv['total']:.3f}")
assert 0 <= nc["total"] < nc_adv["total"] <= 1

# %%
from aijack_lab.widgets import NeuronCoveragePanel

coverage_panel = NeuronCoveragePanel()
coverage_panel.run()
assert coverage_panel.result["newly_covered_by_adversarial"] >= 1
coverage_panel

# %% [markdown]
# ## Exercises
#
# 1. In the assertions panel, raise the multibox IoU threshold to 0.9. Which faults does the assertion miss now, and why?
# 2. In the Rain panel, flip only 5 labels. Does the complaint still fire? Does Rain still find them?
# 3. Rain beats "remove the highest-loss records". What does the complaint tell Rain that the loss does not?
# 4. In the coverage panel, set ε to 0. What is the coverage of "clean + FGSM" now, and why?
