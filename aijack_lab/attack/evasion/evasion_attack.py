"""Gradient-descent evasion of a trained scikit-learn classifier (Biggio et al., ECML PKDD 2013).

The attacker moves a sample ``x0`` that the classifier scores positive (``decision_function > 0``)
by gradient descent on

    F(x) = g(x) - lam · p(x | y = -1),     p(x | -1) = 1/n Σ_i k((x - x_i) / h)

subject to ``d(x, x0) <= dmax`` (and an optional box), where ``g`` is the classifier's discriminant
and ``p`` a kernel density estimate over samples ``X_minus_1`` of the class to mimic: the
mimicry term pulls the attack point towards dense regions of that class, so that it resembles
real negative samples instead of landing in a low-density region where ``g`` happens to be low.
"""
from typing import List, Optional, Tuple

import numpy as np

from ...utils.validation import check_finite, check_positive, check_positive_int
from .._sklearn_utils import as_2d_float, check_fitted, kernel_grad, svc_kernel_params
from ..base import BaseAttacker

_DISTANCES = ("L1", "L2")


def project_l1_ball(v: np.ndarray, radius: float) -> np.ndarray:
    """Euclidean projection of ``v`` onto {z : ‖z‖₁ <= radius} (Duchi et al., 2008)."""
    if np.abs(v).sum() <= radius:
        return v
    u = np.sort(np.abs(v))[::-1]
    css = np.cumsum(u)
    k = np.arange(1, len(u) + 1)
    rho = np.nonzero(u * k > (css - radius))[0][-1]
    theta = (css[rho] - radius) / (rho + 1.0)
    return np.sign(v) * np.maximum(np.abs(v) - theta, 0.0)


