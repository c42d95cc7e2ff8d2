"""Randomness by argument: a seed scopes torch's RNG without leaking into global state."""
import contextlib
from typing import Iterator, Optional

import torch


@contextlib.contextmanager
def seeded(seed: Optional[int]) -> Iterator[None]:
    """Run the block with torch's CPU RNG seeded by ``seed`` and restore the outer state after.

    ``seed=None`` leaves the RNG alone. Model construction inside the block is reproducible:
    ``with seeded(0): model = Net()`` gives the same weights every time.
    """
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


def make_generator(seed: Optional[int]) -> Optional[torch.Generator]:
    """A ``torch.Generator`` seeded by ``seed`` (None gives None, i.e. the global RNG)."""
    if seed is None:
        return None
    gen = torch.Generator()
    gen.manual_seed(int(seed))
    return gen
