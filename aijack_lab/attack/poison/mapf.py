"""MPAF, model poisoning from fake clients (Cao and Gong, CVPR Workshops 2022); AIJack's ``MAPFClientWrapper``.

Fake clients drag the global model toward an attacker-chosen base model of low accuracy: each
round they upload the direction from the current global model to the base model, scaled up by
``lam`` so that it outweighs the genuine clients in the average.
"""
from typing import Optional, Sequence, Union

import torch

from ...manager import BaseManager
from ...utils.seeding import make_generator
from ...utils.validation import check_positive
from ..fl_utils import gradients_to_parameters


class MAPFClientWrapper(BaseManager):
    """``MAPFClientWrapper(lam=3).attach(FedAVGClient)`` (paper Code S-16).

    The attacked client uploads ``lam · (θ_global - θ_base) / lr``: after the server's step
    ``θ -= lr · Σ w_i g_i`` the global model moves ``w · lam`` of the way to the base model.

    Args:
        lam: the scale λ (> 0).
        base_model_parameters: the base model (a list of tensors shaped like the model's
            parameters, or a ``torch.nn.Module``); None draws one with N(0, 1) entries from ``seed``.
        seed: seed of the random base model (fake clients with the same seed share it).
    """

    def __init__(
        self,
        lam: float = 3.0,
        base_model_parameters: Optional[Union[Sequence[torch.Tensor], torch.nn.Module]] = None,
        seed: Optional[int] = 0,
    ):
        super().__init__(lam=lam, base_model_parameters=base_model_parameters, seed=seed)
        self.lam = check_positive("lam", lam)
        if isinstance(base_model_parameters, torch.nn.Module):
            base_model_parameters = [p.detach().clone() for p in base_model_parameters.parameters()]
        elif base_model_parameters is not None:
            base_model_parameters = list(base_model_parameters)
            for i, t in enumerate(base_model_parameters):
                if not torch.is_tensor(t):
                    raise TypeError(f"base_model_parameters[{i}] must be a tensor, got {type(t).__name__}")
                if t.is_floating_point() and not torch.isfinite(t).all():
                    raise ValueError(f"base_model_parameters[{i}] has NaN or inf entries")
        self.base_model_parameters = base_model_parameters
        self.seed = seed

    def base_for(self, model: torch.nn.Module):
        params = list(model.parameters())
        if self.base_model_parameters is None:
            gen = make_generator(self.seed)
            return [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]
        if len(self.base_model_parameters) != len(params):
            raise ValueError(
                f"base_model_parameters has {len(self.base_model_parameters)} tensors but the model has {len(params)}"
            )
        for i, (b, p) in enumerate(zip(self.base_model_parameters, params)):
            if b.shape != p.shape:
                raise ValueError(f"base_model_parameters[{i}] has shape {tuple(b.shape)}, the model {tuple(p.shape)}")
        return [b.detach().clone().to(p.dtype) for b, p in zip(self.base_model_parameters, params)]

    def extend(self, cls):
        manager = self

        class MAPFClient(cls):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.lam = manager.lam
                self.base_model_parameters = manager.base_for(self.model)

            def upload_gradients(self):
                return [
                    self.lam * (glob - base) / self.lr
                    for glob, base in zip(self.prev_parameters, self.base_model_parameters)
                ]

            def upload_parameters(self):
                return gradients_to_parameters(self.prev_parameters, self.upload_gradients(), self.lr)

        return MAPFClient
