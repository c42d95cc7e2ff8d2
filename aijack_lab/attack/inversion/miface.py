"""MI-FACE model inversion (Fredrikson, Jha and Ristenpart, CCS 2015).

Given white-box access to a classifier, gradient descent on the input minimises

    c(x) = 1 - f_label(x) + AuxTerm(x)

(``f_label``: the model's confidence in ``target_label``) and after each step applies
``Process`` (a denoiser, a projection onto the valid range, ...). The result is an input the
model regards as a typical member of the class: for a model trained on faces it resembles the
person, for digits the class's average shape.
"""
from typing import Callable, Optional, Sequence, Tuple

import torch
from torch import nn

from ...utils.validation import check_finite, check_positive, check_positive_int
from ..base import BaseAttacker


def _zero(x):
    return 0.0


def _identity(x):
    return x


def clip_process(lower: float = 0.0, upper: float = 1.0) -> Callable:
    """A ``process_func`` that keeps the reconstruction in the valid input range."""

    def process(x):
        return x.clamp(lower, upper)

    return process


def smooth_process(weight: float = 0.2, lower: float = 0.0, upper: float = 1.0) -> Callable:
    """A denoising ``process_func``: blend each pixel with its 3x3 neighbourhood mean, then clip.

    ``weight`` is the share of the neighbourhood mean (0 keeps the image as is).
    """
    w = check_finite("weight", weight)
    if not 0.0 <= w <= 1.0:
        raise ValueError(f"weight must be in [0, 1], got {weight}")

    def process(x):
        if x.dim() != 4:
            return x.clamp(lower, upper)
        c = x.shape[1]
        kernel = torch.full((c, 1, 3, 3), 1.0 / 9.0, dtype=x.dtype)
        blurred = nn.functional.conv2d(nn.functional.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=c)
        return ((1 - w) * x + w * blurred).clamp(lower, upper)

    return process


def l2_prior(coef: float, reference: Optional[torch.Tensor] = None) -> Callable:
    """An ``auxterm_func``: ``coef`` times the mean squared distance to ``reference`` (0 if None),
    e.g. the average of all classes' images as auxiliary knowledge of what inputs look like."""
    check_positive("coef", coef, allow_zero=True)

    def aux(x):
        ref = 0.0 if reference is None else reference
        return coef * ((x - ref) ** 2).mean()

    return aux


class MI_FACE(BaseAttacker):
    """MI-FACE: reconstruct a representative input of ``target_label`` from a trained model.

    Args:
        target_model: a torch classifier returning logits (or probabilities, see ``apply_softmax``).
        input_shape: shape of the reconstruction including the batch axis, e.g. ``(1, 1, 8, 8)``.
        target_label: the class to invert.
        lam: gradient step size.
        num_itr: the most gradient steps.
        auxterm_func: ``AuxTerm(x)``, an auxiliary prior added to the cost (default 0).
        process_func: ``Process(x)`` applied after each step (default: clip to [0, 1]).
        apply_softmax: turn the model's outputs into probabilities first (True for logits).
        patience: stop after this many steps without improving the best cost (``None``: never).
        gamma: stop once the cost falls to this value.
        init_x: the starting point (default zeros).

    ``attack()`` returns ``(x_result, log)``: the best reconstruction and the cost per step.
    """

    attack_params = ("target_label", "lam", "num_itr", "patience", "gamma")

    def __init__(
        self,
        target_model: nn.Module,
        input_shape: Sequence[int] = (1, 1, 8, 8),
        target_label: int = 0,
        lam: float = 0.1,
        num_itr: int = 100,
        auxterm_func: Callable = _zero,
        process_func: Optional[Callable] = None,
        apply_softmax: bool = True,
        patience: Optional[int] = None,
        gamma: float = 0.0,
        log_interval: int = 0,
    ):
        super().__init__(target_model)
        if not isinstance(target_model, nn.Module):
            raise TypeError(f"target_model must be a torch.nn.Module, got {type(target_model).__name__}")
        if not isinstance(input_shape, (tuple, list, torch.Size)) or len(input_shape) < 2:
            raise ValueError(f"input_shape must include the batch axis, e.g. (1, 1, 8, 8); got {input_shape!r}")
        for d in input_shape:
            check_positive_int("input_shape", d)
        if not callable(auxterm_func):
            raise TypeError("auxterm_func must be callable")
        if process_func is not None and not callable(process_func):
            raise TypeError("process_func must be callable")
        self.input_shape = tuple(int(d) for d in input_shape)
        self.target_label = target_label
        self.lam = lam
        self.num_itr = num_itr
        self.auxterm_func = auxterm_func
        self.process_func = clip_process() if process_func is None else process_func
        self.apply_softmax = apply_softmax
        self.patience = patience
        self.gamma = gamma
        self.log_interval = log_interval
        self._check_params()
        self._num_classes = None

    def _check_params(self) -> None:
        if isinstance(self.target_label, bool) or not isinstance(self.target_label, int):
            raise TypeError(f"target_label must be an int, got {type(self.target_label).__name__}")
        if self.target_label < 0:
            raise ValueError(f"target_label must be >= 0, got {self.target_label}")
        check_positive("lam", self.lam)
        check_positive_int("num_itr", self.num_itr)
        if self.patience is not None:
            check_positive_int("patience", self.patience)
        check_finite("gamma", self.gamma)
        check_positive_int("log_interval", self.log_interval, allow_zero=True)

    def attack(self, init_x: Optional[torch.Tensor] = None, progress=None) -> Tuple[torch.Tensor, list]:
        x = torch.zeros(self.input_shape) if init_x is None else init_x.detach().clone().float()
        if tuple(x.shape) != self.input_shape:
            raise ValueError(f"init_x has shape {tuple(x.shape)} but input_shape is {self.input_shape}")
        was_training = self.target_model.training
        self.target_model.eval()
        log = []
        best_x, best_cost, since_best = x.clone(), float("inf"), 0
        try:
            with torch.enable_grad():
                for it in range(self.num_itr):
                    x = x.detach().requires_grad_(True)
                    out = self.target_model(x)
                    if out.dim() != 2:
                        raise ValueError(f"target_model must return (batch, classes) outputs, got shape {tuple(out.shape)}")
                    if self.target_label >= out.shape[1]:
                        raise ValueError(f"target_label {self.target_label} is outside the model's {out.shape[1]} classes")
                    prob = torch.softmax(out, dim=1) if self.apply_softmax else out
                    cost = (1.0 - prob[:, self.target_label]).mean() + self.auxterm_func(x)
                    (grad,) = torch.autograd.grad(cost, x)
                    c = float(cost.item())
                    log.append(c)
                    if self.log_interval and (it + 1) % self.log_interval == 0:
                        print(f"iter {it + 1}: cost {c:.5f}")
                    if c < best_cost:
                        best_cost, best_x, since_best = c, x.detach().clone(), 0
                    else:
                        since_best += 1
                    if c <= self.gamma or (self.patience is not None and since_best >= self.patience):
                        break
                    with torch.no_grad():
                        x = self.process_func(x - self.lam * grad)
                    if progress is not None:
                        progress(it + 1, self.num_itr)
        finally:
            self.target_model.train(was_training)
        return best_x, log
