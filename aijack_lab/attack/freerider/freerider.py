"""Delta-weight free riding (Fraboni et al., "Free-rider Attacks on Model Aggregation in Federated
Learning", AISTATS 2021).

A free rider never trains. It uploads the last global step (the difference of the two last global
models it received) plus Gaussian noise ``N(mu, sigma²)`` so that its update looks alive, and claims
its dataset's size for the aggregation weight.
"""
from typing import Dict, List, Optional, Sequence

import torch

from ...manager import BaseManager
from ...utils.seeding import make_generator
from ...utils.validation import check_finite, check_positive
from ..fl_utils import claimed_num_samples, flatten_update, gradients_to_parameters


class FreeRiderClientManager(BaseManager):
    """``FreeRiderClientManager(mu=0, sigma=1.0).attach(FedAVGClient)`` (paper Code S-17).

    Args:
        mu, sigma: mean and standard deviation of the Gaussian noise added to each uploaded entry.
        seed: seed of the noise.
    """

    def __init__(self, mu: float = 0.0, sigma: float = 1.0, seed: Optional[int] = 0):
        super().__init__(mu=mu, sigma=sigma, seed=seed)
        self.mu = check_finite("mu", mu)
        self.sigma = check_positive("sigma", sigma, allow_zero=True)
        self.seed = seed

    def extend(self, cls):
        manager = self

        class FreeRiderClient(cls):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                seed = None if manager.seed is None else manager.seed + 15485863 * (1 + int(self.user_id))
                self._noise_generator = make_generator(seed)
                self.prev_parameters_to_generate_fake_gradients = None
                self._downloads = 0
                self.local_train_calls = 0

            def local_train(self, local_epoch, criterion, trainloader, optimizer, communication_id=0):
                """No training: the data is never read; the claimed sample count is the dataset's size."""
                self.local_train_calls += 1
                self.num_samples = claimed_num_samples(trainloader)
                return []

            def _noise(self, like: torch.Tensor) -> torch.Tensor:
                noise = torch.randn(like.shape, generator=self._noise_generator, dtype=like.dtype)
                return manager.sigma * noise + manager.mu

            def upload_gradients(self):
                current = self.prev_parameters
                previous = self.prev_parameters_to_generate_fake_gradients
                if previous is None:
                    return [self._noise(p) for p in current]
                return [(before - now) / self.lr + self._noise(now) for before, now in zip(previous, current)]

            def upload_parameters(self):
                return gradients_to_parameters(self.prev_parameters, self.upload_gradients(), self.lr)

            def download(self, payload):
                synced = [p.clone() for p in self.prev_parameters] if self._downloads > 0 else None
                super().download(payload)
                self._downloads += 1
                self.prev_parameters_to_generate_fake_gradients = synced

        return FreeRiderClient


def update_statistics(updates: Sequence[Sequence[torch.Tensor]], reference: Optional[Sequence[torch.Tensor]] = None) -> List[Dict[str, float]]:
    """Per-client statistics of one round's uploads, the features a server can use to spot free riders.

    Returns one dict per update: ``norm`` (L2), ``std`` (of its entries) and, with a ``reference``
    update (e.g. the previous round's aggregate), ``cosine`` to it. A delta-weight free rider's
    upload is the previous aggregate plus noise: with little noise its cosine is ~1, with much
    noise its norm and std stand out.
    """
    ref = None if reference is None else flatten_update(reference)
    stats = []
    for update in updates:
        v = flatten_update(update)
        row = {"norm": float(v.norm()), "std": float(v.std())}
        if ref is not None:
            if ref.shape != v.shape:
                raise ValueError(f"reference has {ref.numel()} entries, an update has {v.numel()}")
            denom = float(v.norm() * ref.norm())
            row["cosine"] = float(v @ ref) / denom if denom > 0 else 0.0
        stats.append(row)
    return stats
