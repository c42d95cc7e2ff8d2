"""Rank training records by how much removing each would resolve a complaint (influence functions).

For a model trained to minimise ``R(θ) = mean_i L(z_i, θ) + (λ/2)||θ||²``, removing record ``z`` moves
the optimum by about ``(1/n) H⁻¹ ∇L(z)`` (Koh and Liang, 2017), so the relaxed complaint ``q`` changes
by about ``(1/n) ∇q·H⁻¹∇L(z)``. Rain solves ``(H + δI) s = ∇q`` once by conjugate gradients with
Hessian-vector products, then scores every record with one dot product of its own gradient.
"""
from typing import Callable, Optional, Tuple

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from ....utils.validation import check_positive, check_positive_int


class Rain:
    """Complaint-driven training-data debugging.

    Args:
        model: the trained differentiable classifier (logits out).
        X_train, y_train: its training data (tensors).
        l2_reg: the L2 coefficient λ used in training (makes the Hessian positive definite).
        damping: δ added to the Hessian for a stable solve.
        cg_iterations, cg_tol: conjugate-gradient budget and relative tolerance.
    """

    def __init__(self, model: nn.Module, X_train: torch.Tensor, y_train: torch.Tensor, l2_reg: float = 1e-3,
                 damping: float = 1e-3, cg_iterations: int = 200, cg_tol: float = 1e-8):
        if not isinstance(model, nn.Module):
            raise TypeError(f"Rain needs a differentiable torch model, got {type(model).__name__}")
        self.params = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
        if not self.params:
            raise TypeError("Rain needs a model with trainable parameters to differentiate")
        if len(X_train) != len(y_train) or len(X_train) == 0:
            raise ValueError(f"X_train has {len(X_train)} rows and y_train {len(y_train)}; they must match and be non-empty")
        self.model = model
        self.X_train, self.y_train = X_train, y_train
        self.l2_reg = check_positive("l2_reg", l2_reg, allow_zero=True)
        self.damping = check_positive("damping", damping, allow_zero=True)
        self.cg_iterations = check_positive_int("cg_iterations", cg_iterations)
        self.cg_tol = check_positive("cg_tol", cg_tol)
        self.cg_residual: Optional[float] = None

    # -- pieces -----------------------------------------------------------------------------------
    def _flat(self, tensors) -> torch.Tensor:
        return torch.cat([t.reshape(-1) for t in tensors])

    def _unflat(self, vec: torch.Tensor):
        out, i = {}, 0
        for k, v in self.params.items():
            out[k] = vec[i : i + v.numel()].view_as(v)
            i += v.numel()
        return out

    def _objective(self, params) -> torch.Tensor:
        logits = functional_call(self.model, params, (self.X_train,))
        loss = nn.functional.cross_entropy(logits, self.y_train)
        return loss + 0.5 * self.l2_reg * sum((p ** 2).sum() for p in params.values())

    def _hvp(self, vec: torch.Tensor) -> torch.Tensor:
        params = {k: v.clone().requires_grad_(True) for k, v in self.params.items()}
        g = torch.autograd.grad(self._objective(params), list(params.values()), create_graph=True)
        hv = torch.autograd.grad(self._flat(g), list(params.values()), grad_outputs=vec)
        return self._flat(hv) + self.damping * vec

    def _conjugate_gradient(self, b: torch.Tensor) -> torch.Tensor:
        x = torch.zeros_like(b)
        r = b.clone()
        p = r.clone()
        rs = r @ r
        b_norm = b.norm().clamp_min(1e-30)
        for _ in range(self.cg_iterations):
            hp = self._hvp(p)
            alpha = rs / (p @ hp)
            x = x + alpha * p
            r = r - alpha * hp
            rs_new = r @ r
            if rs_new.sqrt() / b_norm < self.cg_tol:
                break
            p = r + (rs_new / rs) * p
            rs = rs_new
        self.cg_residual = float((r.norm() / b_norm).item())
        return x

    def _per_sample_grads(self) -> torch.Tensor:
        def loss_one(params, x, y):
            logits = functional_call(self.model, params, (x.unsqueeze(0),))
            return nn.functional.cross_entropy(logits, y.unsqueeze(0))

        grads = vmap(grad(loss_one), in_dims=(None, 0, 0))(self.params, self.X_train, self.y_train)
        return torch.cat([g.reshape(len(self.X_train), -1) for g in grads.values()], dim=1)

    def predict_proba(self, X: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.softmax(functional_call(self.model, self.params, (X,)), dim=1)

    # -- the method -------------------------------------------------------------------------------
    def rank(self, complaint, X_query: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Return ``(order, scores)``: training-record indices, most to blame first, and each
        record's score (the predicted decrease of the relaxed complaint if it were removed)."""
        probs = self.predict_proba(X_query)
        complaint.check_rows(len(X_query), probs.shape[1])
        params = {k: v.clone().requires_grad_(True) for k, v in self.params.items()}
        q = complaint.relaxed(torch.softmax(functional_call(self.model, params, (X_query,)), dim=1))
        grad_q = self._flat(torch.autograd.grad(q, list(params.values())))
        s = self._conjugate_gradient(grad_q)
        per_sample = self._per_sample_grads()
        scores = -(per_sample @ s) / len(self.X_train)
        return torch.argsort(scores, descending=True), scores

    def fix(self, complaint, X_query: torch.Tensor, k: int, train_fn: Callable, step: Optional[int] = None) -> dict:
        """Remove up to ``k`` records to resolve the complaint, retraining with ``train_fn(X, y) -> model``.

        Records are removed ``step`` at a time (default: all ``k`` at once); after each step the model
        is retrained and the remaining records ranked again, as Rain does, stopping as soon as the
        complaint holds. Returns the removed indices (into the original training set), the retrained
        model, its query predictions and whether the complaint is still violated.
        """
        check_positive_int("k", k)
        step = k if step is None else check_positive_int("step", step)
        if k >= len(self.X_train):
            raise ValueError(f"cannot remove {k} of {len(self.X_train)} training records")
        kept = torch.arange(len(self.X_train))
        current, removed = self, []
        model = self.model
        while True:
            with torch.no_grad():
                preds = model(X_query).argmax(dim=1)
            if not complaint.violated(preds) or len(removed) >= k:
                break
            order, _ = current.rank(complaint, X_query)
            take = order[: min(step, k - len(removed))]
            removed.extend(kept[take].tolist())
            mask = torch.ones(len(kept), dtype=torch.bool)
            mask[take] = False
            kept = kept[mask]
            model = train_fn(self.X_train[kept], self.y_train[kept])
            current = Rain(model, self.X_train[kept], self.y_train[kept], l2_reg=self.l2_reg, damping=self.damping,
                           cg_iterations=self.cg_iterations, cg_tol=self.cg_tol)
        return {"removed": torch.tensor(removed, dtype=torch.long), "model": model,
                "violated": complaint.violated(preds), "predictions": preds}
