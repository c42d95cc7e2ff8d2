"""How close a reconstruction is to the private data (used by the inversion tests and panels)."""
import math

import torch


def _pairwise_mse(x_rec: torch.Tensor, x_true: torch.Tensor) -> torch.Tensor:
    return ((x_rec[:, None] - x_true[None]) ** 2).flatten(2).mean(-1)


def reconstruction_mse(x_rec: torch.Tensor, x_true: torch.Tensor, match: bool = True) -> float:
    """Mean squared error per pixel between two batches.

    A batch is recovered only up to the order of its samples, so with ``match`` each
    reconstruction is paired with a distinct original to minimise the total error (Hungarian).
    """
    x_rec, x_true = torch.as_tensor(x_rec).detach().float(), torch.as_tensor(x_true).detach().float()
    if x_rec.shape != x_true.shape:
        raise ValueError(f"x_rec has shape {tuple(x_rec.shape)} but x_true has {tuple(x_true.shape)}")
    if not match or x_rec.shape[0] == 1:
        return ((x_rec - x_true) ** 2).mean().item()
    from scipy.optimize import linear_sum_assignment

    cost = _pairwise_mse(x_rec, x_true)
    rows, cols = linear_sum_assignment(cost.numpy())
    return cost[rows, cols].mean().item()


def matching_order(x_rec: torch.Tensor, x_true: torch.Tensor):
    """Index ``j[i]`` of the original paired with reconstruction ``i`` (as in :func:`reconstruction_mse`)."""
    from scipy.optimize import linear_sum_assignment

    cost = _pairwise_mse(torch.as_tensor(x_rec).detach().float(), torch.as_tensor(x_true).detach().float())
    rows, cols = linear_sum_assignment(cost.numpy())
    order = [0] * len(rows)
    for r, c in zip(rows, cols):
        order[r] = int(c)
    return order


def psnr(x_rec: torch.Tensor, x_true: torch.Tensor, data_range: float = 1.0, match: bool = True) -> float:
    """Peak signal-to-noise ratio in dB from :func:`reconstruction_mse` (inf for an exact copy)."""
    mse = reconstruction_mse(x_rec, x_true, match=match)
    return float("inf") if mse == 0 else 10.0 * math.log10(data_range ** 2 / mse)
