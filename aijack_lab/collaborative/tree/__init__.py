"""Gradient-boosted trees over vertically split data (paper Code S-7; SecureBoost, Cheng et al. 2021).

``XGBoostClient(x, num_classes, feature_ids, party_id, min_leaf, subsample_cols,
num_percentile_bin, use_missing_value, seed)`` holds one party's columns; ``XGBoostClassifierAPI``
fits histogram-based boosted trees over the parties (``fit(parties, y)``, ``predict_proba(x)``).
``SecureBoostClient``/``SecureBoostClassifierAPI`` build the same trees with the gradients crossing
only Paillier-encrypted. ``XGBoostClient.set_cost_constraint_map`` makes the split search robust to
an attacker who may move each feature within its budget (cost-aware robust trees). The trees are
built in the C++ core (``aijack_lab._core.trees``, multi-threaded split finding).
"""
from .xgboost import XGBoostClassifierAPI, XGBoostClient
from .secureboost import SecureBoostClassifierAPI, SecureBoostClient
from .robust import accuracy_under_attack

__all__ = ["XGBoostClient", "XGBoostClassifierAPI", "SecureBoostClient", "SecureBoostClassifierAPI",
           "accuracy_under_attack"]
