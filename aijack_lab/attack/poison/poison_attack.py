"""Poisoning attack against a support vector machine (Biggio, Nelson and Laskov, ICML 2012).

One attack point ``(xc, yc)`` is added to the training set. The attacker moves ``xc`` by gradient
ascent on the hinge loss the retrained SVM makes on validation data,

    L(xc) = Σ_k max(0, 1 - y_k f_xc(x_k)),

where the gradient of ``f_xc`` with respect to ``xc`` comes from keeping the SVM's KKT conditions
satisfied while ``xc`` moves: the margin support vectors keep ``y_s f(x_s) = 1`` and the dual
variables keep ``Σ α_j y_j = 0``, which gives a linear system for ∂α/∂xc and ∂b/∂xc.
"""
from typing import List, Optional, Tuple

import numpy as np

from ...utils.validation import check_finite, check_positive, check_positive_int
from .._sklearn_utils import as_2d_float, kernel_grad, kernel_matrix, svc_kernel_params
from ..base import BaseAttacker


class Poison_attack_sklearn(BaseAttacker):
    """Gradient-ascent poisoning of a binary ``sklearn.svm.SVC`` (linear, rbf, poly or sigmoid kernel).

    Args:
        clf: an ``SVC`` whose hyper-parameters (kernel, C, gamma, ...) define the victim; it is
            cloned and retrained on the poisoned set at every step (the original is not modified).
        X_train, y_train: the victim's clean training set (two classes).
        t: step length of the normalised gradient-ascent step (a distance in input units).
        bounds: optional ``(low, high)`` box every feature of the attack point stays in.
        tol: stop when the validation loss changes less than this between steps.

    ``attack(xc, yc, X_valid, y_valid, num_iterations=...)`` returns ``(xc, log)``: the optimised
    attack point and the validation accuracy of the poisoned SVM after each step (``log[0]``:
    with the initial point). ``self.loss_log`` has the validation hinge losses, ``self.path`` the
    iterates and ``self.best_xc`` the iterate with the highest validation loss.

    The gradient exists only while the attack point is a support vector (α_c > 0); a flipped-label
    point inside the other class's region is one (α_c = C). If it stops being one, the gradient
    is zero and the attack ends early.
    """

    attack_params = ("t", "bounds", "tol")

    def __init__(self, clf, X_train, y_train, t: float = 0.5, bounds: Optional[Tuple[float, float]] = None, tol: float = 1e-6):
        from sklearn.svm import SVC

        super().__init__(clf)
        if not isinstance(clf, SVC):
            raise TypeError(f"clf must be a sklearn.svm.SVC, got {type(clf).__name__}")
        if callable(clf.kernel) or clf.kernel not in ("linear", "rbf", "poly", "sigmoid"):
            raise ValueError(f"clf.kernel must be 'linear', 'rbf', 'poly' or 'sigmoid', got {clf.kernel!r}")
        self.clf = clf
        self.X_train = as_2d_float("X_train", X_train)
        self.y_train = np.asarray(y_train)
        if self.y_train.ndim != 1 or len(self.y_train) != len(self.X_train):
            raise ValueError(f"y_train must be 1-D with one label per row of X_train ({len(self.X_train)}), got shape {self.y_train.shape}")
        self.classes_ = np.unique(self.y_train)
        if len(self.classes_) != 2:
            raise ValueError(f"y_train must hold exactly two classes, got {len(self.classes_)}")
        self.n_features = self.X_train.shape[1]
        self.t = t
        self.bounds = bounds
        self.tol = tol
        self._check_params()
        self.path: List[np.ndarray] = []
        self.loss_log: List[float] = []
        self.best_xc: Optional[np.ndarray] = None

    def _check_params(self) -> None:
        check_positive("t", self.t)
        check_positive("tol", self.tol, allow_zero=True)
        if self.bounds is not None:
            if not (isinstance(self.bounds, (tuple, list)) and len(self.bounds) == 2):
                raise TypeError("bounds must be a pair (low, high) or None")
            lo, hi = check_finite("bounds[0]", self.bounds[0]), check_finite("bounds[1]", self.bounds[1])
            if lo >= hi:
                raise ValueError(f"bounds: low ({lo}) must be below high ({hi})")

    def _signs(self, name: str, y) -> np.ndarray:
        y = np.asarray(y)
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if unknown.size:
            raise ValueError(f"{name} has labels {unknown.tolist()} outside the training classes {self.classes_.tolist()}")
        return np.where(y == self.classes_[1], 1.0, -1.0)

    def fit_poisoned(self, xc: np.ndarray, yc):
        """The victim SVM retrained on the training set plus ``(xc, yc)``."""
        from sklearn.base import clone

        model = clone(self.clf)
        model.fit(np.vstack([self.X_train, np.atleast_2d(xc)]), np.append(self.y_train, yc))
        return model

    def _gradient(self, model, xc: np.ndarray, yc_sign: float, X_valid: np.ndarray, yv: np.ndarray) -> np.ndarray:
        params = svc_kernel_params(model)
        n = len(self.X_train)
        support = np.asarray(model.support_)
        coef = np.asarray(model.dual_coef_, dtype=np.float64)[0]  # α_j y_j
        alpha = np.abs(coef)
        pos_c = np.nonzero(support == n)[0]
        alpha_c = float(alpha[pos_c[0]]) if pos_c.size else 0.0
        if alpha_c <= 0.0:
            return np.zeros_like(xc)
        C = float(model.C)
        margin = (alpha > 1e-8 * C) & (alpha < C * (1 - 1e-6)) & (support != n)
        X_all = np.vstack([self.X_train, xc[None, :]])
        y_all = np.append(np.where(self.y_train == self.classes_[1], 1.0, -1.0), yc_sign)
        S = support[margin]
        Xs, ys = X_all[S], y_all[S]

        # dα_S/du and db/du from the KKT conditions
        dKc_s = kernel_grad(Xs, xc, **params)  # ∂k(x_s, u)/∂u
        if len(S):
            Q = np.outer(ys, ys) * kernel_matrix(Xs, Xs, **params)
            A = np.zeros((len(S) + 1, len(S) + 1))
            A[:-1, :-1] = Q
            A[:-1, -1] = ys
            A[-1, :-1] = ys
            rhs = np.zeros((len(S) + 1, len(xc)))
            rhs[:-1] = -alpha_c * yc_sign * ys[:, None] * dKc_s
            sol = np.linalg.lstsq(A, rhs, rcond=None)[0]
            d_alpha, d_b = sol[:-1], sol[-1]
        else:
            d_alpha, d_b = np.zeros((0, len(xc))), np.zeros(len(xc))

        # ∂g_k/∂u for the validation points that violate the margin
        g = yv * model.decision_function(X_valid)
        active = g < 1
        if not np.any(active):
            return np.zeros_like(xc)
        Xa, ya = X_valid[active], yv[active]
        K_as = kernel_matrix(Xa, Xs, **params) if len(S) else np.zeros((len(Xa), 0))
        d_f = (K_as * ys[None, :]) @ d_alpha + d_b[None, :] + alpha_c * yc_sign * kernel_grad(Xa, xc, **params)
        d_g = ya[:, None] * d_f
        return -d_g.sum(0)

    @staticmethod
    def _hinge(model, X, yv) -> float:
        return float(np.maximum(0.0, 1.0 - yv * model.decision_function(X)).sum())

    def attack(self, xc, yc, X_valid, y_valid, num_iterations: int = 100, progress=None) -> Tuple[np.ndarray, list]:
        """Optimise the attack point ``xc`` with label ``yc`` against the validation set."""
        xc = as_2d_float("xc", xc, self.n_features)
        if xc.shape[0] != 1:
            raise ValueError(f"xc must be one sample, got {xc.shape[0]}")
        xc = xc[0]
        if np.ndim(yc) != 0:
            raise ValueError("yc must be a single label")
        yc_sign = float(self._signs("yc", [yc])[0])
        X_valid = as_2d_float("X_valid", X_valid, self.n_features)
        yv = self._signs("y_valid", y_valid)
        if len(yv) != len(X_valid):
            raise ValueError(f"y_valid has {len(yv)} labels but X_valid has {len(X_valid)} rows")
        check_positive_int("num_iterations", num_iterations, allow_zero=True)
        if self.bounds is not None:
            xc = np.clip(xc, self.bounds[0], self.bounds[1])
        y_valid = np.asarray(y_valid)

        self.path, self.loss_log = [xc.copy()], []
        log = []
        model = self.fit_poisoned(xc, yc)
        loss = self._hinge(model, X_valid, yv)
        self.loss_log.append(loss)
        log.append(float(model.score(X_valid, y_valid)))
        best_loss, self.best_xc = loss, xc.copy()
        for it in range(num_iterations):
            grad = self._gradient(model, xc, yc_sign, X_valid, yv)
            norm = np.linalg.norm(grad)
            if norm == 0:
                break
            xc = xc + self.t * grad / norm
            if self.bounds is not None:
                xc = np.clip(xc, self.bounds[0], self.bounds[1])
            model = self.fit_poisoned(xc, yc)
            new_loss = self._hinge(model, X_valid, yv)
            self.path.append(xc.copy())
            self.loss_log.append(new_loss)
            log.append(float(model.score(X_valid, y_valid)))
            if new_loss > best_loss:
                best_loss, self.best_xc = new_loss, xc.copy()
            if progress is not None:
                progress(it + 1, num_iterations)
            if abs(new_loss - loss) < self.tol:
                break
            loss = new_loss
        return xc, log
