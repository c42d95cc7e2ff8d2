"""The moments (RDP) accountant of the paper (Code 4): ``GeneralMomentAccountant``.

An accountant keeps a list of *steps*: ``(noise_params, sampling_rate, num_steps)``. One step is
one noisy update of DP-SGD, i.e. one **lot** (the unit of privacy accounting); how a lot is split
into batches for compute does not matter to the accountant. ``get_epsilon(delta)`` composes the
steps in Rényi-DP and converts to (ε, δ)-DP at the best order.
"""
import math
from numbers import Real
from typing import Dict, List, Optional, Sequence, Tuple

from ...utils.validation import check_in_range, check_positive, check_positive_int, check_probability
from . import rdp as _rdp

NOISE_TYPES = {"Gaussian": "sigma", "Laplace": "b"}
BOUND_TYPES = ("rdp_upperbound_closedformula", "rdp_tight_upperbound")
SEARCHES = ("greedy", "ternary")
BACKENDS = ("cpp", "python")
DEFAULT_ORDERS = tuple(range(2, 73))


def check_gaussian_steps(noise_params, sampling_rate, num_steps) -> Tuple[float, float, int]:
    """The checked ``(σ, q, steps)`` of an ``add_step_info({"sigma": σ}, q, steps)`` call of a
    Gaussian-only accountant (PRV, GDP)."""
    if not isinstance(noise_params, dict) or "sigma" not in noise_params:
        raise ValueError(f"noise_params must be a dict with key 'sigma', got {noise_params!r}")
    return (check_positive("noise_params['sigma']", noise_params["sigma"]),
            check_probability("sampling_rate", sampling_rate),
            check_positive_int("num_steps", num_steps, allow_zero=True))


def noise_search_arguments(target_epsilon, target_delta, sampling_rate, num_iterations, noise_multiplier_min,
                           noise_multiplier_max, noise_multiplier_precision, num_steps):
    """Checks ``get_noise_multiplier``'s arguments (shared by the accountants); returns
    ``(target_epsilon, delta, q, num_steps, lo, hi, precision)``. As in the seed, ``num_iterations``
    counts epochs: steps = ``int(num_iterations / sampling_rate)`` unless ``num_steps`` is given."""
    target_epsilon = check_positive("target_epsilon", target_epsilon)
    delta = check_probability("target_delta", target_delta, allow_one=False)
    q = check_probability("sampling_rate", sampling_rate)
    if num_steps is None:
        check_positive("num_iterations", num_iterations)
        num_steps = int(num_iterations / q)
    num_steps = check_positive_int("num_steps", num_steps)
    lo = check_positive("noise_multiplier_min", noise_multiplier_min, allow_zero=True)
    hi = check_positive("noise_multiplier_max", noise_multiplier_max)
    precision = check_positive("noise_multiplier_precision", noise_multiplier_precision)
    if hi <= lo:
        raise ValueError(f"noise_multiplier_max must be > noise_multiplier_min, got {hi} <= {lo}")
    return target_epsilon, delta, q, num_steps, lo, hi, precision


def smallest_noise_meeting(meets, lo: float, hi: float, precision: float, what: str) -> float:
    """Bisection for the smallest noise scale with ``meets(scale)`` (ε ≤ target), to ``precision``.

    Only ever returns a scale it evaluated and found meeting the target, so the result is never
    optimistic (the failure of binary searches that return the midpoint); ``hi`` is doubled until it
    meets the target, and everything below ``lo`` is assumed to miss it.
    """
    while not meets(hi):
        lo, hi = hi, 2.0 * hi
        if hi > 1e7:
            raise ValueError(f"no noise scale up to 1e7 reaches {what}")
    if lo > 0 and meets(lo):
        return lo
    while hi - lo > precision:
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if meets(mid) else (mid, hi)
    return hi


def _cpp():
    try:
        from ..._core import accountant
    except ImportError as exc:  # pragma: no cover - the core is built by `make build`
        raise ImportError("backend='cpp' needs the compiled core (run `make build`), or use backend='python'") from exc
    return accountant


