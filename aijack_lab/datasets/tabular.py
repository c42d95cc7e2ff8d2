"""Bundled tabular sets (numpy arrays; standardised with train statistics when asked)."""
from typing import Tuple

import numpy as np

from ..utils.validation import check_in_range


def _split(x, y, test_size, seed, standardize):
    from sklearn.model_selection import train_test_split

    check_in_range("test_size", test_size, 0.0, 1.0, low_open=True, high_open=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_size, random_state=seed, stratify=y)
    if standardize:
        mean, std = x_tr.mean(axis=0), x_tr.std(axis=0)
        std[std == 0] = 1.0
        x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std
    return (
        x_tr.astype(np.float32),
        y_tr.astype(np.int64),
        x_te.astype(np.float32),
        y_te.astype(np.int64),
    )


def load_breast_cancer(
    test_size: float = 0.25, seed: int = 0, standardize: bool = True
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Wisconsin breast cancer (569 rows, 30 features, binary, 37% malignant): ``X_train, y_train, X_test, y_test``."""
    from sklearn.datasets import load_breast_cancer as _load

    d = _load()
    return _split(d.data, d.target, test_size, seed, standardize)


def load_wine(
    test_size: float = 0.25, seed: int = 0, standardize: bool = True
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """UCI wine (178 rows, 13 features, 3 classes): ``X_train, y_train, X_test, y_test``."""
    from sklearn.datasets import load_wine as _load

    d = _load()
    return _split(d.data, d.target, test_size, seed, standardize)
