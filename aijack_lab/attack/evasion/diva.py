"""DIVA: evasive attacks on edge models (Hao et al., MLSys 2022, "A Tale of Two Models").

A model deployed on an edge device is an adapted copy of the original (int8 quantized, pruned).
DIVA looks for inputs that the edge model misclassifies while the original still classifies them
correctly, so that the attack passes unnoticed when the edge's outputs are checked against the
original's. Projected gradient ascent, inside an L∞ ball of radius ``eps``, on

    L(x) = p_original(y | x) - c · p_edge(y | x)

(softmax probabilities of the true class). The edge model must be differentiable: build it with
:func:`make_edge_model`, which simulates int8 quantization (weights, and inputs of every layer
with a straight-through gradient, as dynamic quantization does) and magnitude pruning.
"""
import copy
from typing import Tuple

import torch
from torch import nn

from ...utils.validation import check_finite, check_positive, check_positive_int
from ..base import BaseAttacker


def _fake_quantize_symmetric(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-tensor symmetric quantization as torch's default int8 weight observer does it."""
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    scale = w.abs().max() / ((qmax - qmin) / 2)
    if scale == 0:
        return w.clone()
    return torch.clamp(torch.round(w / scale), qmin, qmax) * scale


class _QuantizedInput(nn.Module):
    """Runs ``layer`` on its input rounded to ``bits``-bit affine levels (the range of each batch,
    like dynamic quantization); the rounding passes gradients straight through."""

    def __init__(self, layer: nn.Module, bits: int, reduce_range: bool = False):
        super().__init__()
        self.layer = layer
        self.bits = bits
        self.reduce_range = reduce_range

    def forward(self, x):
        # affine per-tensor levels over the batch's range (widened to include 0), as torch's
        # dynamic quantization does (it uses one bit less, ``reduce_range``, on x86)
        levels = 2 ** (self.bits - 1) - 1 if self.reduce_range else 2 ** self.bits - 1
        lo = torch.clamp(x.detach().amin(), max=0.0)
        hi = torch.clamp(x.detach().amax(), min=0.0)
        scale = (hi - lo) / levels
        if scale > 0:
            zero_point = torch.round(-lo / scale)
            q = (torch.clamp(torch.round(x / scale) + zero_point, 0, levels) - zero_point) * scale
            x = x + (q - x).detach()
        return self.layer(x)


def make_edge_model(model: nn.Module, bits: int = 8, prune_ratio: float = 0.0, quantize_activations: bool = True,
                    reduce_range: bool = True) -> nn.Module:
    """A differentiable edge version of ``model`` (the original is not modified).

    Every ``nn.Linear``/``nn.Conv2d`` weight loses its ``prune_ratio`` smallest-magnitude entries
    (per layer), then is rounded to ``bits``-bit symmetric levels (per tensor); with
    ``quantize_activations`` each such layer's input is rounded to ``bits``-bit levels too
    (``bits - 1`` with ``reduce_range``, torch's x86 default). ``bits=0`` skips quantization
    (pruning only). With the defaults and no pruning, the outputs of an ``nn.Linear`` model equal
    those of ``torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)``
    (to float rounding) while staying differentiable.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(reduce_range, bool):
        raise TypeError(f"reduce_range must be True or False, got {reduce_range!r}")
    check_positive_int("bits", bits, allow_zero=True)
    if bits == 1 or bits > 16:
        raise ValueError(f"bits must be 0 (no quantization) or in 2..16, got {bits}")
    ratio = check_finite("prune_ratio", prune_ratio)
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"prune_ratio must be in [0, 1), got {prune_ratio}")
    edge = copy.deepcopy(model)
    edge.eval()

    def convert(module: nn.Module):
        for name, child in list(module.named_children()):
            if isinstance(child, (nn.Linear, nn.Conv2d)):
                with torch.no_grad():
                    w = child.weight
                    if ratio > 0:
                        k = int(ratio * w.numel())
                        if k > 0:
                            thresh = w.abs().flatten().kthvalue(k).values
                            w.mul_((w.abs() > thresh).to(w.dtype))
                    if bits:
                        w.copy_(_fake_quantize_symmetric(w, bits))
                if bits and quantize_activations:
                    setattr(module, name, _QuantizedInput(child, bits, reduce_range))
            else:
                convert(child)

    convert(edge)
    for p in edge.parameters():
        p.requires_grad_(False)
    return edge


class DIVAWhiteBoxAttacker(BaseAttacker):
    """White-box DIVA: projected gradient ascent on ``p_original(y|x) - c · p_edge(y|x)``.

    Args:
        target_model: the original torch model (logits).
        target_model_on_edge: its edge version, differentiable (see :func:`make_edge_model`).
        c: weight of the edge model's confidence in the objective.
        num_itr: gradient steps.
        eps: L∞ radius of the perturbation.
        lam: step size of each signed-gradient step.
        output_lower_bound, output_upper_bound: the valid input range.
    """

    attack_params = ("c", "num_itr", "eps", "lam", "output_lower_bound", "output_upper_bound")

    def __init__(
        self,
        target_model: nn.Module,
        target_model_on_edge: nn.Module,
        c: float = 1.0,
        num_itr: int = 100,
        eps: float = 0.2,
        lam: float = 0.01,
        output_lower_bound: float = 0.0,
        output_upper_bound: float = 1.0,
    ):
        super().__init__(target_model)
        if not isinstance(target_model, nn.Module):
            raise TypeError(f"target_model must be a torch.nn.Module, got {type(target_model).__name__}")
        if not isinstance(target_model_on_edge, nn.Module):
            raise TypeError(f"target_model_on_edge must be a torch.nn.Module, got {type(target_model_on_edge).__name__}")
        self.target_model_on_edge = target_model_on_edge
        self.c = c
        self.num_itr = num_itr
        self.eps = eps
        self.lam = lam
        self.output_lower_bound = output_lower_bound
        self.output_upper_bound = output_upper_bound
        self._check_params()
        self.log = []

    def _check_params(self) -> None:
        check_positive("c", self.c, allow_zero=True)
        check_positive_int("num_itr", self.num_itr)
        check_positive("eps", self.eps, allow_zero=True)
        check_positive("lam", self.lam)
        lo = check_finite("output_lower_bound", self.output_lower_bound)
        hi = check_finite("output_upper_bound", self.output_upper_bound)
        if lo >= hi:
            raise ValueError(f"output_lower_bound ({lo}) must be below output_upper_bound ({hi})")

    def attack(self, data: Tuple[torch.Tensor, torch.Tensor], progress=None) -> torch.Tensor:
        """Return the perturbed ``x`` for ``data = (x, y)``; ``self.log`` holds the mean objective per step."""
        if not (isinstance(data, (tuple, list)) and len(data) == 2):
            raise TypeError("attack expects a pair (x, y)")
        x, y = data
        if not (torch.is_tensor(x) and torch.is_tensor(y)):
            raise TypeError("x and y must be torch tensors")
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x has {x.shape[0]} rows but y has {y.shape[0]}")
        modes = (self.target_model.training, self.target_model_on_edge.training)
        self.target_model.eval()
        self.target_model_on_edge.eval()
        x0 = x.detach()
        x_adv = x0.clone()
        self.log = []
        try:
            with torch.enable_grad():
                for it in range(self.num_itr):
                    x_adv.requires_grad_(True)
                    p_orig = torch.softmax(self.target_model(x_adv), dim=1)
                    p_edge = torch.softmax(self.target_model_on_edge(x_adv), dim=1)
                    if not p_edge.requires_grad:
                        raise TypeError(
                            "target_model_on_edge is not differentiable (e.g. torch's quantize_dynamic); "
                            "build a simulated edge model with aijack_lab.attack.evasion.make_edge_model"
                        )
                    if y.min() < 0 or y.max() >= p_orig.shape[1]:
                        raise ValueError(f"labels must be in [0, {p_orig.shape[1] - 1}]")
                    idx = y.view(-1, 1)
                    objective = p_orig.gather(1, idx) - self.c * p_edge.gather(1, idx)
                    (grad,) = torch.autograd.grad(objective.sum(), x_adv)
                    self.log.append(objective.mean().item())
                    with torch.no_grad():
                        x_adv = x_adv + self.lam * grad.sign()
                        x_adv = torch.max(torch.min(x_adv, x0 + self.eps), x0 - self.eps)
                        x_adv = x_adv.clamp(self.output_lower_bound, self.output_upper_bound)
                    if progress is not None:
                        progress(it + 1, self.num_itr)
        finally:
            self.target_model.train(modes[0])
            self.target_model_on_edge.train(modes[1])
        return x_adv.detach()


@torch.no_grad()
def evasion_rates(target_model: nn.Module, target_model_on_edge: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict:
    """How often the edge model errs while the original is right (``"edge_only"``: DIVA's aim), and
    the two models' accuracies, on ``(x, y)``."""
    from ...utils.metrics import predict

    po = predict(target_model, x).argmax(1)
    pe = predict(target_model_on_edge, x).argmax(1)
    return {
        "edge_only": ((pe != y) & (po == y)).float().mean().item(),
        "original_accuracy": (po == y).float().mean().item(),
        "edge_accuracy": (pe == y).float().mean().item(),
        "disagreement": (po != pe).float().mean().item(),
    }
