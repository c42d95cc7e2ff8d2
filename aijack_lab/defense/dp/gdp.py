"""Gaussian-DP accountant (Dong, Roth, Su 2019; Bu et al. 2020) — optional, beyond the paper.

Poisson-subsampled DP-SGD is approximately μ-GDP by the central limit theorem, with
``μ² = Σ_steps q² (exp(1/σ²) - 1)``; μ-GDP gives ``δ(ε) = Φ(-ε/μ + μ/2) - e^ε Φ(-ε/μ - μ/2)``.
The CLT is an approximation (it can *under*-estimate ε for few steps or large q), so this is for
comparison with the RDP accountant, not a guarantee.
"""
import math
from typing import Dict, List, Tuple

from ...utils.validation import check_probability
from .accountant import check_gaussian_steps


def _phi(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def delta_from_mu(epsilon: float, mu: float) -> float:
    return _phi(-epsilon / mu + mu / 2) - math.exp(epsilon) * _phi(-epsilon / mu - mu / 2)


def epsilon_from_mu(mu: float, delta: float) -> float:
    """Smallest ε with δ(ε) ≤ delta for μ-GDP (bisection; δ(ε) decreases in ε)."""
    if mu == 0:
        return 0.0
    lo, hi = 0.0, 1.0
    while delta_from_mu(hi, mu) > delta:
        lo, hi = hi, 2 * hi
        if hi > 1e6:
            return math.inf
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if delta_from_mu(mid, mu) > delta:
            lo = mid
        else:
            hi = mid
    return hi


class GDPAccountant:
    """Same step API as ``GeneralMomentAccountant`` (``add_step_info({"sigma": σ}, q, steps)``)."""

    def __init__(self):
        self.steps_info: List[Tuple[Dict[str, float], float, int]] = []

    def reset_step_info(self) -> None:
        self.steps_info = []

    def add_step_info(self, noise_params: Dict[str, float], sampling_rate: float, num_steps: int) -> None:
        _, q, num_steps = check_gaussian_steps(noise_params, sampling_rate, num_steps)
        self.steps_info.append((dict(noise_params), q, num_steps))

    def get_mu(self) -> float:
        total = 0.0
        for p, q, n in self.steps_info:
            s = p["sigma"]
            total += n * q * q * (math.expm1(1.0 / (s * s)) if 1.0 / (s * s) < 700 else math.inf)
        return math.sqrt(total)

    def get_epsilon(self, delta: float) -> float:
        delta = check_probability("delta", delta, allow_one=False)
        return epsilon_from_mu(self.get_mu(), delta)