class GeneralMomentAccountant:
    """RDP accountant for the subsampled Gaussian (or Laplace) mechanism.

    Args:
        name: a label (the seed's ``"SGM"``).
        search: ``"greedy"`` takes the best of ``orders``; ``"ternary"`` searches the continuous
            order in ``[order_min, order_max]`` down to ``precision`` (at most ``max_iterations``).
        order_min, order_max: the range of orders; ``orders`` defaults to the integers in it.
        precision: width at which the ternary search stops.
        orders: the orders (all > 1) for the greedy search.
        noise_type: ``"Gaussian"`` (noise params ``{"sigma": σ}``, the noise multiplier) or
            ``"Laplace"`` (``{"b": b}``, the scale relative to the sensitivity).
        bound_type: ``"rdp_tight_upperbound"`` (Poisson subsampling; exact RDP for the Gaussian
            mechanism, integer and fractional orders) or ``"rdp_upperbound_closedformula"``
            (Wang, Balle & Kasiviswanathan 2019, Thm. 9; looser). See ``aijack_lab.defense.dp.rdp``.
        backend: ``"cpp"`` (the compiled core) or ``"python"`` (pure Python, same formulas).
    """

    def __init__(
        self,
        name: str = "SGM",
        search: str = "greedy",
        order_min: float = 2,
        order_max: float = 72,
        precision: float = 0.5,
        orders: Optional[Sequence[float]] = None,
        noise_type: str = "Gaussian",
        bound_type: str = "rdp_tight_upperbound",
        max_iterations: int = 10000,
        backend: str = "cpp",
    ):
        for arg, value, allowed in (("noise_type", noise_type, tuple(NOISE_TYPES)), ("bound_type", bound_type, BOUND_TYPES),
                                    ("search", search, SEARCHES), ("backend", backend, BACKENDS)):
            if value not in allowed:
                raise ValueError(f"{arg} must be one of {list(allowed)}, got {value!r}")
        self.order_min = check_in_range("order_min", order_min, 1.0, 1e6, low_open=True)
        self.order_max = check_in_range("order_max", order_max, 1.0, 1e6, low_open=True)
        if self.order_max < self.order_min:
            raise ValueError(f"order_max must be >= order_min, got {order_max} < {order_min}")
        self.precision = check_positive("precision", precision)
        self.max_iterations = check_positive_int("max_iterations", max_iterations)
        if orders is None or len(orders) == 0:
            lo, hi = int(math.ceil(self.order_min)), int(math.floor(self.order_max))
            orders = list(range(max(lo, 2), hi + 1)) or [self.order_min]
        self.orders = [self._check_order(a) for a in orders]
        self.name = name
        self.search = search
        self.noise_type = noise_type
        self.noise_key = NOISE_TYPES[noise_type]
        self.bound_type = bound_type
        self.backend = backend
        self._core = _cpp() if backend == "cpp" else None
        self.steps_info: List[Tuple[Dict[str, float], float, int]] = []

    @staticmethod
    def _check_order(a) -> float:
        if isinstance(a, bool) or not isinstance(a, Real):
            raise TypeError(f"orders must be real numbers, got {type(a).__name__}")
        if not (a > 1) or math.isnan(a):
            raise ValueError(f"orders must be > 1, got {a}")
        return float(a)

    # -- steps ----------------------------------------------------------------------------------
    def reset_step_info(self) -> None:
        self.steps_info = []

    def _scale(self, noise_params) -> float:
        if not isinstance(noise_params, dict) or self.noise_key not in noise_params:
            raise ValueError(f"noise_params must be a dict with key {self.noise_key!r} for noise_type={self.noise_type!r}, got {noise_params!r}")
        return check_positive(f"noise_params[{self.noise_key!r}]", noise_params[self.noise_key])

    def add_step_info(self, noise_params: Dict[str, float], sampling_rate: float, num_steps: int) -> None:
        """Record ``num_steps`` steps (lots) with these noise params and sampling rate q = lot size / N."""
        last = self.steps_info[-1] if self.steps_info else None
        if (last is not None and type(num_steps) is int and num_steps >= 0 and last[1] == sampling_rate
                and last[0] == noise_params):  # the common per-lot call: same (already checked) step kind
            self.steps_info[-1] = (last[0], last[1], last[2] + num_steps)
            return
        self._scale(noise_params)
        q = check_probability("sampling_rate", sampling_rate)
        check_positive_int("num_steps", num_steps, allow_zero=True)
        if self.steps_info and self.steps_info[-1][0] == noise_params and self.steps_info[-1][1] == q:
            p, q_, n = self.steps_info[-1]
            self.steps_info[-1] = (p, q_, n + num_steps)
        else:
            self.steps_info.append((dict(noise_params), q, num_steps))

    @property
    def num_steps(self) -> int:
        return sum(n for _, _, n in self.steps_info)

    def _steps_tuples(self, steps_info=None):
        steps_info = self.steps_info if steps_info is None else steps_info
        return [(self._scale(p), float(q), float(n)) for p, q, n in steps_info]

    # -- RDP and epsilon ------------------------------------------------------------------------
    def get_rdp(self, orders: Optional[Sequence[float]] = None) -> List[float]:
        """Total RDP of the recorded steps at each order."""
        orders = self.orders if orders is None else [self._check_order(a) for a in orders]
        steps = self._steps_tuples()
        if self._core is not None:
            return list(self._core.compute_rdp(self.noise_type, self.bound_type, steps, orders))
        return _rdp.compute_rdp(self.noise_type, self.bound_type, steps, orders)

    def _epsilon(self, delta: float, steps) -> Tuple[float, float]:
        if not steps or all(n == 0 for _, _, n in steps):
            return 0.0, self.orders[0]
        args = (self.noise_type, self.bound_type, steps, delta, self.search, self.orders, self.order_min,
                self.order_max, self.precision, self.max_iterations)
        if self._core is not None:
            return tuple(self._core.get_epsilon(*args))
        noise, bound, steps_, delta_, search, orders, lo, hi, prec, iters = args
        return _rdp.get_epsilon(noise, bound, steps_, delta_, search, orders, lo, hi, prec, iters)

    def get_epsilon(self, delta: float) -> float:
        """ε of everything recorded so far, at δ (0 before any step)."""
        return self.get_epsilon_and_order(delta)[0]

    def get_epsilon_and_order(self, delta: float) -> Tuple[float, float]:
        delta = check_probability("delta", delta, allow_one=False)
        eps, order = self._epsilon(delta, self._steps_tuples())
        return float(eps), float(order)

    def get_noise_multiplier(
        self,
        noise_multiplier_key: str,
        target_epsilon: float,
        target_delta: float,
        sampling_rate: float,
        num_iterations: float,
        noise_multiplier_min: float = 0.0,
        noise_multiplier_max: float = 10.0,
        noise_multiplier_precision: float = 0.01,
        num_steps: Optional[int] = None,
    ) -> float:
        """The smallest noise scale (within ``noise_multiplier_precision``) whose ε is ≤ ``target_epsilon``.

        As in the seed, ``num_iterations`` counts epochs: the number of steps (lots) is
        ``int(num_iterations / sampling_rate)``; pass ``num_steps=`` to give the steps directly.
        The search is a bisection that only ever returns a scale it evaluated with ε ≤ target,
        so the result is never optimistic. The recorded steps are left unchanged.
        """
        if noise_multiplier_key != self.noise_key:
            raise ValueError(f"noise_multiplier_key must be {self.noise_key!r} for noise_type={self.noise_type!r}, got {noise_multiplier_key!r}")
        target_epsilon, delta, q, num_steps, lo, hi, precision = noise_search_arguments(
            target_epsilon, target_delta, sampling_rate, num_iterations, noise_multiplier_min, noise_multiplier_max,
            noise_multiplier_precision, num_steps)

        def meets(scale: float) -> bool:
            return self._epsilon(delta, [(scale, q, float(num_steps))])[0] <= target_epsilon

        return smallest_noise_meeting(meets, lo, hi, precision,
                                      f"target_epsilon={target_epsilon} at target_delta={delta}")

    def __getstate__(self):
        # the compiled module is not picklable: re-import it on unpickling (copies, MPI/ipyparallel engines)
        state = dict(self.__dict__)
        state["_core"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._core = _cpp() if self.backend == "cpp" else None

    def __repr__(self):
        return (f"GeneralMomentAccountant(noise_type={self.noise_type!r}, search={self.search!r}, "
                f"bound_type={self.bound_type!r}, backend={self.backend!r}, steps={self.num_steps})")
