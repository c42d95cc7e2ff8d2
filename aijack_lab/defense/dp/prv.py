"""PRV accountant (Gopi, Lee, Wutschitz, "Numerical Composition of Differential Privacy", NeurIPS 2021).

Optional, beyond the paper of the lab. For a pair of output distributions (P, Q) of neighbouring
datasets, the *privacy random variable* is ``Y = log(P(ω)/Q(ω))`` with ``ω ~ P``; then
``δ(ε) = E[(1 - e^(ε - Y))^+]`` and composition adds independent PRVs, so the PRV of T steps is the
convolution of the per-step PRVs. This module

1. writes down the CDF of the PRV of one Poisson-subsampled Gaussian step (noise multiplier σ,
   sampling rate q): with ``x = (2ω - 1) / (2σ²)``, the loss is ``±log(1 - q + q e^x)``, a monotone
   function of ω, and ω is Gaussian or a two-Gaussian mixture, so the CDF is a sum of Gaussian CDFs;
2. truncates each PRV to ``[-L, L]`` and discretises it on a grid of mesh ``h`` (mass of each bin on
   its centre), shifting the grid by the mean error so the discrete variable has the truncated
   variable's mean (the paper's mean-preserving discretisation);
3. composes all steps at once by FFT (``Π_i fft(p_i)^{k_i}``, a circular convolution on the window);
4. reads ε(δ) off the discrete δ(ε) curve with an exact root-finder (binary search over grid
   segments; inside a segment ``δ(ε) = A - e^ε B`` is solved in closed form).

Error analysis (the paper's Section 5, re-derived for the budget used here). Let K be the total
number of steps. The discretisation error of each step is a mean-zero variable in an interval of
width h, independent across steps, so by Hoeffding ``P(|Σ Z_i| > ε_err) ≤ 2 exp(-2 ε_err² / (K h²))``;
the mesh ``h = ε_err / sqrt(K/2 · log(12/δ_err))`` makes that ≤ δ_err/6. Since ``(1 - e^(ε-y))^+`` is
in [0, 1] and increasing in y, the discrete curve δ̂ then satisfies
``δ(ε + ε_err) - δ_err ≤ δ̂(ε) ≤ δ(ε - ε_err) + δ_err`` provided truncation of the steps (≤ δ_err/6
in total, counted twice) and of the composition (the wrap-around of the FFT, ≤ δ_err/3) fit in the
rest of δ_err. ``L`` comes from tail bounds: for the composition, Chernoff bounds on the RDP of the
steps (the RDP is the PRV's log-moment generating function, ``E[e^((α-1)Y)] = e^((α-1) D_α)``); for
each step, the exact CDF. Not in the bound (as in the paper): floating-point round-off of the FFT
power (~1e-16 · K per Fourier coefficient) and of the Simpson rule for the mean shift. Hence the
reported values:

- ``get_epsilon(δ)`` = ``ε̂(δ - δ_err) + ε_err``, an upper bound on the true ε (what DP-SGD needs),
- ``get_epsilon_bounds(δ)`` = (``ε̂(δ + δ_err) - ε_err``, ``ε̂(δ)``, upper).

Neighbouring relation: ``neighboring="remove"`` is the pair (q N(1, σ²) + (1-q) N(0, σ²), N(0, σ²)),
as in the paper's experiments and in Opacus; ``"add"`` is the reverse pair (N(0, σ²), mixture);
``"add_or_remove"`` (default) takes the larger ε of the two, which is what add/remove adjacency
requires (the two curves differ: the PRV of a subsampled step is not symmetric). The upper tail of the
"add" PRV is bounded with the same RDP, since D_α(N(0)||mixture) ≤ D_α(mixture||N(0)) for the sampled
Gaussian (Mironov, Talwar, Zhang 2019).
"""
import math
from typing import Dict, List, Optional, Tuple

import numpy as np

from ...utils.validation import check_positive, check_positive_int, check_probability
from .accountant import check_gaussian_steps, noise_search_arguments, smallest_noise_meeting

NEIGHBORING = ("add_or_remove", "remove", "add")
_MAX_LOSS = 500.0  # e^-y of the grid points must stay a normal float64
# orders for the Chernoff bounds that fix the truncation (any set is valid; more orders, smaller L)
_TAIL_ORDERS = [1.05, 1.1, 1.25, 1.5, 1.75] + [float(a) for a in range(2, 33)] + [40.0, 48.0, 64.0, 96.0, 128.0, 192.0, 256.0]


def _ndtr(x):
    from scipy.special import ndtr  # scipy comes with scikit-learn, a dependency

    return ndtr(x)


