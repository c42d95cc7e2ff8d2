"""Mondrian multidimensional k-anonymity (LeFevre, DeWitt and Ramakrishnan, ICDE 2006).

The partitioning runs in the C++ core (``aijack_lab._core.mondrian``) on the quasi-identifier
columns passed as one array; Python only validates the frame, encodes categorical columns as
codes and writes the generalized labels (one per equivalence class, not per row).
"""
from typing import Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

from ...utils.validation import check_positive_int


def _format_numbers(values: np.ndarray, integer: bool) -> np.ndarray:
    """Shortest round-trip text of each value; integers (or an all-integral column) without ".0"."""
    if integer or (np.all(np.mod(values, 1) == 0) and np.all(np.abs(values) < 2.0**53)):
        return values.astype(np.int64).astype(str)
    return values.astype(str)


def _unique_labels(keys_inverse: np.ndarray, labels) -> tuple:
    """Categories for ``pd.Categorical.from_codes``: merge labels that print alike (e.g. 1 and "1")."""
    lab_codes, lab_uniques = pd.factorize(np.asarray(labels, dtype=object))
    return lab_codes[keys_inverse], pd.Index(lab_uniques, dtype=object)


def _range_labels(lows: np.ndarray, highs: np.ndarray, integer: bool):
    """``"[lo, hi]"`` per partition, formatted once per distinct range."""
    uniq, inverse = np.unique(lows + 1j * highs, return_inverse=True)
    lo_s, hi_s = _format_numbers(uniq.real, integer), _format_numbers(uniq.imag, integer)
    return _unique_labels(inverse, [f"[{a}, {b}]" for a, b in zip(lo_s.tolist(), hi_s.tolist())])


def _set_labels(offsets: np.ndarray, codes: np.ndarray, names: List[str]):
    """The category (one member) or ``"{a, b}"`` (several) per partition, formatted once per distinct set."""
    if len(names) <= 62:  # a set is one bit mask
        keys = np.bitwise_or.reduceat(np.left_shift(np.int64(1), codes), offsets[:-1])
        uniq, inverse = np.unique(keys, return_inverse=True)
        members = [[i for i in range(len(names)) if (int(key) >> i) & 1] for key in uniq.tolist()]
    else:
        index, inverse, members = {}, np.empty(len(offsets) - 1, dtype=np.int64), []
        codes_l, off_l = codes.tolist(), offsets.tolist()
        for p in range(len(off_l) - 1):
            key = tuple(codes_l[off_l[p]:off_l[p + 1]])
            if key not in index:
                index[key] = len(members)
                members.append(key)
            inverse[p] = index[key]
    labels = [names[m[0]] if len(m) == 1 else "{" + ", ".join(names[i] for i in m) + "}" for m in members]
    return _unique_labels(inverse, labels)


def normalized_certainty_penalty(
    sizes: np.ndarray,
    lows: np.ndarray,
    highs: np.ndarray,
    set_sizes: np.ndarray,
    is_continuous: Sequence[bool],
    global_low: np.ndarray,
    global_high: np.ndarray,
    domain_sizes: np.ndarray,
) -> float:
    """Normalized certainty penalty (Xu et al., KDD 2006), averaged over rows and quasi-identifiers.

    A continuous value generalized to ``[lo, hi]`` costs ``(hi - lo) / (max - min)`` of its column; a
    categorical value generalized to a set of ``s > 1`` categories out of ``m`` costs ``s / m`` (0 when
    ``s == 1``). 0 means nothing was generalized, 1 means every value became its whole domain.
    """
    sizes = np.asarray(sizes, dtype=float)
    total = 0.0
    for j, cont in enumerate(is_continuous):
        if cont:
            # halves: no overflow for values near the float64 limits
            width = global_high[j] / 2 - global_low[j] / 2
            pen = (highs[:, j] / 2 - lows[:, j] / 2) / width if width > 0 else np.zeros(len(sizes))
        else:
            s = set_sizes[:, j]
            pen = np.where(s > 1, s / max(domain_sizes[j], 1), 0.0)
        total += float(np.dot(pen, sizes))
    return total / (sizes.sum() * len(is_continuous))


