"""Privacy accountants side by side: ε and time per query, aijack_lab vs Opacus, in one run.

For each (σ, q, steps, δ): aijack_lab's ``PRVAccountant`` (add-or-remove, and the removal pair alone
as Opacus computes it), Opacus's ``PRVAccountant`` (defaults eps_error=0.01, delta_error=δ/1000),
aijack_lab's RDP ``GeneralMomentAccountant`` (C++, integer orders 2..72) and ``GDPAccountant`` (CLT,
an approximation), and the exact ε for q = 1. Each PRV query starts from a fresh accountant (no
cache); times are medians of ``--repeats``, and only the ratio of the two PRV times is meaningful.

    .venv/bin/python benchmarks/bench_dp_accountants.py [--threads 1] [--repeats 3]

Needs Opacus for its columns (benchmark-only, never a runtime or test dependency).
"""
import argparse
import math
import statistics
import time
import warnings

from aijack_lab.defense.dp.accountant import GeneralMomentAccountant
from aijack_lab.defense.dp.gdp import GDPAccountant, epsilon_from_mu
from aijack_lab.defense.dp.prv import PRVAccountant

GRID = [
    (1.5, 0.04, 2250, 1e-5),
    (1.0, 0.01, 1000, 1e-5),
    (0.8, 0.02, 500, 1e-6),
    (2.0, 0.1, 100, 1e-5),
    (1.1, 0.004, 10000, 1e-5),
    (1.0, 1.0, 10, 1e-5),
]


def timed(fn, repeats):
    times, value = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return value, statistics.median(times)


def ours_prv(sigma, q, steps, delta, neighboring):
    acc = PRVAccountant(neighboring=neighboring)
    acc.add_step_info({"sigma": sigma}, q, steps)
    return acc.get_epsilon(delta)


def opacus_prv(sigma, q, steps, delta):
    from opacus.accountants import PRVAccountant as OpacusPRV

    acc = OpacusPRV()
    acc.history = [(sigma, q, steps)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(acc.get_epsilon(delta))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the accountants use numpy only)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    try:
        import opacus  # noqa: F401

        have_opacus = True
    except ImportError:
        have_opacus = False
        print("(Opacus not installed: its columns are skipped)")
    ours_prv(1.0, 0.1, 10, 1e-5, "remove")  # import scipy.special once, outside the timings
    if have_opacus:
        opacus_prv(1.0, 0.1, 10, 1e-5)

    print(f"\nε per accountant; PRV times in ms (median of {args.repeats})\n")
    print("| σ | q | steps | δ | PRV add/remove | PRV remove | Opacus PRV | |Δ| | ms ours (remove) | ms Opacus | speed-up | RDP | GDP (CLT) | exact (q=1) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for sigma, q, steps, delta in GRID:
        both, _ = timed(lambda: ours_prv(sigma, q, steps, delta, "add_or_remove"), args.repeats)
        rem, t_rem = timed(lambda: ours_prv(sigma, q, steps, delta, "remove"), args.repeats)
        if have_opacus:
            op, t_op = timed(lambda: opacus_prv(sigma, q, steps, delta), args.repeats)
            op_cols = f"{op:.5f} | {abs(rem - op):.1e} | {t_rem * 1e3:.0f} | {t_op * 1e3:.0f} | {t_op / t_rem:.2f}x"
        else:
            op_cols = f"- | - | {t_rem * 1e3:.0f} | - | -"
        rdp = GeneralMomentAccountant()
        rdp.add_step_info({"sigma": sigma}, q, steps)
        gdp = GDPAccountant()
        gdp.add_step_info({"sigma": sigma}, q, steps)
        exact = f"{epsilon_from_mu(math.sqrt(steps) / sigma, delta):.5f}" if q == 1.0 else "-"
        print(f"| {sigma} | {q} | {steps} | {delta:g} | {both:.5f} | {rem:.5f} | {op_cols} | "
              f"{rdp.get_epsilon(delta):.5f} | {gdp.get_epsilon(delta):.5f} | {exact} |")


if __name__ == "__main__":
    main()
