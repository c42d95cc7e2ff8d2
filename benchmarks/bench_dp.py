"""DP-SGD throughput and accountant latency: aijack_lab vs Opacus, measured in one run.

Models: the 64-32-10 MLP and the small CNN for 1x8x8 digits (``aijack_lab.models``); lots (batches)
of 64 drawn by Poisson sampling from the digits training split, σ = 1, C = 1, plain SGD.

- aijack_lab: the paper's Code 4 loop (``DPSGDManager.privatize``); each Poisson lot (expected 64)
  is one compute batch (``batch_size=None``), as Opacus processes each Poisson batch at once
  (with ``batch_size=64`` about half the lots spilled a handful of samples into a second batch).
  Per-sample gradients: ghost norms + one matmul for Linear, a gathered unfold + bmm for Conv2d
  (the first conv's forward is computed from the same unfolded input).
- Opacus ``PrivacyEngine.make_private`` in its default hooks mode (grad_sample_mode="hooks").
- torch.func ``vmap(grad)`` over the whole model, then clip/sum/noise by hand.
- the seed's way: micro-batches of one sample, one backward each, the sample's gradient clipped
  and added to the lot's sum (the seed's ``update_accum_grads`` takes one ``.item()`` per
  parameter for the norm and a ``mul`` + ``add_``; this rendering, one norm and ``add_(alpha=)``,
  measured ~3% faster, so it does not flatter the ratio).

Accountant: ε for σ=1.5, q=0.04, 2250 steps, δ=1e-5 — aijack_lab C++ and Python backends
(integer orders 2..72) vs Opacus's ``RDPAccountant.get_epsilon`` (its default 151 orders).

    .venv/bin/python benchmarks/bench_dp.py [--threads 1] [--repeats 5] [--epochs 4]

Needs Opacus (``pip install opacus``; benchmark-only, never a runtime or test dependency).
"""
import argparse
import statistics
import time
import warnings

import torch
from torch import nn, optim
from torch.utils.data import DataLoader, TensorDataset

from aijack_lab.datasets import load_digits
from aijack_lab.defense import DPSGDManager, GeneralMomentAccountant
from aijack_lab.models import make_digits_model

LOT, SIGMA, CLIP, LR = 64, 1.0, 1.0, 0.5


def run_aijack(kind, data, epochs):
    x, y = data
    model = make_digits_model(kind, seed=0)
    crit = nn.CrossEntropyLoss()
    acc = GeneralMomentAccountant()
    pm = DPSGDManager(acc, optim.SGD, l2_norm_clip=CLIP, dataset=TensorDataset(x, y), lot_size=LOT, batch_size=None, seed=0)
    dpopt, lot_loader, batch_loader = pm.privatize(noise_multiplier=SIGMA)
    opt = dpopt(model.parameters(), lr=LR)
    n = 0
    start = time.perf_counter()
    for _ in range(epochs):
        for x_lot, y_lot in lot_loader(opt):
            for xb, yb in batch_loader(TensorDataset(x_lot, y_lot)):
                opt.zero_grad()
                crit(model(xb), yb).backward()
                opt.step()
                n += len(yb)
    el = time.perf_counter() - start
    opt.dp_engine.close()
    return n / el


