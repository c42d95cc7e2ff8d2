"""Rényi-DP of subsampled Gaussian and Laplace mechanisms, in log space (pure-Python backend).

Every quantity that can overflow is kept as a logarithm: the moment ``A_α = E[(p/q)^α]`` of the
sampled Gaussian mechanism is a log-sum-exp of binomial terms, so large orders, tiny sampling
rates and huge or tiny σ neither overflow nor lose precision. The C++ core
(``aijack_lab._core.accountant``) implements the same formulas term by term; both backends agree
to ~1e-12 relative.

Bounds (``bound_type``):

- ``"rdp_tight_upperbound"``: Poisson subsampling. For the Gaussian mechanism this is the exact
  RDP of the sampled Gaussian mechanism — the binomial expansion for integer α (Mironov, Talwar,
  Zhang 2019, eq. 3; Zhu & Wang 2019, Thm. 8) and Mironov et al.'s two-sided series with erfc
  terms for fractional α. For Laplace, Zhu & Wang 2019, Thm. 6 (general Poisson upper bound).
- ``"rdp_upperbound_closedformula"``: Wang, Balle, Kasiviswanathan 2019, Thm. 9 (subsampling
  without replacement, general mechanism); integer α, fractional α by the convexity of
  ``(α-1)·ε(α)`` between the neighbouring integers.

RDP → (ε, δ): ``ε = rdp(α) + log((α-1)/α) - (log δ + log α)/(α-1)`` (Balle et al. 2020,
Thm. 21; the conversion Opacus uses too).
"""
import math
from typing import Sequence, Tuple

NEG_INF = float("-inf")
LOG_HALF = math.log(0.5)
_MAX_SERIES_TERMS = 100000


def log_add(a: float, b: float) -> float:
    """log(exp(a) + exp(b))."""
    if a < b:
        a, b = b, a
    if b == NEG_INF:
        return a
    return a + math.log1p(math.exp(b - a))


def log_sub(a: float, b: float) -> float:
    """log(exp(a) - exp(b)) for a >= b (returns -inf when they are equal)."""
    if b == NEG_INF:
        return a
    if a <= b:
        return NEG_INF
    d = a - b
    if d > 700:  # exp(d) would overflow; log(expm1(d)) = d to double precision
        return a
    return b + math.log(math.expm1(d))


def log_erfc(x: float) -> float:
    """log(erfc(x)), accurate for large x where erfc underflows."""
    if x < 25.0:
        return math.log(math.erfc(x))
    # asymptotic series erfc(x) ~ exp(-x²)/(x√π) · (1 - 1/(2x²) + 3/(4x⁴) - 15/(8x⁶) + 105/(16x⁸))
    r = 1.0 / (2.0 * x * x)
    series = 1.0 - r + 3.0 * r * r - 15.0 * r ** 3 + 105.0 * r ** 4
    return -x * x - math.log(x) - 0.5 * math.log(math.pi) + math.log(series)


