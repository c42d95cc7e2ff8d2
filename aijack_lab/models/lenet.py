"""The small sigmoid LeNet that gradient-inversion papers attack (DLG, iDLG), sized for 8x8 digits.

Sigmoid activations are smooth and keep the last layer's inputs positive, the setting in which
DLG and iDLG were shown; ``batch_norm=True`` adds the BN layers GradInversion's prior uses.
"""
from torch import nn

from ..utils.seeding import seeded


class LeNetDigits(nn.Module):
    """Two 3x3 convolutions with sigmoids and a linear head for (N, 1, 8, 8) inputs.

    ``conv`` and ``lin`` are the representation and the classifier; ``bn_layers`` lists the
    batch-norm layers (empty unless ``batch_norm``).
    """

    def __init__(self, channels: int = 12, num_classes: int = 10, batch_norm: bool = False):
        super().__init__()
        layers = [nn.Conv2d(1, channels, 3, padding=1)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(channels))
        layers += [nn.Sigmoid(), nn.Conv2d(channels, channels, 3, padding=1, stride=2)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(channels))
        layers += [nn.Sigmoid(), nn.Flatten()]
        self.conv = nn.Sequential(*layers)
        self.lin = nn.Sequential(nn.Linear(channels * 4 * 4, num_classes))

    @property
    def bn_layers(self):
        return [m for m in self.conv if isinstance(m, nn.BatchNorm2d)]

    def forward(self, x):
        return self.lin(self.conv(x))


def make_lenet_digits(seed: int = 0, **kwargs) -> LeNetDigits:
    """A freshly initialised :class:`LeNetDigits` whose weights depend only on ``seed``."""
    with seeded(seed):
        return LeNetDigits(**kwargs)
