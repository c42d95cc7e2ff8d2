"""A digits MLP (64-32-32-C) cut in two for split learning."""
from typing import Tuple

from torch import nn

from ..utils.seeding import seeded


def split_digits_mlp(cut: int = 1, num_classes: int = 10, seed: int = 0) -> Tuple[nn.Module, nn.Module]:
    """``(bottom, top)``: the feature party's layers before the cut and the label party's after it.

    ``cut`` counts hidden layers on the feature side: 1 -> the cut-layer activation is the first
    hidden layer (32 units), 2 -> the second one.
    """
    if cut not in (1, 2):
        raise ValueError(f"cut must be 1 or 2 hidden layers on the feature side, got {cut}")
    with seeded(seed):
        layers = [nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, num_classes)]
    split = 3 if cut == 1 else 5
    return nn.Sequential(*layers[:split]), nn.Sequential(*layers[split:])
