"""Optimizers that apply an aggregated (pseudo-)gradient to a model's parameters."""
import torch

_OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}


def make_parameter_optimizer(name: str, params, lr: float, **kwargs) -> torch.optim.Optimizer:
    key = str(name).lower()
    if key not in _OPTIMIZERS:
        raise ValueError(f"unknown optimizer type {name!r}; choose one of {sorted(_OPTIMIZERS)}")
    return _OPTIMIZERS[key](params, lr=lr, **kwargs)