def _rdp(steps: List[Tuple[float, float, float]], orders: List[float]) -> np.ndarray:
    """Total RDP of sampled-Gaussian steps [(σ, q, n)] at each order (compiled core, else Python)."""
    try:
        from ..._core import accountant as core

        vals = core.compute_rdp("Gaussian", "rdp_tight_upperbound", steps, orders)
    except ImportError:  # pragma: no cover - the core is built by `make build`
        from . import rdp as pyrdp

        vals = pyrdp.compute_rdp("Gaussian", "rdp_tight_upperbound", steps, orders)
    return np.asarray(vals, dtype=float)


def _tail_point(rdp: np.ndarray, orders: List[float], tail: float) -> float:
    """A t with P(Y ≥ t) ≤ tail and P(Y ≤ -t) ≤ tail, by Chernoff bounds from the RDP R(α).

    Upper: E[e^((α-1)Y)] = e^((α-1)R(α)), so P(Y ≥ t) ≤ exp((α-1)(R(α) - t)).
    Lower: E[e^(-αY)] = E_P[(Q/P)^α] = e^((α-1) D_α(Q||P)) ≤ e^((α-1)R(α)) (for the sampled Gaussian the
    reverse divergence is the smaller one, Mironov, Talwar & Zhang 2019; for the "add" pair it is R
    itself), so P(Y ≤ -t) ≤ exp((α-1)R(α) - αt); α = 1 gives the distribution-free e^(-t).
    """
    a = np.asarray(orders)
    log_inv = math.log(1.0 / tail)
    with np.errstate(invalid="ignore"):
        upper = rdp + log_inv / (a - 1.0)
        lower = ((a - 1.0) * rdp + log_inv) / a
    upper, lower = upper[np.isfinite(upper)], lower[np.isfinite(lower)]
    t_up = float(upper.min()) if upper.size else math.inf
    t_low = min(log_inv, float(lower.min())) if lower.size else log_inv
    return max(t_up, t_low)


def _step_tail_point(sigma: float, q: float, direction: str, tail: float) -> float:
    """Smallest t (to 1e-6) with F(-t) ≤ tail and S(t) ≤ tail for one step, by bisection on the exact CDF."""
    def ok(t):
        f, s = _cdf_sf(np.array([-t, t]), sigma, q, direction)
        return f[0] <= tail and s[1] <= tail

    hi = 1.0
    while not ok(hi):
        hi *= 2.0
        if hi > 1e6:
            return math.inf
    lo = 0.0
    while hi - lo > 1e-6:
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi


def _fast_len(n: int) -> int:
    """Smallest 2^a 3^b 5^c ≥ n (FFT sizes that numpy's pocketfft handles fastest)."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def _cdf_sf(t: np.ndarray, sigma: float, q: float, direction: str) -> Tuple[np.ndarray, np.ndarray]:
    """CDF and survival function of the PRV of one subsampled-Gaussian step, evaluated at ``t``.

    With ``x = (2ω - 1)/(2σ²)`` the log-likelihood ratio of N(1, σ²) to N(0, σ²) at ω, the loss is
    ``ℓ(ω) = log(1 - q + q e^x)``, increasing in ω, and ``ℓ(ω) ≤ t ⟺ ω ≤ ω_t = σ² log((e^t - 1 + q)/q) + 1/2``.
    remove: Y = ℓ(ω), ω ~ (1-q) N(0, σ²) + q N(1, σ²), so F(t) = (1-q) Φ(ω_t/σ) + q Φ((ω_t - 1)/σ).
    add: Y = -ℓ(ω), ω ~ N(0, σ²), so F(t) = P(ω ≥ ω_{-t}) = Φ(-ω_{-t}/σ).
    Both tails are returned from Φ of the right sign, so neither loses precision near 0 or 1.
    """
    s = t if direction == "remove" else -t
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        inner = np.expm1(s) + q  # e^s - (1 - q) without cancellation near s = 0
        w = np.where(inner > 0, np.log(np.where(inner > 0, inner, 1.0)) - math.log(q), -np.inf)
        omega = sigma * sigma * w + 0.5  # -inf outside the support
    if direction == "remove":
        z0, z1 = omega / sigma, (omega - 1.0) / sigma
        cdf = (1.0 - q) * _ndtr(z0) + q * _ndtr(z1)
        sf = (1.0 - q) * _ndtr(-z0) + q * _ndtr(-z1)
        return cdf, sf
    z = omega / sigma
    return _ndtr(-z), _ndtr(z)


def _discretise(sigma: float, q: float, direction: str, n: int, h: float) -> Tuple[np.ndarray, float]:
    """Bin masses on x_j = j h, j = -n..n-1 (bin (x_j - h/2, x_j + h/2]), renormalised (truncation),
    and the mean shift μ that makes the discrete variable x_j + μ have the truncated variable's mean."""
    j = np.arange(-n, n, dtype=float)
    edges = (np.arange(-n, n + 1, dtype=float) - 0.5) * h
    f_e, s_e = _cdf_sf(edges, sigma, q, direction)
    f_c, s_c = _cdf_sf(j * h, sigma, q, direction)
    # differences of the CDF in the lower half, of the survival function in the upper half, so bin
    # masses in both tails keep their relative precision
    right = f_e[:-1] >= 0.5
    p = np.where(right, s_e[:-1] - s_e[1:], f_e[1:] - f_e[:-1])
    p = np.maximum(p, 0.0)
    # E[Y 1{bin}] - x_j p_j = (h/3)(F_a + F_b - 2 F_m) (integration by parts + Simpson on the CDF);
    # with survival S = 1 - F the same term is -(h/3)(S_a + S_b - 2 S_m).
    corr = np.where(right, -(s_e[:-1] + s_e[1:] - 2.0 * s_c), f_e[:-1] + f_e[1:] - 2.0 * f_c) * (h / 3.0)
    total = p.sum()
    if not total > 0:
        raise ValueError(f"the PRV of (sigma={sigma}, q={q}) has no mass on the grid; increase eps_error")
    p = p / total
    mu = float(corr.sum() / total)
    return p, mu


