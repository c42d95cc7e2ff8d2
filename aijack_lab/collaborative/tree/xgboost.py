"""Histogram gradient-boosted trees over parties that each hold some columns (XGBoost, Chen &
Guestrin 2016), with the published AIJack API:

    p0 = XGBoostClient(x0, 2, [0, 1, 2], 0, 1, 1.0, 256, False, 0)   # columns 0-2, party 0
    p1 = XGBoostClient(x1, 2, [3, 4], 1, 1, 1.0, 256, False, 0)      # columns 3-4, party 1
    clf = XGBoostClassifierAPI(2, boosting_rounds=20, depth=3, learning_rate=0.3)
    clf.fit([p0, p1], y)
    proba = clf.predict_proba(x)   # x: all columns, in the global order of feature_ids
    proba = clf.predict_proba_from_parties([x0_test, x1_test])  # each party answers for its columns

Each party bins its columns by quantiles (``num_percentile_bin`` bins) and keeps the thresholds of
its own splits in a lookup table; tree nodes only say which party and which record of its table.
Split gain is XGBoost's second-order gain with ``lam`` and ``gamma``; ``min_leaf`` (rows) and
``min_child_weight`` (hessian sum) bound the children; leaf weights are added times
``learning_rate`` to ``init_value``. Two classes: logistic loss; more: softmax with one weight
vector per leaf. Gradients are rounded to 30 fractional bits so histogram sums are exact.
"""
from numbers import Integral, Real
from typing import Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from ... import core
from ...utils.validation import check_finite, check_in_range, check_positive, check_positive_int

_T = core().trees


def _as_matrix(name, x) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a 2-D array of numbers") from None
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (rows x columns), got {a.ndim}-D")
    return np.ascontiguousarray(a)


