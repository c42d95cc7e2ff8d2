"""FedAVG through aijack_lab vs a plain PyTorch loop doing the same training, measured in one run.

4 IID clients x 5 rounds x 1 local epoch on digits, SGD(lr=0.1, momentum=0.9), batch 32.
The plain loop trains each client's copy and averages the parameters by hand; both use the same
seeds, so they should reach the same accuracy. Target: aijack_lab <= 1.5x the plain loop's time.

    .venv/bin/python benchmarks/bench_fedavg.py [--threads 1] [--repeats 5]
"""
import argparse
import statistics
import time

import torch
from torch import nn

from aijack_lab.collaborative import FedAVGAPI, FedAVGClient, FedAVGServer
from aijack_lab.datasets import load_digits, make_client_dataloaders, partition_iid
from aijack_lab.models import make_digits_model
from aijack_lab.utils import evaluate_accuracy

N_CLIENTS, ROUNDS, LOCAL_EPOCHS, KIND = 4, 5, 1, "cnn"


def setup(data):
    x_tr, y_tr, _, _ = data
    parts = partition_iid(len(x_tr), N_CLIENTS, seed=0)
    loaders = make_client_dataloaders(x_tr, y_tr, parts, batch_size=32, seed=0)
    return parts, loaders


def run_aijack(data):
    _, loaders = setup(data)
    clients = [FedAVGClient(make_digits_model(KIND, seed=0), user_id=i) for i in range(N_CLIENTS)]
    server = FedAVGServer(clients, make_digits_model(KIND, seed=0))
    opts = [torch.optim.SGD(c.parameters(), lr=0.1, momentum=0.9) for c in clients]
    start = time.perf_counter()
    FedAVGAPI(server, clients, nn.CrossEntropyLoss(), opts, loaders,
              num_communication=ROUNDS, local_epoch=LOCAL_EPOCHS).run()
    elapsed = time.perf_counter() - start
    return elapsed, evaluate_accuracy(server.server_model, data[2:])


def run_plain(data):
    parts, loaders = setup(data)
    models = [make_digits_model(KIND, seed=0) for _ in range(N_CLIENTS)]
    global_model = make_digits_model(KIND, seed=0)
    opts = [torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9) for m in models]
    crit = nn.CrossEntropyLoss()
    sizes = torch.tensor([len(p) for p in parts], dtype=torch.float32)
    weights = sizes / sizes.sum()
    start = time.perf_counter()
    for _ in range(ROUNDS):
        for m in models:
            m.load_state_dict(global_model.state_dict())
        for m, loader, opt in zip(models, loaders, opts):
            m.train()
            for _ in range(LOCAL_EPOCHS):
                for xb, yb in loader:
                    opt.zero_grad()
                    crit(m(xb), yb).backward()
                    opt.step()
        with torch.no_grad():
            for name, p in global_model.named_parameters():
                p.copy_(sum(w * dict(m.named_parameters())[name] for w, m in zip(weights, models)))
    elapsed = time.perf_counter() - start
    return elapsed, evaluate_accuracy(global_model, data[2:])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_digits()
    run_aijack(data), run_plain(data)  # warm-up
    ours, plain = [], []
    for _ in range(args.repeats):  # interleaved, so both see the same machine load
        ours.append(run_aijack(data))
        plain.append(run_plain(data))
    t_ours = statistics.median(t for t, _ in ours)
    t_plain = statistics.median(t for t, _ in plain)
    print(f"FedAVG, {N_CLIENTS} clients x {ROUNDS} rounds x {LOCAL_EPOCHS} local epoch, {KIND}, "
          f"{args.threads} torch thread(s), median of {args.repeats}\n")
    print("| run | time (s) | test accuracy | ratio to plain loop |")
    print("|---|---|---|---|")
    print(f"| plain PyTorch loop | {t_plain:.3f} | {plain[-1][1]:.3f} | 1.00x |")
    print(f"| aijack_lab FedAVGAPI | {t_ours:.3f} | {ours[-1][1]:.3f} | {t_ours / t_plain:.2f}x |")


if __name__ == "__main__":
    main()
