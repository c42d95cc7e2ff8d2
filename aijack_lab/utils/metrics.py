"""Evaluation helpers shared by the APIs, panels and tests."""
from typing import Iterable, Tuple, Union

import torch


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of rows whose arg-max equals the label."""
    if logits.shape[0] != labels.shape[0]:
        raise ValueError(f"logits have {logits.shape[0]} rows but labels have {labels.shape[0]}")
    if logits.shape[0] == 0:
        raise ValueError("accuracy of an empty batch is undefined")
    return (logits.argmax(dim=1) == labels).float().mean().item()


@torch.no_grad()
def predict(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Logits of ``model`` on ``x`` in eval mode (the model's mode is restored afterwards)."""
    was_training = model.training
    model.eval()
    try:
        outs = [model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(outs)


def evaluate_accuracy(
    model: torch.nn.Module,
    data: Union[Tuple[torch.Tensor, torch.Tensor], Iterable],
) -> float:
    """Accuracy of ``model`` on ``(x, y)`` tensors or on a dataloader of ``(x, y)`` batches."""
    if isinstance(data, tuple) and len(data) == 2 and torch.is_tensor(data[0]):
        x, y = data
        return accuracy(predict(model, x), y)
    correct, total = 0, 0
    for x, y in data:
        logits = predict(model, x)
        correct += (logits.argmax(dim=1) == y).sum().item()
        total += len(y)
    if total == 0:
        raise ValueError("evaluate_accuracy got an empty dataloader")
    return correct / total
