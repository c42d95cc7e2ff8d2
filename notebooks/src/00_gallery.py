# %% [markdown]
# # aijack_lab — the gallery
#
# **What you will learn:** where every attack and defense of the AIJack paper's Table 1 lives,
# and how to run each one from its panel. Each panel has its parameters, a **Run** button, the
# figure and numbers of the run, and a **Code** tab with the library calls that reproduce it.
#
# Algorithms without a panel yet are listed as *not available*.

# %%
from aijack_lab.widgets import gallery
from aijack_lab.widgets.registry import entries
from aijack_lab.widgets.catalog import CATALOG

available = entries()
print(f"{len(available)} of {len(CATALOG)} algorithms have a panel")
assert len(available) >= 2

# %%
gallery()

# %% [markdown]
# ## Exercises
#
# 1. Open *Attack → Evasion → FGSM*, set ε to 0.1 and run. How much accuracy is left? Now 0.3?
# 2. Open *FL → Horizontal → FedAVG*, switch the data split to `dirichlet` with α = 0.05. Why does
#    the accuracy per round change shape?
# 3. Copy any panel's **Code** tab into a new cell and run it: do you get the panel's numbers?
