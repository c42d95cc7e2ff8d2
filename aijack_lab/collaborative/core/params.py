"""Moving model parameters between parties as lists of tensors."""
from typing import Dict, List, Sequence, Union

import torch


def parameters_to_list(model: torch.nn.Module) -> List[torch.Tensor]:
    """Detached copies of ``model.parameters()`` in order."""
    return [p.detach().clone() for p in model.parameters()]


def named_parameters_dict(model: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """Detached copies of the model's parameters by name (buffers such as BN statistics stay local)."""
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def load_parameters(model: torch.nn.Module, params: Union[Sequence[torch.Tensor], Dict[str, torch.Tensor]]) -> None:
    """Copy a parameter list, or a dict of parameters by name, into ``model`` in place."""
    if isinstance(params, dict):
        named = dict(model.named_parameters())
        missing = sorted(set(named) - set(params))
        if missing:
            raise ValueError(f"received parameters lack {missing}")
        params = [params[name] for name in named]
    own = list(model.parameters())
    if len(own) != len(params):
        raise ValueError(f"expected {len(own)} parameter tensors, got {len(params)}")
    with torch.no_grad():
        for p, new in zip(own, params):
            if p.shape != new.shape:
                raise ValueError(f"parameter shape mismatch: model has {tuple(p.shape)}, received {tuple(new.shape)}")
            p.copy_(new)


def check_finite_update(update: Sequence, who: str) -> None:
    """Reject an update with NaN/inf entries, naming the party that sent it (non-tensors are skipped)."""
    for i, t in enumerate(update):
        if torch.is_tensor(t) and t.is_floating_point() and not torch.isfinite(t).all():
            raise ValueError(f"{who} sent a non-finite update (tensor {i} has NaN or inf); the round is stopped")


def update_nbytes(update) -> int:
    """Bytes an update occupies on the wire (tensors by element size; objects by their own ``nbytes``)."""
    if isinstance(update, dict):
        update = list(update.values())
    total = 0
    for t in update:
        if torch.is_tensor(t):
            total += t.numel() * t.element_size()
        elif hasattr(t, "nbytes"):
            total += int(t.nbytes)
    return total
