"""Gradient inversion through aijack_lab vs a plain PyTorch loop doing the same math, in one run.

The victim is the sigmoid LeNet on one 8x8 digit (DLG, GS) or a batch of 4 through its BN variant
(GradInversion's BN prior). Both sides start from the same seeded noise and take the same steps, so
their per-step losses agree (the table shows the largest relative difference). Reported: optimisation
iterations per second (one objective evaluation = forward, gradient with a graph, distance,
backward to the dummy). Target: ratio ≈ 1 (no Python overhead per step beyond the plain loop).

    .venv/bin/python benchmarks/bench_inversion.py [--threads 1] [--repeats 5] [--iterations 100]
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from aijack_lab.attack import GradientInversion_Attack
from aijack_lab.datasets import load_digits
from aijack_lab.models import train_classifier
from aijack_lab.models.lenet import make_lenet_digits

CRIT = nn.CrossEntropyLoss()


def gradient(model, x, y):
    return [g.detach() for g in torch.autograd.grad(CRIT(model(x), y), list(model.parameters()))]


# -- the plain loops -------------------------------------------------------------------------------


def plain_dlg(model, received, iters, batch, num_classes=10, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((batch, 1, 8, 8), generator=gen).requires_grad_(True)
    y = torch.randn((batch, num_classes), generator=gen).requires_grad_(True)
    opt = torch.optim.Adam([x, y], lr=0.1)
    params = list(model.parameters())
    losses = []
    for _ in range(iters):
        opt.zero_grad()
        loss = CRIT(model(x), F.softmax(y, dim=-1))
        grads = torch.autograd.grad(loss, params, create_graph=True)
        dist = sum(((g - r) ** 2).sum() for g, r in zip(grads, received))
        x.grad, y.grad = torch.autograd.grad(dist, [x, y])
        opt.step()
        losses.append(dist.item())
    return losses


def plain_gs(model, received, iters, labels, tv=1e-4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((len(labels), 1, 8, 8), generator=gen).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=0.1)
    params = list(model.parameters())
    losses = []
    for _ in range(iters):
        opt.zero_grad()
        grads = torch.autograd.grad(CRIT(model(x), labels), params, create_graph=True)
        dot = sum((g * r).sum() for g, r in zip(grads, received))
        n1 = sum((g * g).sum() for g in grads)
        n2 = sum((r * r).sum() for r in received)
        dist = 1 - dot / (n1.sqrt() * n2.sqrt() + 1e-12)
        dist = dist + tv * ((x[..., :, 1:] - x[..., :, :-1]).abs().mean() + (x[..., 1:, :] - x[..., :-1, :]).abs().mean())
        (x.grad,) = torch.autograd.grad(dist, [x])
        opt.step()
        losses.append(dist.item())
    return losses


def plain_bn(model, received, iters, labels, coef=0.01, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((len(labels), 1, 8, 8), generator=gen).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=0.1)
    params = list(model.parameters())
    stats, losses = [], []

    def hook(m, inp, _out):
        stats.append((m, inp[0].mean(dim=(0, 2, 3)), inp[0].var(dim=(0, 2, 3), unbiased=False)))

    saved = [(m, m.momentum, m.running_mean.clone(), m.running_var.clone()) for m in model.bn_layers]
    for m in model.bn_layers:
        m.momentum = 0.0
    hooks = [m.register_forward_hook(hook) for m in model.bn_layers]
    try:
        for _ in range(iters):
            opt.zero_grad()
            stats.clear()
            grads = torch.autograd.grad(CRIT(model(x), labels), params, create_graph=True)
            dist = sum(((g - r) ** 2).sum() for g, r in zip(grads, received))
            for m, mu, var in stats:
                dist = dist + coef * (torch.norm(mu - m.running_mean, 2) + torch.norm(var - m.running_var, 2))
            (x.grad,) = torch.autograd.grad(dist, [x])
            opt.step()
            losses.append(dist.item())
    finally:
        for h in hooks:
            h.remove()
        for m, mom, rm, rv in saved:
            m.momentum = mom
            m.running_mean.copy_(rm)
            m.running_var.copy_(rv)
    return losses


# -- the cases ---------------------------------------------------------------------------------------


def cases(data, iters):
    x_tr, y_tr, x_te, y_te = data
    net = make_lenet_digits(seed=0)
    g1 = gradient(net, x_te[:1], y_te[:1])
    labels1 = y_te[:1]
    bn = make_lenet_digits(seed=0, batch_norm=True)
    train_classifier(bn, x_tr, y_tr, epochs=3, seed=0)
    bn.train()
    xb, yb = x_te[:4], y_te[:4]
    g4 = gradient(bn, xb, yb)
    adam = dict(optimizer_class=torch.optim.Adam, lr=0.1, num_iteration=iters, seed=0)

    def ours(make, *args, **kwargs):
        def run():
            attacker = make()
            attacker.attack(*args, **kwargs)
            return attacker.log_loss
        return run

    return [
        ("DLG (l2, label optimised), batch 1",
         ours(lambda: GradientInversion_Attack(net, (1, 8, 8), **adam), g1),
         lambda: plain_dlg(net, g1, iters, 1)),
        ("GS (cosine + TV), batch 1",
         ours(lambda: GradientInversion_Attack(net, (1, 8, 8), distancename="cossim", tv_reg_coef=1e-4,
                                               optimize_label=False, **adam), g1, labels=labels1),
         lambda: plain_gs(net, g1, iters, labels1)),
        ("GradInversion BN prior, batch 4",
         ours(lambda: GradientInversion_Attack(bn, (1, 8, 8), optimize_label=False, bn_reg_coef=0.01,
                                               bn_reg_layers=bn.bn_layers, **adam), g4, batch_size=4, labels=yb),
         lambda: plain_bn(bn, g4, iters, yb)),
    ]


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_digits()
    print(f"Gradient inversion, Adam, {args.iterations} iterations, {args.threads} torch thread(s), "
          f"median of {args.repeats}\n")
    print("| case | plain loop (it/s) | aijack_lab (it/s) | ratio (aijack_lab / plain) | max rel. loss diff |")
    print("|---|---|---|---|---|")
    for name, ours, plain in cases(data, args.iterations):
        ours(), plain()  # warm-up
        t_ours, t_plain = [], []
        for _ in range(args.repeats):  # interleaved, so both see the same machine load
            t, x_ours = timed(ours)
            t_ours.append(t)
            t, x_plain = timed(plain)
            t_plain.append(t)
        ips_ours = args.iterations / statistics.median(t_ours)
        ips_plain = args.iterations / statistics.median(t_plain)
        diff = max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(x_ours, x_plain))
        print(f"| {name} | {ips_plain:.0f} | {ips_ours:.0f} | {ips_ours / ips_plain:.2f} | {diff:.1e} |")


if __name__ == "__main__":
    main()