class Evasion_attack_sklearn(BaseAttacker):
    """Evasion attack against a binary scikit-learn classifier with a ``decision_function``.

    Args:
        target_model: a fitted binary classifier exposing ``decision_function`` — ``SVC`` (linear,
            rbf, poly, sigmoid kernels: analytic gradient), linear models with ``coef_``
            (``LogisticRegression``, ``LinearSVC``, ...: analytic gradient), or any other
            (central finite differences).
        X_minus_1: samples of the class to mimic (the class with negative decision values).
        dmax: the largest allowed distance between the attack point and its start (``None``: no bound).
        max_iter: gradient steps.
        gamma: the RBF width used for an SVC's gradient (``None``: the fitted model's own value,
            which is what the attack should use; set it only to model a mismatched surrogate).
        lam: weight of the mimicry (density) term; 0 gives the plain gradient attack.
        t: step length (the gradient is normalised, so ``t`` is a distance in input units).
        h: bandwidth of the density estimate (``None``: the median distance among ``X_minus_1``).
        distance: ``"L1"`` or ``"L2"``, the metric of the ``dmax`` bound.
        kde_type: ``"L1"`` (Laplacian kernel exp(-‖·‖₁/h)) or ``"L2"`` (Gaussian exp(-‖·‖₂²/h)).
        bounds: optional ``(low, high)`` box for every feature (e.g. ``(0, 1)`` for scaled pixels).
        tol: stop when the objective changes less than this between steps.

    ``attack(x0)`` returns ``(malicious_data, log)``: the attack point(s) and the decision value
    after each step; ``self.path`` keeps every iterate.
    """

    attack_params = ("dmax", "max_iter", "gamma", "lam", "t", "h", "distance", "kde_type", "bounds")

    def __init__(
        self,
        target_model,
        X_minus_1,
        dmax: Optional[float] = None,
        max_iter: int = 100,
        gamma: Optional[float] = None,
        lam: float = 1.0,
        t: float = 0.1,
        h: Optional[float] = None,
        distance: str = "L1",
        kde_type: str = "L1",
        bounds: Optional[Tuple[float, float]] = None,
        tol: float = 1e-7,
    ):
        super().__init__(target_model)
        if not hasattr(target_model, "decision_function"):
            raise TypeError(
                f"target_model ({type(target_model).__name__}) has no decision_function; the evasion "
                "attack needs a discriminant such as SVC, LinearSVC or LogisticRegression"
            )
        check_fitted(target_model, "target_model")
        classes = getattr(target_model, "classes_", None)
        if classes is not None and len(classes) != 2:
            raise ValueError(f"target_model must be a binary classifier, it has {len(classes)} classes")
        self.n_features = int(getattr(target_model, "n_features_in_", np.shape(X_minus_1)[-1]))
        self.X_minus_1 = as_2d_float("X_minus_1", X_minus_1, self.n_features)
        self.dmax = dmax
        self.max_iter = max_iter
        self.gamma = gamma
        self.lam = lam
        self.t = t
        self.h = h
        self.distance = distance
        self.kde_type = kde_type
        self.bounds = bounds
        self.tol = tol
        self._check_params()
        if self.h is None:
            self.h = self._median_distance()
        self._grad_g = self._make_discriminant_gradient()
        self.path: List[np.ndarray] = []

    def _check_params(self) -> None:
        if self.dmax is not None:
            check_positive("dmax", self.dmax)
        check_positive_int("max_iter", self.max_iter)
        if self.gamma is not None:
            check_positive("gamma", self.gamma)
        check_positive("lam", self.lam, allow_zero=True)
        check_positive("t", self.t)
        if self.h is not None:
            check_positive("h", self.h)
        check_positive("tol", self.tol, allow_zero=True)
        if self.distance not in _DISTANCES:
            raise ValueError(f"distance must be one of {_DISTANCES}, got {self.distance!r}")
        if self.kde_type not in _DISTANCES:
            raise ValueError(f"kde_type must be one of {_DISTANCES}, got {self.kde_type!r}")
        if self.bounds is not None:
            if not (isinstance(self.bounds, (tuple, list)) and len(self.bounds) == 2):
                raise TypeError("bounds must be a pair (low, high) or None")
            lo, hi = check_finite("bounds[0]", self.bounds[0]), check_finite("bounds[1]", self.bounds[1])
            if lo >= hi:
                raise ValueError(f"bounds: low ({lo}) must be below high ({hi})")

    # -- the discriminant and its gradient --------------------------------------------------------
    def _median_distance(self) -> float:
        X = self.X_minus_1[:200]
        diff = X[:, None, :] - X[None, :, :]
        d = np.abs(diff).sum(-1) if self.kde_type == "L1" else (diff * diff).sum(-1)
        d = d[np.triu_indices(len(X), 1)]
        med = float(np.median(d)) if d.size else 1.0
        return med if med > 0 else 1.0

    def _make_discriminant_gradient(self):
        from sklearn.svm import SVC, NuSVC

        model = self.target_model
        if isinstance(model, (SVC, NuSVC)):
            params = svc_kernel_params(model)
            if self.gamma is not None:
                params["gamma"] = float(self.gamma)
            sv = np.asarray(model.support_vectors_, dtype=np.float64)
            coef = np.asarray(model.dual_coef_, dtype=np.float64)[0]
            if params["kernel"] == "linear":
                w = coef @ sv
                return lambda X: np.broadcast_to(w, X.shape).copy()

            def grad_svc(X):
                return np.stack([coef @ kernel_grad(sv, x, **params) for x in X])

            return grad_svc
        coef = getattr(model, "coef_", None)
        if coef is not None and np.ndim(coef) == 2 and np.shape(coef)[0] == 1 and not hasattr(model, "support_vectors_"):
            w = np.asarray(coef, dtype=np.float64)[0]
            return lambda X: np.broadcast_to(w, X.shape).copy()
        return self._finite_difference_gradient

    def _finite_difference_gradient(self, X: np.ndarray) -> np.ndarray:
        eps = 1e-4 * max(1.0, float(np.abs(self.X_minus_1).max()))
        d = X.shape[1]
        grads = np.empty_like(X)
        for i, x in enumerate(X):
            plus = x[None, :] + eps * np.eye(d)
            minus = x[None, :] - eps * np.eye(d)
            grads[i] = (self.decision(plus) - self.decision(minus)) / (2 * eps)
        return grads

    def decision(self, X: np.ndarray) -> np.ndarray:
        out = np.asarray(self.target_model.decision_function(X), dtype=np.float64)
        if out.ndim != 1:
            raise ValueError("target_model.decision_function must return one value per sample (binary model)")
        return out

    # -- the mimicry term -------------------------------------------------------------------------
    def density(self, X: np.ndarray) -> np.ndarray:
        """The kernel density estimate p(x | y = -1) at each row of ``X``."""
        diff = X[:, None, :] - self.X_minus_1[None, :, :]
        d = np.abs(diff).sum(-1) if self.kde_type == "L1" else (diff * diff).sum(-1)
        return np.exp(-d / self.h).mean(1)

    def _density_grad(self, X: np.ndarray) -> np.ndarray:
        diff = X[:, None, :] - self.X_minus_1[None, :, :]
        if self.kde_type == "L1":
            k = np.exp(-np.abs(diff).sum(-1) / self.h)
            return -(k[:, :, None] * np.sign(diff)).mean(1) / self.h
        k = np.exp(-(diff * diff).sum(-1) / self.h)
        return -2.0 * (k[:, :, None] * diff).mean(1) / self.h

    def objective(self, X: np.ndarray) -> np.ndarray:
        return self.decision(X) - self.lam * self.density(X)

    # -- the attack -------------------------------------------------------------------------------
    def _project(self, X: np.ndarray, X0: np.ndarray) -> np.ndarray:
        if self.dmax is not None:
            delta = X - X0
            if self.distance == "L2":
                norms = np.linalg.norm(delta, axis=1, keepdims=True)
                delta = delta * np.minimum(1.0, self.dmax / np.maximum(norms, 1e-300))
            else:
                delta = np.stack([project_l1_ball(row, self.dmax) for row in delta])
            X = X0 + delta
        if self.bounds is not None:
            X = np.clip(X, self.bounds[0], self.bounds[1])
        return X

    def attack(self, initial_data, progress=None) -> Tuple[np.ndarray, list]:
        """Move ``initial_data`` (one sample or a batch) to lower the decision value.

        Returns ``(malicious_data, log)`` with the same shape as the input and ``log[k]`` the decision
        value(s) after step ``k`` (``log[0]`` is the start).
        """
        single = np.ndim(initial_data) == 1
        X0 = as_2d_float("initial_data", initial_data, self.n_features)
        X = self._project(X0.copy(), X0)
        self.path = [X.copy()]
        log = [self.decision(X)]
        prev = self.objective(X)
        for it in range(self.max_iter):
            grad = self._grad_g(X)
            if self.lam > 0:
                grad = grad - self.lam * self._density_grad(X)
            norm = np.linalg.norm(grad, axis=1, keepdims=True)
            step = np.where(norm > 0, grad / np.maximum(norm, 1e-300), 0.0)
            X = self._project(X - self.t * step, X0)
            self.path.append(X.copy())
            log.append(self.decision(X))
            cur = self.objective(X)
            if progress is not None:
                progress(it + 1, self.max_iter)
            if np.all(np.abs(cur - prev) < self.tol):
                break
            prev = cur
        if single:
            return X[0], [float(v[0]) for v in log]
        return X, [v.copy() for v in log]
