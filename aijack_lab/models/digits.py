"""Models sized for 8x8 digits: fast enough that a panel's default run takes seconds."""
import torch
from torch import nn

from ..utils.seeding import seeded


class DigitsMLP(nn.Module):
    """64-32-10 perceptron (the layer sizes the DP benchmarks use)."""

    def __init__(self, hidden: int = 32, num_classes: int = 10, in_features: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, x):
        return self.net(x)


class DigitsCNN(nn.Module):
    """Two 3x3 convolutions and a linear head for (N, 1, 8, 8) inputs.

    ``conv`` and ``lin`` are the representation and classifier parts (the names Soteria's
    listing uses: ``target_layer_name="lin.0.weight"``).
    """

    def __init__(self, channels: int = 16, num_classes: int = 10):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, stride=2),
            nn.ReLU(),
            nn.Flatten(),
        )
        self.lin = nn.Sequential(nn.Linear(channels * 4 * 4, num_classes))

    def forward(self, x):
        return self.lin(self.conv(x))


def make_digits_model(kind: str = "cnn", seed: int = 0, **kwargs) -> nn.Module:
    """A freshly initialised digits model whose weights depend only on ``seed``."""
    kinds = {"cnn": DigitsCNN, "mlp": DigitsMLP}
    if kind not in kinds:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {sorted(kinds)}")
    with seeded(seed):
        return kinds[kind](**kwargs)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
