"""Mondrian k-anonymity: aijack_lab's C++ Mondrian vs the `anonypy` package, measured in one run.

A census-like table with 2 continuous (age, income) + 1 categorical (job) quasi-identifiers and a
sensitive column, k=5, at 10k, 100k and 1M rows. aijack_lab is timed on the whole
``Mondrian(k).anonymize(...)`` (partitioning *and* the generalized DataFrame); anonypy on its
partitioning alone (``anonypy.Mondrian(...).partition(k)``), which is most of its time. anonypy is
skipped above ``--anonypy-max`` rows (1M rows would take it many minutes). Both results are checked
to be k-anonymous, and their information loss (NCP) is printed.
Targets: >= 50x anonypy; 100k rows in <= 0.7 s; 1M rows in <= 10 s.

    .venv/bin/python benchmarks/bench_kanonymity.py [--threads 1] [--sizes 10000 100000 1000000]
        [--anonypy-max 100000] [--repeats 3]
"""
import argparse
import os
import statistics
import time

import numpy as np
import pandas as pd

K = 5
QI = ["age", "income", "job"]
CONT = {"age": True, "income": True, "job": False}


def make_table(n, seed=0):
    from aijack_lab.datasets.tables import make_census_like

    return make_census_like(n, seed=seed)[["age", "income", "job", "disease"]]


def ncp_of_partitions(df, parts):
    """Normalized certainty penalty of a list of row-position arrays (same definition for both)."""
    pid = np.empty(len(df), dtype=np.int64)
    for i, p in enumerate(parts):
        pid[np.asarray(p)] = i
    g = df.assign(_pid=pid).groupby("_pid")
    sizes = g.size().to_numpy(float)
    total = 0.0
    for c in QI:
        if CONT[c]:
            width = df[c].max() - df[c].min()
            total += float(np.dot((g[c].max() - g[c].min()).to_numpy(float) / width, sizes))
        else:
            s = g[c].nunique().to_numpy(float)
            total += float(np.dot(np.where(s > 1, s / df[c].nunique(), 0.0), sizes))
    return total / (len(df) * len(QI))


def run_ours(df):
    from aijack_lab.defense.kanonymity import Mondrian

    m = Mondrian(k=K)
    start = time.perf_counter()
    out = m.anonymize(df, QI, "disease", CONT)
    elapsed = time.perf_counter() - start
    assert out.groupby(QI, observed=True).size().min() >= K
    return elapsed, m.get_final_partitions()


def run_anonypy(df):
    import anonypy

    d = df.copy()
    d["job"] = d["job"].astype("category")
    start = time.perf_counter()
    parts = anonypy.Mondrian(d, QI, "disease").partition(K)
    elapsed = time.perf_counter() - start
    assert min(len(p) for p in parts) >= K
    return elapsed, [d.index.get_indexer(p) for p in parts]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads (the Mondrian core is single-threaded)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--anonypy-max", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    run_ours(make_table(1000))  # warm-up (imports, first call)

    print(f"Mondrian k={K}, quasi-identifiers {QI} (2 continuous + 1 categorical), {args.threads} thread(s); "
          f"aijack_lab: median of {args.repeats} anonymize() calls, anonypy: one partition() call\n")
    print("| rows | aijack_lab (s) | rows/s | NCP | anonypy (s) | rows/s | NCP | speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        df = make_table(n)
        runs = [run_ours(df) for _ in range(args.repeats)]
        t_ours = statistics.median(t for t, _ in runs)
        ncp_ours = ncp_of_partitions(df, runs[-1][1])
        if n <= args.anonypy_max:
            t_peer, parts = run_anonypy(df)
            ncp_peer = ncp_of_partitions(df, parts)
            peer = f"{t_peer:.3f} | {n / t_peer:,.0f} | {ncp_peer:.4f} | {t_peer / t_ours:.0f}x"
        else:
            peer = "skipped | — | — | —"
        print(f"| {n:,} | {t_ours:.3f} | {n / t_ours:,.0f} | {ncp_ours:.4f} | {peer} |", flush=True)


if __name__ == "__main__":
    main()