class PRVAccountant:
    """Numerical PRV accountant for Poisson-subsampled Gaussian DP-SGD.

    Same step API as ``GeneralMomentAccountant`` (``reset_step_info``,
    ``add_step_info({"sigma": σ}, sampling_rate, num_steps)``, ``get_epsilon(delta)``), so it is a
    drop-in alternative with a tighter ε.

    Args:
        eps_error: the error allowed in ε (the paper's ε_error); sets the mesh. Default 0.01.
        delta_error: the error allowed in δ; default ``delta / 1000`` at each query. Must be < δ.
        neighboring: ``"add_or_remove"`` (default, the larger of the two), ``"remove"`` (the
            paper's and Opacus's pair) or ``"add"``.
        max_points: the largest grid (memory ≈ 80 bytes a point); a query needing more raises.
    """

    def __init__(self, eps_error: float = 0.01, delta_error: Optional[float] = None, neighboring: str = "add_or_remove",
                 max_points: int = 1 << 22):
        self.eps_error = check_positive("eps_error", eps_error)
        self.max_points = check_positive_int("max_points", max_points)
        self.delta_error = None if delta_error is None else check_probability("delta_error", delta_error, allow_one=False)
        if neighboring not in NEIGHBORING:
            raise ValueError(f"neighboring must be one of {list(NEIGHBORING)}, got {neighboring!r}")
        self.neighboring = neighboring
        self.noise_type = "Gaussian"  # what DP-SGD code asks of an accountant
        self.steps_info: List[Tuple[Dict[str, float], float, int]] = []
        self._cache: Dict[tuple, tuple] = {}
        self.last_grid: Dict[str, float] = {}

    # -- steps ----------------------------------------------------------------------------------
    def reset_step_info(self) -> None:
        self.steps_info = []

    def add_step_info(self, noise_params: Dict[str, float], sampling_rate: float, num_steps: int) -> None:
        """Record ``num_steps`` steps (lots) with noise multiplier ``noise_params["sigma"]`` and q = lot size / N."""
        sigma, q, num_steps = check_gaussian_steps(noise_params, sampling_rate, num_steps)
        # merge runs of equal steps, as DP-SGD adds one step per lot
        if self.steps_info and self.steps_info[-1][0]["sigma"] == sigma and self.steps_info[-1][1] == q:
            self.steps_info[-1] = (self.steps_info[-1][0], q, self.steps_info[-1][2] + num_steps)
        else:
            self.steps_info.append(({"sigma": sigma}, q, num_steps))

    @property
    def num_steps(self) -> int:
        return sum(n for _, _, n in self.steps_info)

    def _grouped(self) -> List[Tuple[float, float, int]]:
        """Steps with equal (σ, q) merged; zero-step entries dropped."""
        groups: Dict[Tuple[float, float], int] = {}
        for p, q, n in self.steps_info:
            if n:
                key = (p["sigma"], q)
                groups[key] = groups.get(key, 0) + n
        return [(s, q, n) for (s, q), n in groups.items()]

    # -- the composed PRV -------------------------------------------------------------------------
    def _grid(self, groups, eps_error: float, delta_error: float) -> Tuple[int, float, float]:
        """(n, h, L): mesh from the Hoeffding bound, window [-L, L] from tail bounds."""
        k = sum(n for _, _, n in groups)
        h = eps_error / math.sqrt(k / 2.0 * math.log(12.0 / delta_error))
        steps = [(s, q, float(n)) for s, q, n in groups]
        # composition: P(|Y| ≥ L - ε_err) ≤ δ_err/3, δ_err/6 per tail, by Chernoff bounds on the RDP
        L = _tail_point(_rdp(steps, _TAIL_ORDERS), _TAIL_ORDERS, delta_error / 6.0) + eps_error
        # each step: P(|Y_i| > L) ≤ δ_err/(6K) (δ_err/(12K) per tail, from the exact CDF), so the
        # truncation of all K steps changes δ by ≤ δ_err/6
        tail_step = delta_error / (12.0 * k)
        for s, q, _ in groups:
            for direction in self._directions():
                L = max(L, _step_tail_point(s, q, direction, tail_step))
        if not math.isfinite(L) or L > _MAX_LOSS:
            raise ValueError(f"the privacy loss of these steps reaches {L:.4g} (> {_MAX_LOSS}): sigma is too small "
                             "for a meaningful epsilon; use GeneralMomentAccountant")
        n = _fast_len(int(math.ceil(L / h + 0.5)))
        if 2 * n > self.max_points:
            raise ValueError(f"the grid would need {2 * n} points (> max_points={self.max_points}); "
                             "increase eps_error or max_points")
        return n, h, L

    def _compose(self, eps_error: float, delta_error: float, direction: str):
        """PMF of the composed discrete PRV on the points x_j + shift (positive part only)."""
        groups = self._grouped()
        key = (tuple(groups), eps_error, delta_error, direction)
        if key in self._cache:
            return self._cache[key]
        n, h, L = self._grid(groups, eps_error, delta_error)
        spectrum = None
        shift = 0.0
        for s, q, k in groups:
            p, mu = _discretise(s, q, direction, n, h)
            f = np.fft.rfft(np.fft.ifftshift(p)) ** k  # index 0 (x = 0) at position 0 for the FFT
            spectrum = f if spectrum is None else spectrum * f
            shift += k * mu
        pmf = np.fft.fftshift(np.fft.irfft(spectrum, n=2 * n))
        pmf = np.maximum(pmf, 0.0)  # round-off of the FFT leaves tiny negative values
        y = np.arange(-n, n, dtype=float) * h + shift
        keep = y > 0  # δ(ε ≥ 0) only sees positive losses
        y, pmf = y[keep], pmf[keep]
        # suffix sums: for ε in [y_{m-1}, y_m), δ(ε) = A_m - e^ε B_m
        a = np.cumsum(pmf[::-1])[::-1]
        b = np.cumsum((pmf * np.exp(-y))[::-1])[::-1]
        self.last_grid = {"mesh": h, "L": L, "points": 2 * n, "steps": sum(k for _, _, k in groups)}
        result = (y, a, b)
        if len(self._cache) > 8:
            self._cache.clear()
        self._cache[key] = result
        return result

    @staticmethod
    def _eps_hat(curve, delta: float) -> float:
        """ε̂ with δ̂(ε̂) = delta on the discrete curve (exact root: binary search + closed form)."""
        y, a, b = curve
        if y.size == 0:
            return 0.0
        # δ̂ at the left end of each segment: d_0 = δ̂(0), d_m = δ̂(y_{m-1}); a decreasing sequence
        left = np.concatenate(([0.0], y))
        a_ext = np.concatenate((a, [0.0]))
        b_ext = np.concatenate((b, [0.0]))
        d = a_ext - np.exp(left) * b_ext
        if delta >= d[0]:
            return 0.0
        # first index whose left value is ≤ delta; the root lies in the segment before it
        m = int(np.searchsorted(-d, -delta, side="left"))
        seg = m - 1
        num = a_ext[seg] - delta
        eps = math.log(num / b_ext[seg]) if b_ext[seg] > 0 and num > 0 else float(left[m])
        return float(min(max(eps, left[seg]), left[m]))

    def _check_query(self, delta, eps_error, delta_error) -> Tuple[float, float, float]:
        delta = check_probability("delta", delta, allow_one=False)
        eps_error = self.eps_error if eps_error is None else check_positive("eps_error", eps_error)
        if delta_error is None:
            delta_error = self.delta_error if self.delta_error is not None else delta / 1000.0
        delta_error = check_probability("delta_error", delta_error, allow_one=False)
        if not delta_error < delta:
            raise ValueError(f"delta_error must be < delta, got {delta_error} >= {delta}")
        return delta, eps_error, delta_error

    def _directions(self) -> Tuple[str, ...]:
        return ("remove", "add") if self.neighboring == "add_or_remove" else (self.neighboring,)

    def get_epsilon_bounds(self, delta: float, eps_error: Optional[float] = None,
                           delta_error: Optional[float] = None) -> Tuple[float, float, float]:
        """(lower, estimate, upper) for ε at δ; the true ε lies between lower and upper."""
        delta, eps_error, delta_error = self._check_query(delta, eps_error, delta_error)
        if not self._grouped():
            return 0.0, 0.0, 0.0
        lo = est = up = 0.0
        for direction in self._directions():
            curve = self._compose(eps_error, delta_error, direction)
            lo = max(lo, self._eps_hat(curve, delta + delta_error) - eps_error)
            est = max(est, self._eps_hat(curve, delta))
            up = max(up, self._eps_hat(curve, delta - delta_error) + eps_error)
        return max(lo, 0.0), est, up

    def get_epsilon(self, delta: float, eps_error: Optional[float] = None, delta_error: Optional[float] = None) -> float:
        """Upper bound on ε at δ of everything recorded so far (0 before any step)."""
        return self.get_epsilon_bounds(delta, eps_error, delta_error)[2]

    def get_delta(self, epsilon: float, eps_error: Optional[float] = None, delta_error: Optional[float] = None) -> float:
        """Upper bound on δ at ε: δ̂(ε - ε_err) + δ_err (``delta_error`` required here: no δ to scale from)."""
        epsilon = check_positive("epsilon", epsilon, allow_zero=True)
        eps_error = self.eps_error if eps_error is None else check_positive("eps_error", eps_error)
        delta_error = self.delta_error if delta_error is None else delta_error
        if delta_error is None:
            raise ValueError("delta_error must be given (here or in the constructor) to compute delta")
        delta_error = check_probability("delta_error", delta_error, allow_one=False)
        if not self._grouped():
            return 0.0
        out = 0.0
        for direction in self._directions():
            y, a, b = self._compose(eps_error, delta_error, direction)
            e = max(epsilon - eps_error, 0.0)
            m = int(np.searchsorted(y, e, side="right"))
            val = float(a[m] - math.exp(e) * b[m]) if m < y.size else 0.0
            out = max(out, val)
        return min(1.0, max(out, 0.0) + delta_error)

    def get_noise_multiplier(
        self,
        noise_multiplier_key: str,
        target_epsilon: float,
        target_delta: float,
        sampling_rate: float,
        num_iterations: Optional[float],
        noise_multiplier_min: float = 0.0,
        noise_multiplier_max: float = 10.0,
        noise_multiplier_precision: float = 0.01,
        num_steps: Optional[int] = None,
    ) -> float:
        """The smallest σ (within ``noise_multiplier_precision``) whose upper ε is ≤ ``target_epsilon``.

        Same arguments as ``GeneralMomentAccountant.get_noise_multiplier`` (``num_iterations`` counts
        epochs: steps = ``int(num_iterations / sampling_rate)``, or pass ``num_steps=``). Bisection that
        only returns a σ it evaluated with ε ≤ target; a σ too small to account for (its loss or grid is
        out of range) counts as missing the target. The recorded steps are left unchanged.
        """
        if noise_multiplier_key != "sigma":
            raise ValueError(f"noise_multiplier_key must be 'sigma', got {noise_multiplier_key!r}")
        target_epsilon, delta, q, num_steps, lo, hi, precision = noise_search_arguments(
            target_epsilon, target_delta, sampling_rate, num_iterations, noise_multiplier_min, noise_multiplier_max,
            noise_multiplier_precision, num_steps)

        def meets(sigma: float) -> bool:
            probe = PRVAccountant(self.eps_error, self.delta_error, self.neighboring, self.max_points)
            probe.add_step_info({"sigma": sigma}, q, num_steps)
            try:
                return probe.get_epsilon(delta) <= target_epsilon
            except ValueError:  # the loss of so small a σ is beyond the grid: certainly not private enough
                return False

        return smallest_noise_meeting(meets, lo, hi, precision,
                                      f"target_epsilon={target_epsilon} at target_delta={delta}")

    def __repr__(self):
        return f"PRVAccountant(eps_error={self.eps_error}, neighboring={self.neighboring!r}, steps={self.num_steps})"
