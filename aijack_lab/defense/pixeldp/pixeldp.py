"""PixelDP: certified robustness to adversarial examples with differential privacy.

Lecuyer, Atlas, Geambasu, Hsu, Jana. Certified Robustness to Adversarial Examples with
Differential Privacy. IEEE S&P 2019.

A noise layer calibrated to make the network's output (ε, δ)-DP with respect to changes of the
input of size ``L`` (L1 norm for Laplace noise, L2 norm for Gaussian noise). At prediction time the
expected output is estimated by Monte Carlo; when the lower bound of the top class's probability
exceeds ``e^{2ε'}`` times the upper bound of the runner-up (plus ``(1 + e^{ε'}) δ'``), no input change
of the certified size can change the prediction (the DP "expected output stability" bound).
"""
import math
from typing import NamedTuple, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from ...utils.validation import check_in_range, check_positive, check_positive_int

_LOG_1_25 = math.log(1.25)


def gaussian_delta_term(delta):
    """``sqrt(2 ln(1.25 / δ))``: the Gaussian mechanism's σ is this times sensitivity over ε."""
    return np.sqrt(2.0 * (_LOG_1_25 - np.log(delta)))


def clopper_pearson_bounds(successes: np.ndarray, total: np.ndarray, eta: float):
    """One-sided Clopper-Pearson bounds at level ``eta``: (lower, upper) for a binomial proportion."""
    from scipy.stats import beta

    k = np.asarray(successes, dtype=float)
    n = np.asarray(total, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        lower = np.where(k > 0, beta.ppf(eta, np.maximum(k, 1e-300), n - k + 1), 0.0)
        upper = np.where(k < n, beta.ppf(1 - eta, k + 1, np.maximum(n - k, 1e-300)), 1.0)
    return lower, upper


def laplace_radius(p_lower, p_upper, L, eps):
    """Largest L1 change certified for Laplace noise: ``L ln(p_lower / p_upper) / (2 ε)`` (0 if none)."""
    p_lower, p_upper = np.asarray(p_lower, float), np.asarray(p_upper, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = L * np.log(p_lower / p_upper) / (2.0 * eps)
    return np.where((p_lower > p_upper) & (p_upper > 0), r, np.where(p_lower > p_upper, np.inf, 0.0))


def gaussian_radius(p_lower, p_upper, L, eps, delta, delta_grid: Optional[Sequence[float]] = None, iters: int = 40):
    """Largest L2 change certified for Gaussian noise.

    The noise makes the output (ε', δ')-DP for changes of size ``r = L (ε'/ε) g(δ)/g(δ')`` with
    ``g(δ) = sqrt(2 ln(1.25/δ))`` and ``ε' ≤ 1``; the prediction is stable when
    ``p_lower > e^{2ε'} p_upper + (1 + e^{ε'}) δ'``. Maximised over a grid of δ' and, for each, ε' by bisection.
    """
    p_lower = np.asarray(p_lower, float)[..., None]
    p_upper = np.asarray(p_upper, float)[..., None]
    if delta_grid is None:
        delta_grid = np.geomspace(1e-8, 0.3, 60)
    dg = np.asarray(delta_grid, float)
    lo = np.zeros(np.broadcast_shapes(p_lower.shape, dg.shape))
    hi = np.ones_like(lo)

    def ok(e):
        return p_lower >= np.exp(2 * e) * p_upper + (1 + np.exp(e)) * dg

    feasible0 = ok(lo)
    for _ in range(iters):
        mid = (lo + hi) / 2
        good = ok(mid)
        lo = np.where(good, mid, lo)
        hi = np.where(good, hi, mid)
    lo = np.where(ok(np.ones_like(lo)), 1.0, lo)
    r = L * (lo / eps) * (gaussian_delta_term(delta) / gaussian_delta_term(dg))
    r = np.where(feasible0, r, 0.0)
    return r.max(axis=-1)


class Certificate(NamedTuple):
    """What ``PixelDP.certify`` returns (per input, or scalars for one input's counts)."""

    certified: Union[bool, np.ndarray]  # the prediction is certified robust at some radius > 0
    radius: Union[float, np.ndarray]  # the certified radius (L1 for Laplace, L2 for Gaussian noise)
    prediction: Union[int, np.ndarray]  # arg-max of the counts


def certified_accuracy(certificate: Certificate, labels, radii: Sequence[float]) -> list:
    """Fraction of inputs predicted correctly *and* certified at each radius in ``radii``."""
    y = labels.numpy() if torch.is_tensor(labels) else np.asarray(labels)
    pred = np.atleast_1d(certificate.prediction)
    rad = np.atleast_1d(certificate.radius)
    if len(y) != len(pred):
        raise ValueError(f"labels has {len(y)} entries but the certificate has {len(pred)}")
    correct = pred == y
    # radius 0: plain accuracy of the noisy prediction; r > 0: correct and certified at r
    return [float(np.mean(correct & (rad >= r))) if r > 0 else float(np.mean(correct)) for r in radii]


class PixelDP(nn.Module):
    """Wraps a torch classifier with a PixelDP noise layer.

    Args:
        model: the classifier (returns logits).
        num_classes: number of classes.
        L: the attack size the noise is calibrated for (the "construction bound").
        eps, delta: the DP guarantee for changes of size ``L`` (``delta`` is used by Gaussian noise).
        n_population_mc: Monte Carlo noise draws per input at prediction time.
        batch_size_mc: noise draws per input evaluated in one forward pass.
        eta: the certificate holds with probability ``1 - eta`` (Clopper-Pearson bounds).
        mode: ``"laplace"`` (L1 attacks) or ``"gaussian"`` (L2 attacks, needs ``eps <= 1``).
        sensitivity: sensitivity of the map before the noise; default 1 (noise on the input).
        noise_layer: ``"input"`` (noise added to the input, AIJack's choice) or ``"first_layer"``
            (after the model's first ``nn.Linear``/``nn.Conv2d``, the paper's architecture; its
            sensitivity is computed from the current weights at every forward pass).
        seed: seed of the noise (``None``: torch's global generator).

    ``train()`` mode: one noisy forward (train as usual). ``eval()`` mode: ``pred_proba, counts = pdp(x)``
    with the mean softmax and the arg-max counts over ``n_population_mc`` draws, shape (N, num_classes).
    """

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        L: float = 0.1,
        eps: float = 1.0,
        delta: float = 1e-5,
        n_population_mc: int = 1000,
        batch_size_mc: int = 32,
        eta: float = 0.05,
        mode: str = "laplace",
        sensitivity: Optional[float] = None,
        noise_layer: str = "input",
        seed: Optional[int] = None,
    ):
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.num_classes = check_positive_int("num_classes", num_classes)
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.L = check_positive("L", L)
        self.eps = check_positive("eps", eps)
        self.delta = check_in_range("delta", delta, 0.0, 1.0, low_open=True, high_open=True)
        self.n_population_mc = check_positive_int("n_population_mc", n_population_mc)
        self.batch_size_mc = check_positive_int("batch_size_mc", batch_size_mc)
        self.eta = check_in_range("eta", eta, 0.0, 1.0, low_open=True, high_open=True)
        if mode not in ("laplace", "gaussian"):
            raise ValueError(f"mode must be 'laplace' or 'gaussian', got {mode!r}")
        self.mode = mode
        if mode == "gaussian" and self.eps > 1:
            raise ValueError(f"the Gaussian mechanism needs eps <= 1, got eps={eps}; use mode='laplace' or a smaller eps")
        if noise_layer not in ("input", "first_layer"):
            raise ValueError(f"noise_layer must be 'input' or 'first_layer', got {noise_layer!r}")
        self.noise_layer = noise_layer
        self.model = model
        self._first = None
        if noise_layer == "first_layer":
            if sensitivity is not None:
                raise ValueError("sensitivity is computed from the first layer's weights when noise_layer='first_layer'; leave it None")
            self._first = self._find_first_layer(model)
            self._first.register_forward_hook(self._noise_hook)
            self.sensitivity = None
        else:
            self.sensitivity = 1.0 if sensitivity is None else check_positive("sensitivity", sensitivity)
        self.seed = seed
        self._generator = None
        if seed is not None:
            self._generator = torch.Generator().manual_seed(int(seed))
        self._inject = False

    # -- the noise layer -----------------------------------------------------------------------
    @staticmethod
    def _find_first_layer(model: nn.Module) -> nn.Module:
        for name, module in model.named_modules():
            if next(module.parameters(recurse=False), None) is None:
                continue
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                return module
            raise ValueError(
                f"the model's first layer {name!r} ({type(module).__name__}) cannot take the PixelDP noise layer: "
                "it must be nn.Linear or nn.Conv2d (bounded sensitivity); use noise_layer='input'"
            )
        raise ValueError("the model has no layer with parameters to put the PixelDP noise layer after; use noise_layer='input'")

    def first_layer_sensitivity(self) -> float:
        """Sensitivity of the first layer (L1->L1 for Laplace, an L2->L2 upper bound for Gaussian)."""
        w = self._first.weight.detach()
        if isinstance(self._first, nn.Linear):  # (out, in)
            l1 = w.abs().sum(0).max().item()  # max column sum
            if self.mode == "laplace":
                return l1
            return torch.linalg.matrix_norm(w, ord=2).item()
        # Conv2d (out, in/groups, kh, kw): one input pixel reaches at most kh*kw outputs per out channel
        l1 = w.abs().sum(dim=(0, 2, 3)).max().item()
        if self.mode == "laplace":
            return l1
        linf = w.abs().sum(dim=(1, 2, 3)).max().item()  # one output's weights
        return math.sqrt(l1 * linf)  # ||A||_2 <= sqrt(||A||_1 ||A||_inf)

    @property
    def sigma(self) -> float:
        """Scale of the noise: Laplace ``b = Δ L / ε``; Gaussian ``σ = sqrt(2 ln(1.25/δ)) Δ L / ε``."""
        sens = self.sensitivity if self.sensitivity is not None else self.first_layer_sensitivity()
        s = sens * self.L / self.eps
        return s if self.mode == "laplace" else float(gaussian_delta_term(self.delta)) * s

    def sample_noise(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.sigma
        if self.mode == "gaussian":
            return torch.randn(x.shape, generator=self._generator, dtype=x.dtype) * scale
        u = torch.rand(x.shape, generator=self._generator, dtype=x.dtype) - 0.5
        return -scale * torch.sign(u) * torch.log1p(-2 * u.abs())

    def _noise_hook(self, module, inputs, output):
        if self._inject:
            return output + self.sample_noise(output).to(output.device)
        return None

    def _noisy_forward(self, x: torch.Tensor) -> torch.Tensor:
        self._inject = True
        try:
            if self.noise_layer == "input":
                return self.model(x + self.sample_noise(x).to(x.device))
            return self.model(x)
        finally:
            self._inject = False

    # -- forward -------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor):
        if not torch.is_tensor(x):
            raise TypeError(f"PixelDP expects a tensor, got {type(x).__name__}")
        if self.noise_layer == "input" and not torch.is_floating_point(x):
            raise TypeError(f"the input noise layer needs a floating-point input, got {x.dtype}; "
                            "the model's first layer cannot take integer inputs plus noise")
        if self.training:
            return self._noisy_forward(x)
        return self.forward_eval(x)

    @torch.no_grad()
    def forward_eval(self, x: torch.Tensor, rows_per_pass: int = 8192):
        """``(pred_proba, counts)``: mean softmax and arg-max counts over ``n_population_mc`` noise draws."""
        n = x.shape[0]
        proba = torch.zeros(n, self.num_classes)
        counts = torch.zeros(n, self.num_classes)
        draws = self.batch_size_mc
        chunk = max(1, rows_per_pass // draws)
        for start in range(0, n, chunk):
            xb = x[start : start + chunk]
            b = xb.shape[0]
            remaining = self.n_population_mc
            while remaining > 0:
                s = min(draws, remaining)
                remaining -= s
                rep = xb.repeat_interleave(s, dim=0)
                logits = self._noisy_forward(rep)
                if logits.shape[-1] != self.num_classes:
                    raise ValueError(f"the model returns {logits.shape[-1]} outputs but num_classes={self.num_classes}")
                p = torch.softmax(logits.float(), dim=-1).reshape(b, s, -1)
                proba[start : start + b] += p.sum(1).cpu()
                hits = torch.nn.functional.one_hot(logits.argmax(-1), self.num_classes).reshape(b, s, -1)
                counts[start : start + b] += hits.sum(1).cpu().float()
        return proba / self.n_population_mc, counts

    # -- certification -----------------------------------------------------------------------
    def certify(self, counts) -> Certificate:
        """Certify each row of ``counts`` (N, num_classes) or one input's counts (num_classes,).

        Returns ``Certificate(certified, radius, prediction)``: the radius is the largest attack size
        (L1 for Laplace, L2 for Gaussian noise, in input units) that provably cannot change the
        prediction, with probability ``1 - eta``; ``certified`` is ``radius > 0``.
        """
        c = counts.detach().cpu().numpy() if torch.is_tensor(counts) else np.asarray(counts, dtype=float)
        single = c.ndim == 1
        c = np.atleast_2d(c)
        if c.ndim != 2 or c.shape[1] != self.num_classes:
            raise ValueError(f"counts must have shape (N, {self.num_classes}) or ({self.num_classes},), got {np.shape(counts)}")
        if (c < 0).any() or not np.isfinite(c).all():
            raise ValueError("counts must be finite and non-negative")
        total = c.sum(1)
        if (total <= 0).any():
            raise ValueError("every row of counts needs at least one draw")
        srt = np.sort(c, axis=1)
        lower, _ = clopper_pearson_bounds(srt[:, -1], total, self.eta)
        _, upper = clopper_pearson_bounds(srt[:, -2], total, self.eta)
        if self.mode == "laplace":
            radius = laplace_radius(lower, upper, self.L, self.eps)
        else:
            radius = gaussian_radius(lower, upper, self.L, self.eps, self.delta)
        pred = c.argmax(1)
        certified = radius > 0
        if single:
            return Certificate(bool(certified[0]), float(radius[0]), int(pred[0]))
        return Certificate(certified, radius, pred)

    @property
    def attack_norm(self) -> int:
        """The norm the certificate's radius is measured in: 1 (Laplace) or 2 (Gaussian)."""
        return 1 if self.mode == "laplace" else 2
