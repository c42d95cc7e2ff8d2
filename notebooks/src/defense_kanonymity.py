# %% [markdown]
# # Anonymization: k-anonymity with Mondrian
#
# **What you will learn:** what k-anonymity promises (and what it does not), how Mondrian
# generalizes a table so that every person hides in a crowd of at least k, how to check that
# independently, and what it costs in information.
#
# ## k-anonymity (Sweeney, 2002) and Mondrian (LeFevre et al., ICDE 2006)
#
# Names are not the only identifiers: age, income and job together often single a person out
# (*quasi-identifiers*). A table is **k-anonymous** when every combination of quasi-identifier
# values is shared by at least k rows. Mondrian gets there by cutting the data space
# recursively: at each step it takes the quasi-identifier with the widest (normalized) range,
# cuts at its median, and stops when a cut would leave fewer than k rows on a side. Every row
# is then shown with its block's range (continuous columns) or set of values (categorical ones).
# aijack_lab runs the partitioning in its C++ core.

# %%
import numpy as np
import pandas as pd

from aijack_lab.datasets.tables import make_census_like
from aijack_lab.defense.kanonymity import Mondrian

df = make_census_like(2000, seed=0)
df.head()

# %% [markdown]
# Without anonymization, how many people are unique on (age, income, job)?

# %%
feature_columns = ["age", "income", "job"]
sensitive_column = "disease"
is_continuous_map = {"age": True, "income": True, "job": False}

unique_share = (df.groupby(feature_columns).size() == 1).mean()
print(f"{unique_share:.1%} of the (age, income, job) combinations belong to a single person")
assert unique_share > 0.9

# %% [markdown]
# The paper's listing (Code S-10), with `aijack` renamed `aijack_lab`:

# %%
mondrian = Mondrian(k=2)
df_ignore_unused_features = mondrian.anonymize(df, feature_columns, sensitive_column, is_continuous_map)
df_ignore_unused_features.head()

# %% [markdown]
# Check k-anonymity independently: group by the generalized columns and count.

# %%
classes = df_ignore_unused_features.groupby(feature_columns, observed=True).size()
print(f"{len(classes)} equivalence classes, the smallest has {classes.min()} rows")
assert classes.min() >= 2
assert list(df_ignore_unused_features.columns) == feature_columns + [sensitive_column]  # unused columns dropped
assert (df_ignore_unused_features[sensitive_column] == df[sensitive_column]).all()  # the sensitive value is kept

# %% [markdown]
# ## The price: information loss
#
# The normalized certainty penalty (NCP) measures how much each value was blurred: a range costs
# its width over the column's range, a set of s > 1 categories costs s over the number of
# categories. 0 is the original table, 1 is "everything is the whole domain".

# %%
losses = {}
for k in (2, 5, 10, 25, 50):
    m = Mondrian(k=k)
    m.anonymize(df, feature_columns, sensitive_column, is_continuous_map)
    losses[k] = m.information_loss_
    print(f"k={k:3d}: {len(m.get_final_partitions()):4d} classes, information loss {m.information_loss_:.3f}")
values = list(losses.values())
assert all(a < b for a, b in zip(values, values[1:]))

# %% [markdown]
# k-anonymity hides *who* a row is, not *what* a class shares: if every row of a class has the same
# disease, the attacker learns it anyway (the homogeneity attack that motivates l-diversity).

# %%
m = Mondrian(k=5)
anon = m.anonymize(df, feature_columns, sensitive_column, is_continuous_map)
homogeneous = anon.groupby(feature_columns, observed=True)[sensitive_column].nunique().eq(1).mean()
print(f"{homogeneous:.1%} of the 5-anonymous classes have a single disease")
assert 0 < homogeneous < 1

# %% [markdown]
# The same in its panel: move k, pick the quasi-identifiers (a synthetic census-like table or the
# bundled diabetes table) and press **Run**. The left plot draws each class's box over the data.

# %%
from aijack_lab.widgets import MondrianPanel

mondrian_panel = MondrianPanel(k=5)
mondrian_panel.run()
assert mondrian_panel.result["min_class_size"] >= 5
mondrian_panel

# %% [markdown]
# ## Exercises
#
# 1. Add `education` as a fourth quasi-identifier. How does the information loss at k=5 change?
# 2. Set `Mondrian(k=5, ignore_unused_features=False)`: which columns come back, and why is it risky?
# 3. Find the smallest k for which no 5-anonymous class is homogeneous in `disease`. What does that
#    cost in information loss?
