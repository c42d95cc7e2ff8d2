"""Shadow-model membership inference (Shokri, Stronati, Song and Shmatikov, IEEE S&P 2017).

The attacker trains *shadow models* to imitate the target on data it owns, so that it knows which
records were in each shadow model's training set. The shadow models' prediction vectors on their
own training records ("in") and on held-out records ("out") train one *attack model* per class,
which then tells members of the target's training set from non-members by the target's
prediction vector alone.
"""
from typing import Any, Dict, Optional, Sequence

import numpy as np

from ...utils.validation import check_positive_int
from ..base import BaseAttacker


class TorchClassifier:
    """A torch model with the scikit-learn ``fit``/``predict_proba`` interface the attack uses.

    ``fit`` trains the model in place with :func:`aijack_lab.models.train_classifier`
    (``train_kwargs``: ``epochs``, ``lr``, ``batch_size``, ``seed``); ``predict_proba`` returns
    softmax probabilities. ``input_shape`` reshapes flat rows (e.g. ``(1, 8, 8)`` for digits).
    """

    def __init__(self, model, input_shape: Optional[Sequence[int]] = None, **train_kwargs):
        import torch

        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.input_shape = None if input_shape is None else tuple(input_shape)
        self.train_kwargs = train_kwargs
        self.fitted_ = False

    def _tensor(self, X):
        import torch

        x = torch.as_tensor(np.asarray(X, dtype=np.float32))
        if self.input_shape is not None:
            x = x.reshape((len(x),) + self.input_shape)
        return x

    def fit(self, X, y):
        import torch

        from ...models.training import train_classifier

        train_classifier(self.model, self._tensor(X), torch.as_tensor(np.asarray(y, dtype=np.int64)), **self.train_kwargs)
        self.fitted_ = True
        return self

    def predict_proba(self, X):
        import torch

        from ...utils.metrics import predict

        return torch.softmax(predict(self.model, self._tensor(X)), dim=1).numpy().astype(np.float64)


def _as_classifier(model, name: str, train_kwargs: Dict[str, Any], input_shape):
    try:
        import torch

        if isinstance(model, torch.nn.Module):
            return TorchClassifier(model, input_shape=input_shape, **train_kwargs)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    if not (hasattr(model, "predict_proba") and hasattr(model, "fit")):
        raise TypeError(f"{name} must have fit and predict_proba (a scikit-learn classifier) or be a torch.nn.Module, got {type(model).__name__}")
    return model