def run_opacus(kind, data, epochs):
    from opacus import PrivacyEngine

    x, y = data
    model = make_digits_model(kind, seed=0)
    crit = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=LR)
    loader = DataLoader(TensorDataset(x, y), batch_size=LOT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        engine = PrivacyEngine(accountant="rdp")
        model, opt, loader = engine.make_private(module=model, optimizer=opt, data_loader=loader,
                                                 noise_multiplier=SIGMA, max_grad_norm=CLIP)
    n = 0
    start = time.perf_counter()
    for _ in range(epochs):
        for xb, yb in loader:
            opt.zero_grad()
            crit(model(xb), yb).backward()
            opt.step()
            n += len(yb)
    return n / (time.perf_counter() - start)


def _noisy_step(model, grads, count, gen):
    with torch.no_grad():
        for p, g in zip(model.parameters(), grads):
            p -= LR * (g + torch.normal(0.0, SIGMA * CLIP, size=p.shape, generator=gen)) / count


def run_vmap(kind, data, epochs):
    from torch.func import functional_call, grad, vmap

    x, y = data
    model = make_digits_model(kind, seed=0)
    crit = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(0)

    def loss_one(params, xi, yi):
        return crit(functional_call(model, params, (xi.unsqueeze(0),)), yi.unsqueeze(0))

    per_sample = vmap(grad(loss_one), in_dims=(None, 0, 0))
    n_total, q = len(x), LOT / len(x)
    n = 0
    start = time.perf_counter()
    for _ in range(epochs):
        for _ in range(n_total // LOT):
            idx = torch.nonzero(torch.rand(n_total, generator=gen) < q).squeeze(1)
            params = {k: v.detach() for k, v in model.named_parameters()}
            gs = per_sample(params, x[idx], y[idx])
            flat = torch.cat([g.reshape(len(idx), -1) for g in gs.values()], 1)
            factor = (CLIP / (flat.norm(dim=1) + 1e-6)).clamp(max=1.0)
            _noisy_step(model, [torch.tensordot(factor, g, dims=1) for g in gs.values()], LOT, gen)
            n += len(idx)
    return n / (time.perf_counter() - start)


def run_microbatch(kind, data, epochs):
    x, y = data
    model = make_digits_model(kind, seed=0)
    crit = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(0)
    params = list(model.parameters())
    n_total, q = len(x), LOT / len(x)
    n = 0
    start = time.perf_counter()
    for _ in range(epochs):
        for _ in range(n_total // LOT):
            idx = torch.nonzero(torch.rand(n_total, generator=gen) < q).squeeze(1)
            acc = [torch.zeros_like(p) for p in params]
            for i in idx:
                model.zero_grad()
                crit(model(x[i:i + 1]), y[i:i + 1]).backward()
                norm = torch.sqrt(sum(p.grad.pow(2).sum() for p in params))
                f = min(1.0, CLIP / (float(norm) + 1e-6))
                for a, p in zip(acc, params):
                    a.add_(p.grad, alpha=f)
            _noisy_step(model, acc, LOT, gen)
            n += len(idx)
    return n / (time.perf_counter() - start)


def accountant_ms(repeats=20):
    out = {}
    for backend in ("cpp", "python"):
        acc = GeneralMomentAccountant(backend=backend)
        acc.add_step_info({"sigma": 1.5}, 0.04, 2250)
        acc.get_epsilon(1e-5)
        t = time.perf_counter()
        for _ in range(repeats):
            eps = acc.get_epsilon(1e-5)
        out[f"aijack_lab ({backend})"] = ((time.perf_counter() - t) / repeats * 1e3, eps)
    try:
        from opacus.accountants import RDPAccountant

        acc = RDPAccountant()
        acc.history = [(1.5, 0.04, 2250)]
        t = time.perf_counter()
        for _ in range(repeats):
            eps = acc.get_epsilon(1e-5)
        out["Opacus RDP"] = ((time.perf_counter() - t) / repeats * 1e3, eps)
    except ImportError:
        pass
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x, y, _, _ = load_digits()
    data = (x, y)
    try:
        import opacus  # noqa: F401

        runners = {"aijack_lab": run_aijack, "Opacus hooks": run_opacus}
    except ImportError:
        print("(Opacus not installed: its column is skipped)")
        runners = {"aijack_lab": run_aijack}
    runners.update({"torch.func vmap(grad)": run_vmap, "micro-batch of one (seed)": run_microbatch})
    rows = []
    for kind in ("mlp", "cnn"):
        for fn in runners.values():  # warm-up
            fn(kind, data, 1)
        res = {name: [] for name in runners}
        for _ in range(args.repeats):  # interleaved, so all see the same machine load
            for name, fn in runners.items():
                res[name].append(fn(kind, data, args.epochs if "micro" not in name else 1))
        rows.append((kind, {k: statistics.median(v) for k, v in res.items()}))
    print(f"\nDP-SGD samples/second, batch (lot) {LOT}, {args.threads} torch thread(s), median of {args.repeats}\n")
    names = list(runners)
    print("| model | " + " | ".join(names) + " | vs Opacus | vs micro-batch |")
    print("|---|" + "---|" * (len(names) + 2))
    for kind, r in rows:
        ours = r["aijack_lab"]
        vs_op = f"{ours / r['Opacus hooks']:.2f}x" if "Opacus hooks" in r else "n/a"
        vs_mb = f"{ours / r['micro-batch of one (seed)']:.1f}x"
        print(f"| {kind} | " + " | ".join(f"{r[n]:,.0f}" for n in names) + f" | {vs_op} | {vs_mb} |")
    acc = accountant_ms()
    print("\nAccountant: ε(σ=1.5, q=0.04, 2250 steps, δ=1e-5)\n")
    print("| accountant | ms per get_epsilon | ε |")
    print("|---|---|---|")
    for name, (ms, eps) in acc.items():
        print(f"| {name} | {ms:.3f} | {eps:.5f} |")
    if "Opacus RDP" in acc:
        print(f"\nC++ accountant speed-up vs Opacus: {acc['Opacus RDP'][0] / acc['aijack_lab (cpp)'][0]:.0f}x")


if __name__ == "__main__":
    main()
