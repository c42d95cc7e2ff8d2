"""Parallel engines for FL clients vs in-process training, measured in one run.

1. Training-heavy: 4 clients x DigitsCNN x 5 local epochs on digits. Wall time per round
   in-process vs on 2 ipyparallel engines (cluster start-up excluded, first round warm-up excluded)
   and on MPI (5 ranks: server + 4 clients, from the server's round times). Target: >= 1.6x
   speed-up with 2 engines on 2 free cores.
2. Overhead: 2 clients x DigitsMLP (2,410 parameters) x 1 local epoch: extra ms per round over
   in-process, and bytes moved per round.

    .venv/bin/python benchmarks/bench_engines.py [--threads 1] [--rounds 3] [--local-epochs 5] [--no-mpi]

Engines and ranks use --threads torch threads each. All ratios come from this run, so they
reflect this machine's free cores (on a shared 2-core box expect less than the target).
"""
import argparse
import os
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from aijack_lab.collaborative import FedAVGAPI, FedAVGClient, FedAVGServer
from aijack_lab.collaborative.core import named_parameters_dict
from aijack_lab.datasets import load_digits, make_client_dataloaders, partition_iid
from aijack_lab.engines.ipyparallel import IPyParallelEngine
from aijack_lab.models import make_digits_model

ROOT = Path(__file__).resolve().parents[1]


def make_api(data, n_clients, kind, local_epoch, rounds, engine=None, **kw):
    x_tr, y_tr, _, _ = data
    parts = partition_iid(len(x_tr), n_clients, seed=0)
    loaders = make_client_dataloaders(x_tr, y_tr, parts, batch_size=32, seed=0)
    clients = [FedAVGClient(make_digits_model(kind, seed=0), user_id=i + 1) for i in range(n_clients)]
    server = FedAVGServer(clients, make_digits_model(kind, seed=0))
    opts = [torch.optim.SGD(c.parameters(), lr=0.1, momentum=0.9) for c in clients]
    return FedAVGAPI(server, clients, nn.CrossEntropyLoss(), opts, loaders, num_communication=rounds,
                     local_epoch=local_epoch, engine=engine, **kw)


def per_round(history, skip_first=True):
    secs = [h["seconds"] for h in history]
    secs = secs[1:] if skip_first and len(secs) > 1 else secs
    return statistics.median(secs)


def mpi_per_round(n_clients, kind, local_epoch, rounds, threads):
    from aijack_lab.collaborative.mpi.launch import run_mpi_job

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "r.pt")
        run_mpi_job(str(ROOT / "examples" / "mpi_fedavg.py"), n=n_clients + 1,
                    args=["--rounds", rounds + 1, "--local-epoch", local_epoch, "--model", kind,
                          "--threads", threads, "--out", out], timeout=1200)
        history = torch.load(out)["history"]
    return per_round(history)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (after one warm-up round)")
    parser.add_argument("--local-epochs", type=int, default=5, help="local epochs of the training-heavy setting")
    parser.add_argument("--no-mpi", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_digits()
    rounds = args.rounds + 1
    rows = []

    with IPyParallelEngine(n_engines=2, threads_per_engine=args.threads) as engine:
        t0 = time.perf_counter()
        engine.start()
        startup = time.perf_counter() - t0

        # 1. training-heavy
        heavy = dict(n_clients=4, kind="cnn", local_epoch=args.local_epochs)
        local = per_round(make_api(data, rounds=rounds, **heavy).run())
        ipp = per_round(make_api(data, rounds=rounds, engine=engine, **heavy).run())
        rows.append((f"4 clients x CNN x {args.local_epochs} local epochs", "in-process", local, 1.0))
        rows.append(("", "ipyparallel, 2 engines", ipp, local / ipp))
        if not args.no_mpi:
            mpi = mpi_per_round(rounds=args.rounds, threads=args.threads, **heavy)
            rows.append(("", "MPI, 4 client ranks", mpi, local / mpi))

        # 2. overhead with a tiny model
        tiny = dict(n_clients=2, kind="mlp", local_epoch=1)
        local_t = per_round(make_api(data, rounds=rounds, **tiny).run())
        marks = []  # bytes moved after each round; the first round also ships the clients' data once
        ipp_api = make_api(data, rounds=rounds, engine=engine,
                           on_round=lambda api, info: marks.append(engine.bytes_sent + engine.bytes_received), **tiny)
        ipp_t = per_round(ipp_api.run())
        moved = (marks[-1] - marks[0]) / (len(marks) - 1)
        model = make_digits_model("mlp", seed=0)
        model_bytes = len(pickle.dumps(named_parameters_dict(model)))
        tiny_rows = [("in-process", local_t, 0.0, 0)]
        tiny_rows.append(("ipyparallel, 2 engines", ipp_t, (ipp_t - local_t) * 1e3, int(moved)))
        if not args.no_mpi:
            mpi_t = mpi_per_round(rounds=args.rounds, threads=args.threads, **tiny)
            update = {"round": 0, "update": [p.detach() for p in model.parameters()], "num_samples": 1, "loss": 0.0}
            mpi_bytes = tiny["n_clients"] * (len(pickle.dumps(update)) + model_bytes)
            tiny_rows.append(("MPI, 2 client ranks (bytes: pickled messages)", mpi_t, (mpi_t - local_t) * 1e3, mpi_bytes))

    print(f"\ncores: {os.cpu_count()}, torch threads per process: {args.threads}, "
          f"ipyparallel cluster start-up: {startup:.1f} s, python {sys.version.split()[0]}\n")
    print("| setting | engine | s / round | speed-up vs in-process |")
    print("|---|---|---|---|")
    for setting, name, secs, ratio in rows:
        print(f"| {setting} | {name} | {secs:.3f} | {ratio:.2f}x |")
    print("\n| tiny model (2 clients x MLP, 1 local epoch) | s / round | overhead ms / round | bytes / round |")
    print("|---|---|---|---|")
    for name, secs, over, nbytes in tiny_rows:
        print(f"| {name} | {secs:.3f} | {over:.1f} | {nbytes:,} |")


if __name__ == "__main__":
    main()
