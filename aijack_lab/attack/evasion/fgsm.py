"""Fast Gradient Sign Method (Goodfellow, Shlens and Szegedy, ICLR 2015)."""
from typing import Tuple

import torch

from ...utils.validation import check_finite, check_positive
from ..base import BaseAttacker


class FGSMAttacker(BaseAttacker):
    """One signed-gradient step of size ``eps`` that increases the loss, clipped to the input range.

    Args:
        target_model: a torch model returning logits.
        criterion: loss taking ``(model(x), y)``, e.g. ``nn.CrossEntropyLoss()``.
        eps: L-infinity size of the perturbation.
        output_lower_bound, output_upper_bound: valid input range (digits here are in [0, 1]).
    """

    attack_params = ("eps", "output_lower_bound", "output_upper_bound")

    def __init__(
        self,
        target_model: torch.nn.Module,
        criterion,
        eps: float = 0.3,
        output_lower_bound: float = 0.0,
        output_upper_bound: float = 1.0,
    ):
        super().__init__(target_model)
        if not isinstance(target_model, torch.nn.Module):
            raise TypeError(f"target_model must be a torch.nn.Module, got {type(target_model).__name__}")
        if not callable(criterion):
            raise TypeError("criterion must be callable, e.g. nn.CrossEntropyLoss()")
        self.criterion = criterion
        self.eps = eps
        self.output_lower_bound = output_lower_bound
        self.output_upper_bound = output_upper_bound
        self._check_params()

    def _check_params(self) -> None:
        check_positive("eps", self.eps, allow_zero=True)
        lo = check_finite("output_lower_bound", self.output_lower_bound)
        hi = check_finite("output_upper_bound", self.output_upper_bound)
        if lo >= hi:
            raise ValueError(f"output_lower_bound ({lo}) must be below output_upper_bound ({hi})")

    def attack(self, data: Tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Return the adversarial version of ``x`` for ``data = (x, y)``."""
        if not (isinstance(data, (tuple, list)) and len(data) == 2):
            raise TypeError("attack expects a pair (x, y)")
        x, y = data
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x has {x.shape[0]} rows but y has {y.shape[0]}")
        was_training = self.target_model.training
        self.target_model.eval()
        try:
            x_adv = x.detach().clone().requires_grad_(True)
            loss = self.criterion(self.target_model(x_adv), y)
            (grad,) = torch.autograd.grad(loss, x_adv)
        finally:
            self.target_model.train(was_training)
        perturbed = x.detach() + self.eps * grad.sign()
        return perturbed.clamp(self.output_lower_bound, self.output_upper_bound)