class XGBoostClient:
    """One party: its columns ``x`` (rows x its columns) and their global ids ``feature_ids``."""

    def __init__(self, x, num_classes: int = 2, feature_ids: Optional[Sequence[int]] = None, party_id: int = 0,
                 min_leaf: int = 1, subsample_cols: float = 1.0, num_percentile_bin: int = 256,
                 use_missing_value: bool = False, seed: int = 0):
        x = _as_matrix("x", x)
        if x.shape[0] == 0:
            raise ValueError("x must have at least one row")
        if x.shape[1] == 0:
            raise ValueError("x must have at least one column (an empty party holds no features)")
        self.num_classes = check_positive_int("num_classes", num_classes)
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if feature_ids is None:
            feature_ids = list(range(x.shape[1]))
        try:
            feature_ids = [int(check_positive_int("feature_ids", f, allow_zero=True)) for f in feature_ids]
        except TypeError:
            raise TypeError("feature_ids must be a sequence of ints") from None
        if len(feature_ids) != x.shape[1]:
            raise ValueError(f"feature_ids must have one id per column of x ({x.shape[1]}), got {len(feature_ids)}")
        if len(set(feature_ids)) != len(feature_ids):
            raise ValueError("feature_ids must be distinct")
        self.feature_ids = feature_ids
        self.party_id = check_positive_int("party_id", party_id, allow_zero=True)
        self.min_leaf = check_positive_int("min_leaf", min_leaf)
        self.subsample_cols = check_in_range("subsample_cols", subsample_cols, 0.0, 1.0, low_open=True)
        self.num_percentile_bin = check_positive_int("num_percentile_bin", num_percentile_bin)
        if not 2 <= self.num_percentile_bin <= 65000:
            raise ValueError(f"num_percentile_bin must be in [2, 65000], got {num_percentile_bin}")
        if not isinstance(use_missing_value, (bool, np.bool_)):
            raise TypeError("use_missing_value must be a bool")
        self.use_missing_value = bool(use_missing_value)
        if np.isinf(x).any():
            raise ValueError("x contains an infinite value")
        if not self.use_missing_value and np.isnan(x).any():
            raise ValueError("x contains NaN; pass use_missing_value=True to learn a direction for missing values")
        self.seed = check_positive_int("seed", seed, allow_zero=True)
        self.x = x
        self.cost_constraints: Dict[int, float] = {}
        self._party = self._new_party()

    def _new_party(self):
        # a fresh binned copy per fit, so each fitted model keeps its own lookup table
        party = _T.Party(self.x, self.feature_ids, self.party_id, self.min_leaf, self.subsample_cols,
                         self.num_percentile_bin, self.use_missing_value, self.seed)
        if self.cost_constraints:
            party.cost_eps = [self.cost_constraints[f] for f in self.feature_ids]
        return party

    @property
    def num_rows(self) -> int:
        return self.x.shape[0]

    @property
    def lookup_table(self) -> List[tuple]:
        """This party's split records: (global feature id, threshold, missing goes left)."""
        return [(self.feature_ids[f], t, ml) for f, t, ml in self._party.lookup_table]

    def answer_splits(self, x, record_ids: Optional[Sequence[int]] = None) -> np.ndarray:
        """A party's answer in federated prediction: for each row of ``x`` (rows x THIS party's
        columns, in the order of ``feature_ids``) and each asked record of its lookup table, whether
        the row goes left (value <= threshold; a missing value goes the record's learned way).

        Only these bits leave the party: its thresholds and feature values stay with it.
        """
        x = _as_matrix("x", x)
        if x.shape[1] != len(self.feature_ids):
            raise ValueError(f"x must hold this party's {len(self.feature_ids)} columns, got {x.shape[1]}")
        if np.isinf(x).any():
            raise ValueError("x contains an infinite value")
        table = self._party.lookup_table
        if record_ids is None:
            record_ids = range(len(table))
        record_ids = [int(r) for r in record_ids]
        bad = [r for r in record_ids if not 0 <= r < len(table)]
        if bad:
            raise ValueError(f"record_ids {bad} are not in party {self.party_id}'s lookup table ({len(table)} records)")
        out = np.empty((x.shape[0], len(record_ids)), dtype=bool)
        for j, r in enumerate(record_ids):
            f, threshold, missing_left = table[r]
            col = x[:, f]
            out[:, j] = np.where(np.isnan(col), bool(missing_left), col <= threshold)
        return out

    def set_cost_constraint_map(self, constraints: Union[Mapping[int, float], Sequence[float]]) -> "XGBoostClient":
        """Attack budgets: an attacker may move feature j by at most ``constraints[j]`` (absolute, in
        the feature's units). A mapping is keyed by global feature id (missing ids: budget 0); a
        sequence gives one budget per column of this party. Split search then scores each split by
        its worst case over the rows the attacker can move across the threshold (Chen et al. 2021)."""
        if isinstance(constraints, Mapping):
            unknown = set(constraints) - set(self.feature_ids)
            if unknown:
                raise ValueError(f"constraints: feature ids {sorted(unknown)} are not columns of this party")
            eps = [float(constraints.get(f, 0.0)) for f in self.feature_ids]
        else:
            try:
                eps = [float(v) for v in constraints]
            except (TypeError, ValueError):
                raise TypeError("constraints must be a mapping {feature id: budget} or a sequence of budgets") from None
            if len(eps) != len(self.feature_ids):
                raise ValueError(f"constraints: needs one budget per column ({len(self.feature_ids)}), got {len(eps)}")
        for e in eps:
            check_positive("constraints", e, allow_zero=True)
        self.cost_constraints = dict(zip(self.feature_ids, eps))
        return self


