"""A small generator for 8x8 digits (used by the GAN attack)."""
from torch import nn

from ..utils.seeding import seeded


class DigitsGenerator(nn.Module):
    """Maps noise of shape (N, nz) to (N, 1, 8, 8) images in [0, 1] with two hidden layers."""

    def __init__(self, nz: int = 16, hidden: int = 128):
        super().__init__()
        self.nz = nz
        self.net = nn.Sequential(
            nn.Linear(nz, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, 64),
            nn.Sigmoid(),
        )

    def forward(self, z):
        return self.net(z.reshape(z.shape[0], -1)).reshape(-1, 1, 8, 8)


def make_digits_generator(nz: int = 16, seed: int = 0, **kwargs) -> DigitsGenerator:
    """A freshly initialised :class:`DigitsGenerator` whose weights depend only on ``seed``."""
    with seeded(seed):
        return DigitsGenerator(nz=nz, **kwargs)