def log_binom_int(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _is_int(alpha: float) -> bool:
    return float(alpha).is_integer()


# -- the un-subsampled mechanisms -------------------------------------------------------------
def rdp_gaussian(alpha: float, sigma: float) -> float:
    """RDP of the Gaussian mechanism with noise multiplier σ (sensitivity 1): α / (2σ²)."""
    return alpha / (2.0 * sigma * sigma)


def rdp_laplace(alpha: float, b: float) -> float:
    """RDP of the Laplace mechanism with scale b (sensitivity 1), Mironov 2017, Prop. 6."""
    if math.isinf(alpha):
        return 1.0 / b
    a = log_add(math.log(alpha / (2 * alpha - 1)) + (alpha - 1) / b, math.log((alpha - 1) / (2 * alpha - 1)) - alpha / b)
    return a / (alpha - 1)


def _base(noise_type: str):
    return rdp_gaussian if noise_type == "Gaussian" else rdp_laplace


# -- sampled Gaussian, exact (Poisson) ---------------------------------------------------------
def log_expm1(z: float) -> float:
    """log(exp(z) - 1) for z > 0."""
    return z if z > 700 else math.log(math.expm1(z))


def _log_a_int(q: float, sigma: float, alpha: int) -> float:
    # A_α = Σ_i C(α,i) q^i (1-q)^{α-i} e^{(i²-i)/2σ²}. The binomial weights sum to 1, so
    # A_α - 1 = Σ_{i≥2} C(α,i) q^i (1-q)^{α-i} (e^{(i²-i)/2σ²} - 1): all terms positive, no
    # cancellation when A_α is close to 1 (tiny q, large σ); log A_α = log1p(A_α - 1).
    log_q, log_1q = math.log(q), math.log1p(-q)
    log_am1 = NEG_INF
    for i in range(2, alpha + 1):
        s = log_binom_int(alpha, i) + i * log_q + (alpha - i) * log_1q + log_expm1((i * i - i) / (2.0 * sigma * sigma))
        log_am1 = log_add(log_am1, s)
    return log_add(0.0, log_am1)


def _log_a_frac(q: float, sigma: float, alpha: float) -> float:
    # Mironov, Talwar, Zhang 2019, Sec. 3.3: A_α = A_0 + A_1, two alternating series.
    log_a0, log_a1 = NEG_INF, NEG_INF
    z0 = sigma * sigma * math.log(1.0 / q - 1.0) + 0.5
    log_q, log_1q = math.log(q), math.log1p(-q)
    sqrt2s = math.sqrt(2.0) * sigma
    # |binom(α, i)| and its sign, updated by the ratio binom(α, i+1) = binom(α, i)·(α-i)/(i+1)
    log_abs_coef, sign = 0.0, 1.0
    i = 0
    while True:
        j = alpha - i
        log_t0 = log_abs_coef + i * log_q + j * log_1q
        log_t1 = log_abs_coef + j * log_q + i * log_1q
        log_e0 = LOG_HALF + log_erfc((i - z0) / sqrt2s)
        log_e1 = LOG_HALF + log_erfc((z0 - j) / sqrt2s)
        log_s0 = log_t0 + (i * i - i) / (2.0 * sigma * sigma) + log_e0
        log_s1 = log_t1 + (j * j - j) / (2.0 * sigma * sigma) + log_e1
        if sign > 0:
            log_a0 = log_add(log_a0, log_s0)
            log_a1 = log_add(log_a1, log_s1)
        else:
            log_a0 = log_sub(log_a0, log_s0)
            log_a1 = log_sub(log_a1, log_s1)
        i += 1
        if max(log_s0, log_s1) < -30 or i > _MAX_SERIES_TERMS:
            break
        ratio = (alpha - (i - 1)) / i
        if ratio == 0:
            break
        log_abs_coef += math.log(abs(ratio))
        if ratio < 0:
            sign = -sign
    return log_add(log_a0, log_a1)


def rdp_sampled_gaussian_exact(q: float, sigma: float, alpha: float) -> float:
    if q == 0:
        return 0.0
    if q == 1.0:
        return rdp_gaussian(alpha, sigma)
    if math.isinf(alpha):
        return math.inf
    log_a = _log_a_int(q, sigma, int(alpha)) if _is_int(alpha) else _log_a_frac(q, sigma, alpha)
    return log_a / (alpha - 1)


# -- general-mechanism bounds on integer orders ---------------------------------------------
def _zhu_wang_thm6(q: float, alpha: int, eps) -> float:
    # (α-1)ε' ≤ log Σ_l C(α,l)(1-q)^{α-l} q^l w_l with w_0 = w_1 = 1, w_2 = e^{ε(2)},
    # w_l = 3e^{(l-1)ε(l)} (l ≥ 3); as for _log_a_int the sum is 1 + Σ_{l≥2} (...)(w_l - 1).
    log_q, log_1q = math.log(q), math.log1p(-q)
    terms = log_binom_int(alpha, 2) + 2 * log_q + (alpha - 2) * log_1q + log_expm1(eps(2))
    for l in range(3, alpha + 1):
        log_w = math.log(3.0) + (l - 1) * eps(l)
        terms = log_add(terms, log_binom_int(alpha, l) + (alpha - l) * log_1q + l * log_q + log_w + math.log1p(-math.exp(-log_w)))
    return log_add(0.0, terms)


def _wang_thm9(q: float, alpha: int, eps, eps_inf: float) -> float:
    # (α-1)ε' ≤ log[1 + q² C(α,2) min{4(e^{ε(2)}-1), e^{ε(2)} min{2, (e^{ε(∞)}-1)²}}
    #                 + Σ_{j≥3} q^j C(α,j) e^{(j-1)ε(j)} min{2, (e^{ε(∞)}-1)^j}]
    log_q = math.log(q)
    log_em1_inf = math.inf if math.isinf(eps_inf) else (eps_inf if eps_inf > 700 else math.log(math.expm1(eps_inf)))
    e2 = eps(2)
    log_4em1 = math.log(4.0) + (e2 if e2 > 700 else math.log(math.expm1(e2)))
    log_second = min(log_4em1, e2 + min(math.log(2.0), 2 * log_em1_inf))
    terms = log_add(0.0, 2 * log_q + log_binom_int(alpha, 2) + log_second)
    for j in range(3, alpha + 1):
        terms = log_add(terms, j * log_q + log_binom_int(alpha, j) + (j - 1) * eps(j) + min(math.log(2.0), j * log_em1_inf))
    return terms


def _interp_int(alpha: float, log_moment_int) -> float:
    """(α-1)ε(α) from integer orders; fractional α by convexity between ⌊α⌋ and ⌈α⌉."""
    if _is_int(alpha):
        return log_moment_int(int(alpha))
    lo, hi = int(math.floor(alpha)), int(math.ceil(alpha))
    t = alpha - lo
    k_lo = 0.0 if lo <= 1 else log_moment_int(lo)
    return (1 - t) * k_lo + t * log_moment_int(hi)


def rdp_one_step(noise_type: str, bound_type: str, scale: float, q: float, alpha: float) -> float:
    """RDP at order α of one step of the (subsampled) mechanism with noise ``scale`` (σ or b)."""
    if q == 0:
        return 0.0
    base = _base(noise_type)
    if q == 1.0:
        return base(alpha, scale)
    if math.isinf(alpha):
        return math.inf
    if noise_type == "Gaussian" and bound_type == "rdp_tight_upperbound":
        return rdp_sampled_gaussian_exact(q, scale, alpha)

    def eps(a):
        return base(a, scale)

    if bound_type == "rdp_tight_upperbound":
        k = _interp_int(alpha, lambda a: _zhu_wang_thm6(q, a, eps))
    else:
        eps_inf = math.inf if noise_type == "Gaussian" else 1.0 / scale
        k = _interp_int(alpha, lambda a: _wang_thm9(q, a, eps, eps_inf))
    return k / (alpha - 1)


def compute_rdp(noise_type: str, bound_type: str, steps_info: Sequence[Tuple[float, float, int]], orders: Sequence[float]):
    """Total RDP per order for ``steps_info = [(scale, q, num_steps), ...]`` (composition adds)."""
    out = []
    for alpha in orders:
        total = 0.0
        for scale, q, steps in steps_info:
            if steps:
                total += steps * rdp_one_step(noise_type, bound_type, scale, q, alpha)
        out.append(total)
    return out


def eps_from_rdp(rdp: float, alpha: float, delta: float) -> float:
    """ε of an (α, rdp)-RDP mechanism at δ (Balle et al. 2020, Thm. 21)."""
    if math.isinf(rdp):
        return math.inf
    return rdp + math.log1p(-1.0 / alpha) - (math.log(delta) + math.log(alpha)) / (alpha - 1)


def epsilon_at(noise_type, bound_type, steps_info, alpha, delta) -> float:
    return eps_from_rdp(compute_rdp(noise_type, bound_type, steps_info, [alpha])[0], alpha, delta)


def get_epsilon(noise_type, bound_type, steps_info, delta, search, orders, order_min, order_max, precision, max_iterations):
    """Smallest ε over orders: ``greedy`` scans ``orders``; ``ternary`` searches [order_min, order_max]."""
    if search == "greedy":
        best = (math.inf, float(orders[0]))
        for alpha in orders:
            e = epsilon_at(noise_type, bound_type, steps_info, alpha, delta)
            if e < best[0]:
                best = (e, float(alpha))
        return best
    lo, hi = float(order_min), float(order_max)
    it = 0
    while hi - lo > precision and it < max_iterations:
        m1 = lo + (hi - lo) / 3.0
        m2 = hi - (hi - lo) / 3.0
        if epsilon_at(noise_type, bound_type, steps_info, m1, delta) < epsilon_at(noise_type, bound_type, steps_info, m2, delta):
            hi = m2
        else:
            lo = m1
        it += 1
    best = (math.inf, lo)
    for alpha in (lo, (lo + hi) / 2.0, hi):
        e = epsilon_at(noise_type, bound_type, steps_info, alpha, delta)
        if e < best[0]:
            best = (e, alpha)
    return best