class ShadowMembershipInferenceAttack(BaseAttacker):
    """Shadow-model membership inference for scikit-learn classifiers and torch models.

    Args:
        target_model: the trained target, a classifier with ``predict_proba`` or a torch model
            (logits; wrapped in :class:`TorchClassifier`).
        shadow_models: untrained models of the target's kind (scikit-learn estimators, torch
            models, or :class:`TorchClassifier`); each is trained on its own share of the shadow data.
        attack_models: one binary classifier with ``fit``/``predict_proba`` per class (in the order
            of the sorted class labels), or a single one shared by all classes.
        shadow_train_kwargs: how torch shadow models are trained (``epochs``, ``lr``, ...).
        input_shape: the shape torch models expect per sample (flat rows are reshaped to it).
        seed: how the shadow data is split among the shadow models.

    ``fit(X_shadow, y_shadow)`` trains shadows and attack models; ``attack(x, y)`` predicts
    membership (1: member) of records ``(x, y)`` in the target's training set from the target's
    outputs; ``predict(pred, label)``/``predict_proba(pred, label)`` do it from outputs you already have.
    """

    attack_params = ("seed",)

    def __init__(
        self,
        target_model,
        shadow_models: Sequence[Any],
        attack_models: Sequence[Any],
        shadow_train_kwargs: Optional[Dict[str, Any]] = None,
        input_shape: Optional[Sequence[int]] = None,
        seed: int = 0,
    ):
        super().__init__(target_model)
        kwargs = dict(shadow_train_kwargs or {})
        self.target = _as_classifier(target_model, "target_model", kwargs, input_shape)
        if not isinstance(self.target, TorchClassifier):
            from .._sklearn_utils import check_fitted

            check_fitted(self.target, "target_model")
        if isinstance(shadow_models, (str, bytes)) or not isinstance(shadow_models, Sequence) or len(shadow_models) == 0:
            raise ValueError("shadow_models must be a non-empty list of models")
        if isinstance(attack_models, (str, bytes)) or not isinstance(attack_models, Sequence) or len(attack_models) == 0:
            raise ValueError("attack_models must be a non-empty list of models")
        self.shadow_models = [_as_classifier(m, f"shadow_models[{i}]", kwargs, input_shape) for i, m in enumerate(shadow_models)]
        for i, m in enumerate(attack_models):
            if not (hasattr(m, "fit") and hasattr(m, "predict_proba")):
                raise TypeError(f"attack_models[{i}] must have fit and predict_proba, got {type(m).__name__}")
        self.attack_models = list(attack_models)
        self.seed = seed
        self._check_params()
        self.classes_ = None
        self.fitted_ = False

    def _check_params(self) -> None:
        check_positive_int("seed", self.seed, allow_zero=True)

    # -- training ------------------------------------------------------------------------------
    def fit(self, X_shadow, y_shadow) -> "ShadowMembershipInferenceAttack":
        """Train every shadow model on half of its share of ``(X_shadow, y_shadow)`` and the attack models
        on the shadows' outputs for their members (label 1) and non-members (label 0)."""
        X = np.asarray(X_shadow)
        y = np.asarray(y_shadow)
        if X.ndim < 2:
            raise ValueError(f"X_shadow must be 2-D (samples, features), got shape {X.shape}")
        X = X.reshape(len(X), -1)
        if y.ndim != 1 or len(y) != len(X):
            raise ValueError(f"y_shadow must be 1-D with one label per row of X_shadow ({len(X)}), got shape {y.shape}")
        self.classes_ = np.unique(y)
        k = len(self.shadow_models)
        if len(self.attack_models) not in (1, len(self.classes_)):
            raise ValueError(
                f"attack_models must hold one model per class ({len(self.classes_)}) or a single shared model, got {len(self.attack_models)}"
            )
        if len(X) < 4 * k:
            raise ValueError(f"X_shadow has {len(X)} rows: too few for {k} shadow models (at least 4 each)")
        rng = np.random.RandomState(self.seed)
        order = rng.permutation(len(X))
        feats, labels, members = [], [], []
        for i, (shadow, part) in enumerate(zip(self.shadow_models, np.array_split(order, k))):
            half = len(part) // 2
            tr, out = part[:half], part[half:]
            shadow.fit(X[tr], y[tr])
            for idx, member in ((tr, 1), (out, 0)):
                proba = self._aligned_proba(shadow, X[idx], f"shadow_models[{i}]")
                feats.append(proba)
                labels.append(y[idx])
                members.append(np.full(len(idx), member))
        feats, labels, members = np.vstack(feats), np.concatenate(labels), np.concatenate(members)
        self.attack_train_ = (feats, labels, members)
        if len(self.attack_models) == 1:
            self.attack_models[0].fit(self._features(feats, labels), members)
        else:
            for c, model in zip(self.classes_, self.attack_models):
                sel = labels == c
                if sel.sum() == 0 or len(np.unique(members[sel])) < 2:
                    raise ValueError(f"class {c!r}: the shadow data gives no members and non-members to train its attack model")
                model.fit(self._features(feats[sel], labels[sel]), members[sel])
        self.fitted_ = True
        return self

    def _aligned_proba(self, model, X, name) -> np.ndarray:
        """``predict_proba`` with one column per class of the shadow data (missing classes get 0)."""
        proba = np.asarray(model.predict_proba(X), dtype=np.float64)
        model_classes = getattr(model, "classes_", None)
        if model_classes is None:  # torch: columns are class indices 0..C-1
            if proba.shape[1] < int(np.max(self.classes_)) + 1:
                raise ValueError(f"{name} returns {proba.shape[1]} columns but the labels go up to {np.max(self.classes_)}")
            return proba[:, self.classes_.astype(int)]
        out = np.zeros((len(X), len(self.classes_)))
        for j, c in enumerate(model_classes):
            pos = np.searchsorted(self.classes_, c)
            if pos < len(self.classes_) and self.classes_[pos] == c:
                out[:, pos] = proba[:, j]
        return out

    def _features(self, proba: np.ndarray, labels: np.ndarray) -> np.ndarray:
        if len(self.attack_models) == 1:  # one shared model also sees the label
            onehot = (labels[:, None] == self.classes_[None, :]).astype(np.float64)
            return np.hstack([proba, onehot])
        return proba

    # -- inference -----------------------------------------------------------------------------
    def _check_pred(self, pred, label):
        if not self.fitted_:
            raise ValueError("the attack is not fitted: call fit(X_shadow, y_shadow) first")
        pred = np.asarray(pred, dtype=np.float64)
        label = np.asarray(label)
        if pred.ndim != 2 or pred.shape[1] != len(self.classes_):
            raise ValueError(f"pred must have shape (n, {len(self.classes_)}) (one probability per class), got {pred.shape}")
        if label.ndim != 1 or len(label) != len(pred):
            raise ValueError(f"label must be 1-D with one entry per row of pred ({len(pred)}), got shape {label.shape}")
        unknown = np.setdiff1d(np.unique(label), self.classes_)
        if unknown.size:
            raise ValueError(f"label has values {unknown.tolist()} outside the classes {self.classes_.tolist()}")
        return pred, label

    def predict_proba(self, pred, label) -> np.ndarray:
        """Membership probability of each record from the model's prediction vector ``pred`` and its label."""
        pred, label = self._check_pred(pred, label)
        out = np.zeros(len(pred))
        if len(self.attack_models) == 1:
            p = self.attack_models[0].predict_proba(self._features(pred, label))
            return p[:, list(self.attack_models[0].classes_).index(1)] if hasattr(self.attack_models[0], "classes_") else p[:, 1]
        for c, model in zip(self.classes_, self.attack_models):
            sel = label == c
            if sel.any():
                p = model.predict_proba(pred[sel])
                col = list(model.classes_).index(1) if hasattr(model, "classes_") else 1
                out[sel] = p[:, col]
        return out

    def predict(self, pred, label) -> np.ndarray:
        """Membership (1: member, 0: non-member) of each record."""
        return (self.predict_proba(pred, label) >= 0.5).astype(np.int64)

    def attack(self, x, y, proba: bool = False) -> np.ndarray:
        """Query the target on ``x`` and infer whether each ``(x, y)`` was in its training set."""
        if not self.fitted_:
            raise ValueError("the attack is not fitted: call fit(X_shadow, y_shadow) first")
        X = np.asarray(x)
        if X.ndim < 2:
            raise ValueError(f"x must be 2-D (samples, features), got shape {X.shape}")
        X = X.reshape(len(X), -1)
        pred = self._aligned_proba(self.target, X, "target_model")
        return self.predict_proba(pred, y) if proba else self.predict(pred, y)