class Mondrian:
    """Strict multidimensional Mondrian k-anonymity.

    ``Mondrian(k).anonymize(df, feature_columns, sensitive_column, is_continuous_map)`` returns a
    copy of ``df`` in which every quasi-identifier (``feature_columns``) is generalized to the range
    (continuous columns, ``"[lo, hi]"``) or the set (categorical columns, ``"{a, b}"``) of its
    equivalence class; every class has at least ``k`` rows. Rows keep their order and index.

    Args:
        k: minimum equivalence-class size.
        ignore_unused_features: drop the columns that are neither quasi-identifiers nor the
            sensitive column (the paper's ``df_ignore_unused_features``); ``False`` keeps them as they are.

    After ``anonymize``: ``get_final_partitions()`` (row positions per class), ``partition_ids_``
    (class of each row), ``information_loss_`` (normalized certainty penalty in [0, 1]).
    """

    def __init__(self, k: int = 3, ignore_unused_features: bool = True):
        self.k = check_positive_int("k", k)
        if not isinstance(ignore_unused_features, bool):
            raise TypeError(f"ignore_unused_features must be True or False, got {ignore_unused_features!r}")
        self.ignore_unused_features = ignore_unused_features
        self._partitions: Optional[List[np.ndarray]] = None
        self._result: Optional[dict] = None
        self.partition_ids_: Optional[np.ndarray] = None
        self.information_loss_: Optional[float] = None

    # -- validation -------------------------------------------------------------------------
    def _check(self, df, feature_columns, sensitive_column, is_continuous_map):
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"df must be a pandas DataFrame, got {type(df).__name__}")
        if isinstance(feature_columns, str) or not isinstance(feature_columns, Sequence) and not isinstance(
            feature_columns, pd.Index
        ):
            raise TypeError("feature_columns must be a list of column names")
        feature_columns = list(feature_columns)
        if not feature_columns:
            raise ValueError("feature_columns is empty: give at least one quasi-identifier")
        if len(set(feature_columns)) != len(feature_columns):
            raise ValueError(f"feature_columns has duplicates: {feature_columns}")
        missing = [c for c in feature_columns if c not in df.columns]
        if missing:
            raise ValueError(f"feature_columns not in df: {missing}; df has {list(df.columns)}")
        if sensitive_column is not None:
            if sensitive_column not in df.columns:
                raise ValueError(f"sensitive_column {sensitive_column!r} is not a column of df")
            if sensitive_column in feature_columns:
                raise ValueError(f"sensitive_column {sensitive_column!r} is also in feature_columns")
        if not isinstance(is_continuous_map, dict):
            raise TypeError(f"is_continuous_map must be a dict column -> bool, got {type(is_continuous_map).__name__}")
        absent = [c for c in feature_columns if c not in is_continuous_map]
        if absent:
            raise ValueError(f"is_continuous_map has no entry for the feature columns {absent}")
        for c in feature_columns:
            flag = is_continuous_map[c]
            if not isinstance(flag, (bool, np.bool_)):
                raise TypeError(f"is_continuous_map[{c!r}] must be True or False, got {flag!r}")
            if flag and not (pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])):
                raise ValueError(
                    f"is_continuous_map[{c!r}] is True but column {c!r} has dtype {df[c].dtype}, not a number; "
                    "mark it categorical (False) or convert it"
                )
        if len(df) == 0:
            raise ValueError("df is empty: there is nothing to anonymize")
        if self.k > len(df):
            raise ValueError(f"k ({self.k}) is larger than the number of rows of df ({len(df)})")
        nan_cols = [c for c in feature_columns if df[c].isna().any()]
        if nan_cols:
            raise ValueError(f"NaN/missing values in the quasi-identifiers {nan_cols}; fill or drop those rows first")
        for c in feature_columns:
            if is_continuous_map[c] and not np.isfinite(df[c].to_numpy(dtype=float)).all():
                raise ValueError(f"column {c!r} contains infinite values")
        return feature_columns

    # -- the algorithm -----------------------------------------------------------------------
    def anonymize(self, df: pd.DataFrame, feature_columns: Sequence[str], sensitive_column, is_continuous_map: Dict[str, bool]) -> pd.DataFrame:
        """Generalize ``feature_columns`` so that each combination of their values is shared by ≥ k rows."""
        from ..._core import mondrian as core

        feature_columns = self._check(df, feature_columns, sensitive_column, is_continuous_map)
        n, d = len(df), len(feature_columns)
        cont = [bool(is_continuous_map[c]) for c in feature_columns]
        data = np.empty((n, d), dtype=np.float64)
        categories: List[Optional[pd.Index]] = []
        n_categories = []
        for j, c in enumerate(feature_columns):
            if cont[j]:
                data[:, j] = df[c].to_numpy(dtype=np.float64)
                categories.append(None)
                n_categories.append(0)
            else:
                try:
                    codes, uniques = pd.factorize(df[c], sort=True)
                except TypeError:  # mixed types that do not sort: first-appearance order
                    codes, uniques = pd.factorize(df[c])
                data[:, j] = codes
                categories.append(uniques)
                n_categories.append(max(len(uniques), 1))
        res = core.partition(data, cont, n_categories, self.k)
        pid = res["partition_id"]
        sizes, lows, highs = res["sizes"], res["lows"], res["highs"]
        n_parts = len(sizes)

        out = df.copy() if not self.ignore_unused_features else df[
            [c for c in df.columns if c in feature_columns or c == sensitive_column]
        ].copy()
        set_sizes = np.ones((n_parts, d))
        ci = 0
        for j, c in enumerate(feature_columns):
            if cont[j]:
                row_codes, labels = _range_labels(lows[:, j], highs[:, j], pd.api.types.is_integer_dtype(df[c]))
            else:
                offsets, codes = res["category_offsets"][ci], res["category_codes"][ci]
                ci += 1
                set_sizes[:, j] = np.diff(offsets)
                row_codes, labels = _set_labels(offsets, codes, [str(v) for v in categories[j]])
            out[c] = pd.Categorical.from_codes(row_codes[pid], categories=labels)

        glow = np.array([data[:, j].min() for j in range(d)])
        ghigh = np.array([data[:, j].max() for j in range(d)])
        self.information_loss_ = normalized_certainty_penalty(
            sizes, lows, highs, set_sizes, cont, glow, ghigh, np.array(n_categories, dtype=float)
        )
        self.partition_ids_ = pid
        self.partition_sizes_ = sizes
        self.partition_lows_ = lows
        self.partition_highs_ = highs
        self.feature_columns_ = feature_columns
        self._partitions = None
        return out

    def get_final_partitions(self) -> List[np.ndarray]:
        """The equivalence classes of the last ``anonymize`` call, as arrays of row positions."""
        if self.partition_ids_ is None:
            raise RuntimeError("call anonymize(...) before get_final_partitions()")
        if self._partitions is None:
            order = np.argsort(self.partition_ids_, kind="stable")
            bounds = np.cumsum(self.partition_sizes_)[:-1]
            self._partitions = np.split(order, bounds)
        return self._partitions
