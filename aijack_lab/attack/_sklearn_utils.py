"""Helpers shared by the attacks on scikit-learn models (evasion, SVM poisoning, membership).

Kernel values and their gradients follow scikit-learn's definitions of the SVC kernels:
``linear`` x·u, ``rbf`` exp(-γ‖x-u‖²), ``poly`` (γ x·u + r)^d and ``sigmoid`` tanh(γ x·u + r).
"""
from typing import Optional

import numpy as np

SVC_KERNELS = ("linear", "rbf", "poly", "sigmoid")


def check_fitted(model, name: str = "target_model") -> None:
    """ValueError naming ``name`` when a scikit-learn estimator has not been fitted."""
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(model)
    except NotFittedError:
        raise ValueError(f"{name} is not fitted: call {name}.fit(X, y) first") from None
    except TypeError as exc:  # not an estimator at all
        raise TypeError(f"{name} must be a scikit-learn estimator ({exc})") from None


def as_2d_float(name: str, x, n_features: Optional[int] = None) -> np.ndarray:
    """``x`` as a finite float64 matrix (a 1-D vector becomes one row)."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 1-D sample or a 2-D array of samples, got shape {np.shape(x)}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(f"{name} has {arr.shape[1]} features but the model expects {n_features}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def svc_kernel_params(clf) -> dict:
    kernel = clf.kernel
    if callable(kernel) or kernel not in SVC_KERNELS:
        raise ValueError(f"the SVC kernel must be one of {SVC_KERNELS}, got {kernel!r}")
    gamma = getattr(clf, "_gamma", None)
    if gamma is None:
        gamma = clf.gamma if isinstance(clf.gamma, (int, float)) else 1.0
    return {"kernel": kernel, "gamma": float(gamma), "coef0": float(clf.coef0), "degree": float(clf.degree)}


def kernel_matrix(A: np.ndarray, B: np.ndarray, kernel: str, gamma: float, coef0: float = 0.0, degree: float = 3.0) -> np.ndarray:
    """K[i, j] = k(A[i], B[j])."""
    if kernel == "linear":
        return A @ B.T
    if kernel == "rbf":
        sq = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * A @ B.T
        return np.exp(-gamma * np.maximum(sq, 0.0))
    if kernel == "poly":
        return (gamma * A @ B.T + coef0) ** degree
    if kernel == "sigmoid":
        return np.tanh(gamma * A @ B.T + coef0)
    raise ValueError(f"unknown kernel {kernel!r}")


def kernel_grad(X: np.ndarray, u: np.ndarray, kernel: str, gamma: float, coef0: float = 0.0, degree: float = 3.0) -> np.ndarray:
    """∂k(X[i], u)/∂u for each row of ``X``: an array of shape (len(X), len(u))."""
    if kernel == "linear":
        return X.copy()
    if kernel == "rbf":
        diff = X - u[None, :]
        k = np.exp(-gamma * (diff * diff).sum(1))
        return 2.0 * gamma * diff * k[:, None]
    if kernel == "poly":
        base = gamma * X @ u + coef0
        return (degree * base ** (degree - 1.0) * gamma)[:, None] * X
    if kernel == "sigmoid":
        t = np.tanh(gamma * X @ u + coef0)
        return ((1.0 - t * t) * gamma)[:, None] * X
    raise ValueError(f"unknown kernel {kernel!r}")