class XGBoostClassifierAPI:
    """Boosted trees over ``XGBoostClient`` parties; the party with ``active_party_id`` holds the labels.

    ``completelly_secure_round``: the first that many trees use only the active party's columns.
    ``n_job``: threads for split finding. ``save_loss``: record the training log-loss per round
    in ``logging_loss``.
    """

    _client_type = XGBoostClient

    def __init__(self, num_classes: int = 2, boosting_rounds: int = 5, lam: float = 1.0, gamma: float = 0.0,
                 min_leaf: int = 1, min_child_weight: float = -float("inf"), learning_rate: float = 0.4,
                 depth: int = 5, active_party_id: int = 0, completelly_secure_round: int = 0,
                 init_value: float = 1.0, n_job: int = 1, save_loss: bool = True):
        self.num_classes = check_positive_int("num_classes", num_classes)
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.boosting_rounds = check_positive_int("boosting_rounds", boosting_rounds)
        self.lam = check_positive("lam", lam, allow_zero=True)
        self.gamma = check_finite("gamma", gamma)
        self.min_leaf = check_positive_int("min_leaf", min_leaf)
        if isinstance(min_child_weight, bool) or not isinstance(min_child_weight, Real) or np.isnan(min_child_weight):
            raise TypeError("min_child_weight must be a real number (or -inf)")
        self.min_child_weight = float(min_child_weight)
        self.learning_rate = check_positive("learning_rate", learning_rate)
        self.depth = check_positive_int("depth", depth)
        self.active_party_id = check_positive_int("active_party_id", active_party_id, allow_zero=True)
        self.completelly_secure_round = check_positive_int("completelly_secure_round", completelly_secure_round,
                                                           allow_zero=True)
        self.init_value = check_finite("init_value", init_value)
        self.n_job = check_positive_int("n_job", n_job)
        self.save_loss = bool(save_loss)
        self.parties: List[XGBoostClient] = []
        self.logging_loss: List[float] = []
        self._booster = None

    def _make_booster(self):
        mcw = max(self.min_child_weight, -1e300)
        return _T.Booster(self.num_classes, self.boosting_rounds, self.lam, self.gamma, mcw, self.learning_rate,
                          self.depth, self.active_party_id, self.completelly_secure_round, self.init_value,
                          self.n_job, self.save_loss)

    def _check_fit(self, parties, y):
        if isinstance(parties, XGBoostClient):
            parties = [parties]
        parties = list(parties)
        if not parties:
            raise ValueError("parties must hold at least one party")
        for p in parties:
            if not isinstance(p, self._client_type):
                raise TypeError(f"parties must be {self._client_type.__name__} objects, got {type(p).__name__}")
        rows = {p.num_rows for p in parties}
        if len(rows) != 1:
            raise ValueError(f"parties must all have the same number of rows, got {sorted(rows)}")
        ids = [p.party_id for p in parties]
        if len(set(ids)) != len(ids):
            raise ValueError(f"parties must have distinct party_id values, got {ids}")
        if self.active_party_id not in ids:
            raise ValueError(f"active_party_id={self.active_party_id} is not the party_id of any party")
        cols = [f for p in parties for f in p.feature_ids]
        if len(set(cols)) != len(cols):
            raise ValueError("parties: two parties claim the same feature id")
        ya = np.asarray(y)
        if ya.ndim != 1 or ya.shape[0] != parties[0].num_rows:
            raise ValueError(f"y must hold one label per row ({parties[0].num_rows}), got shape {ya.shape}")
        if ya.size and not np.issubdtype(ya.dtype, np.integer):
            if not (np.issubdtype(ya.dtype, np.floating) and np.all(np.mod(ya, 1) == 0)):
                raise ValueError("y must hold integer class labels in {0..num_classes-1}")
        ya = ya.astype(np.int64)
        if ya.size and (ya.min() < 0 or ya.max() >= self.num_classes):
            raise ValueError(f"y labels must be in {{0..{self.num_classes - 1}}}, got {ya.min()}..{ya.max()}")
        for p in parties:
            if p.num_classes != self.num_classes:
                raise ValueError(f"party {p.party_id} has num_classes={p.num_classes}, the API {self.num_classes}")
        return parties, ya.tolist()

    def fit(self, parties: Sequence[XGBoostClient], y, progress=None) -> "XGBoostClassifierAPI":
        """Fits ``boosting_rounds`` trees; ``progress(round, total)`` is called after each tree."""
        parties, y = self._check_fit(parties, y)
        booster = self._make_booster()
        for p in parties:
            p._party = p._new_party()
        booster.fit([p._party for p in parties], y, progress=progress)
        self.parties, self._booster = parties, booster
        self.logging_loss = list(booster.loss)
        return self

    def _x(self, x):
        if self._booster is None:
            raise RuntimeError("call fit(parties, y) before predicting")
        x = _as_matrix("x", x)
        need = 1 + max(f for p in self.parties for f in p.feature_ids)
        if x.shape[1] < need:
            raise ValueError(f"x must have at least {need} columns (the parties' feature ids), got {x.shape[1]}")
        return x

    def predict_raw(self, x) -> np.ndarray:
        """Margins (rows x 1 for two classes, rows x num_classes otherwise)."""
        x = self._x(x)
        return self._booster.predict_raw(x)

    def predict_proba(self, x) -> np.ndarray:
        """Class probabilities, rows x num_classes; ``x`` holds every party's columns."""
        x = self._x(x)
        return self._booster.predict_proba(x)

    def predict(self, x) -> np.ndarray:
        return self.predict_proba(x).argmax(axis=1)

    def predict_raw_from_parties(self, xs) -> np.ndarray:
        """Margins computed as in a deployment: each party keeps its own columns and thresholds.

        ``xs`` gives each party's columns for the same rows: a mapping ``{party_id: x_party}`` or a
        sequence in the order of the fitted parties. The party holding the trees (which store only
        owner and record ids) asks every party once for the left/right bits of its records used by
        the trees (``XGBoostClient.answer_splits``) and walks the trees with them. Equals
        ``predict_raw`` on the joined columns; ``last_prediction_bits`` counts the bits each party sent.
        """
        if self._booster is None:
            raise RuntimeError("call fit(parties, y) before predicting")
        by_id = {p.party_id: p for p in self.parties}
        if isinstance(xs, Mapping):
            columns = dict(xs)
        else:
            xs = list(xs)
            if len(xs) != len(self.parties):
                raise ValueError(f"xs must give one matrix per party ({len(self.parties)}), got {len(xs)}")
            columns = {p.party_id: x for p, x in zip(self.parties, xs)}
        missing = sorted(set(by_id) - set(columns))
        unknown = sorted(set(columns) - set(by_id))
        if missing or unknown:
            raise ValueError(f"xs: no columns for parties {missing}" if missing else f"xs: unknown party ids {unknown}")
        rows = {pid: _as_matrix(f"xs[{pid}]", x).shape[0] for pid, x in columns.items()}
        if len(set(rows.values())) != 1:
            raise ValueError(f"xs: every party must give the same rows, got row counts {rows}")
        n = next(iter(rows.values()))
        trees = self.trees
        asked = {pid: sorted({nd["record_id"] for t in trees for nd in t if not nd["leaf"] and nd["party_id"] == pid})
                 for pid in by_id}
        answers, self.last_prediction_bits = {}, {}
        for pid, records in asked.items():
            bits = by_id[pid].answer_splits(columns[pid], records)
            answers[pid] = {r: bits[:, j] for j, r in enumerate(records)}
            self.last_prediction_bits[pid] = int(bits.size)
        K = 1 if self.num_classes == 2 else self.num_classes
        margins = np.full((n, K), self.init_value)
        for tree in trees:
            is_leaf = np.array([nd["leaf"] for nd in tree])
            leaf_weight = np.zeros((len(tree), K))
            for v, nd in enumerate(tree):
                if nd["leaf"]:
                    leaf_weight[v] = nd["weight"]
            node = np.zeros(n, dtype=np.int64)
            while True:
                inner = ~is_leaf[node]
                if not inner.any():
                    break
                for v in np.unique(node[inner]):
                    at = node == v
                    nd = tree[v]
                    go_left = answers[nd["party_id"]][nd["record_id"]][at]
                    node[at] = np.where(go_left, nd["left"], nd["right"])
            margins += self.learning_rate * leaf_weight[node]
        return margins

    def predict_proba_from_parties(self, xs) -> np.ndarray:
        """Class probabilities from :meth:`predict_raw_from_parties` (each party answers for its columns)."""
        margins = self.predict_raw_from_parties(xs)
        if margins.shape[1] == 1:
            p = 1.0 / (1.0 + np.exp(-margins[:, 0]))
            return np.stack([1.0 - p, p], axis=1)
        z = np.exp(margins - margins.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    @property
    def trees(self) -> List[List[dict]]:
        """Each tree as a list of nodes (index 0 = root): leaf, party_id (owner of the split), record_id
        (in the owner's lookup table), left, right, depth, n (rows), gain, weight (leaves)."""
        return [] if self._booster is None else self._booster.trees

    def describe_trees(self) -> List[List[dict]]:
        """``trees`` with each split's global feature id and threshold looked up in its owner's table
        (a simulation-side view: in a deployment only the owner knows its thresholds)."""
        tables = {p.party_id: [(p.feature_ids[f], t, ml) for f, t, ml in party.lookup_table]
                  for p, party in zip(self.parties, self._booster.parties)} if self._booster else {}
        out = []
        for tree in self.trees:
            nodes = []
            for nd in tree:
                nd = dict(nd)
                if not nd["leaf"]:
                    nd["feature_id"], nd["threshold"], nd["missing_left"] = tables[nd["party_id"]][nd["record_id"]]
                nodes.append(nd)
            out.append(nodes)
        return out
