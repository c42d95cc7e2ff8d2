"""Measuring what a representation reveals: a learned inversion decoder (the attack MID answers).

An attacker who observes representations ``z = f(x)`` (e.g. the bottleneck of a VIB, or the cut
layer of a split model) and can query ``f`` on auxiliary data of its own trains a decoder
``z -> x`` on those pairs and applies it to the victim's representations (He, Zhang, Lee,
"Model inversion attacks against collaborative inference", ACSAC 2019). The lower its error, the
more the representation leaks about the input.
"""
from typing import Callable, Optional

import torch
from torch import nn

from ...utils.progress import report_progress
from ...utils.seeding import seeded
from ...utils.validation import check_positive, check_positive_int


def train_inversion_decoder(representation_fn: Callable[[torch.Tensor], torch.Tensor], x_aux: torch.Tensor,
                            hidden: int = 128, epochs: int = 300, lr: float = 1e-2, seed: Optional[int] = 0,
                            progress=None) -> nn.Module:
    """Train a decoder ``z -> x`` on ``(representation_fn(x_aux), x_aux)`` by full-batch Adam on MSE.

    The decoder is an MLP ending in a sigmoid (inputs in [0, 1]) that outputs ``x_aux``'s shape.
    """
    if not callable(representation_fn):
        raise TypeError("representation_fn must be callable as representation_fn(x) -> z")
    if not torch.is_tensor(x_aux) or x_aux.dim() < 2 or len(x_aux) == 0:
        raise ValueError("x_aux must be a non-empty batch tensor (N, ...)")
    hidden = check_positive_int("hidden", hidden)
    epochs = check_positive_int("epochs", epochs)
    lr = check_positive("lr", lr)
    with torch.no_grad():
        z = representation_fn(x_aux).detach().reshape(len(x_aux), -1)
    target = x_aux.reshape(len(x_aux), -1)
    with seeded(seed):
        decoder = nn.Sequential(nn.Linear(z.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, target.shape[1]),
                                nn.Sigmoid(), nn.Unflatten(1, tuple(x_aux.shape[1:])))
    optimizer = torch.optim.Adam(decoder.parameters(), lr=lr)
    for epoch in range(epochs):
        optimizer.zero_grad()
        loss = ((decoder(z) - x_aux) ** 2).mean()
        loss.backward()
        optimizer.step()
        report_progress(progress, epoch + 1, epochs)
    decoder.eval()
    return decoder


def invert_representations(decoder: nn.Module, representation_fn: Callable[[torch.Tensor], torch.Tensor],
                           x_private: torch.Tensor):
    """``(x_rec, mse)``: the decoder's reconstruction of ``x_private`` from its representations."""
    with torch.no_grad():
        z = representation_fn(x_private).detach().reshape(len(x_private), -1)
        x_rec = decoder(z)
    return x_rec, float(((x_rec - x_private) ** 2).mean())
