"""Splitting a dataset among federated clients: IID and Dirichlet non-IID (Hsu et al., 2019)."""
from typing import List, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from ..utils.seeding import make_generator
from ..utils.validation import check_positive, check_positive_int


def partition_iid(num_samples: int, num_clients: int, seed: int = 0) -> List[np.ndarray]:
    """Shuffle ``range(num_samples)`` and cut it into ``num_clients`` near-equal index arrays."""
    check_positive_int("num_clients", num_clients)
    check_positive_int("num_samples", num_samples)
    if num_clients > num_samples:
        raise ValueError(f"cannot give {num_clients} clients at least one of {num_samples} samples")
    perm = np.random.default_rng(seed).permutation(num_samples)
    return [np.sort(part) for part in np.array_split(perm, num_clients)]


def partition_dirichlet(
    labels: Sequence[int], num_clients: int, alpha: float, seed: int = 0, min_size: int = 1, max_tries: int = 100
) -> List[np.ndarray]:
    """Per class, split its indices among clients in proportions drawn from Dir(alpha).

    Small ``alpha`` (e.g. 0.1) gives each client few classes; large ``alpha`` approaches IID.
    Draws again (up to ``max_tries``) until every client has at least ``min_size`` samples.
    """
    check_positive_int("num_clients", num_clients)
    check_positive("alpha", alpha)
    labels = np.asarray(labels.numpy() if torch.is_tensor(labels) else labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    if num_clients * min_size > len(labels):
        raise ValueError(f"{len(labels)} samples cannot give {num_clients} clients {min_size} each")
    rng = np.random.default_rng(seed)
    for _ in range(max_tries):
        parts: List[list] = [[] for _ in range(num_clients)]
        for c in np.unique(labels):
            idx = rng.permutation(np.flatnonzero(labels == c))
            props = rng.dirichlet(np.full(num_clients, alpha))
            cuts = (np.cumsum(props)[:-1] * len(idx)).astype(int)
            for client, chunk in enumerate(np.split(idx, cuts)):
                parts[client].extend(chunk.tolist())
        if min(len(p) for p in parts) >= min_size:
            return [np.sort(np.array(p, dtype=np.int64)) for p in parts]
    raise ValueError(
        f"no Dirichlet(alpha={alpha}) draw gave every one of {num_clients} clients {min_size} samples; "
        "raise alpha or lower min_size"
    )


def make_client_dataloaders(
    x: torch.Tensor, y: torch.Tensor, partitions: Sequence[np.ndarray], batch_size: int = 32, seed: int = 0
) -> List[DataLoader]:
    """One shuffling DataLoader per client, each with its own seeded generator (reproducible runs)."""
    check_positive_int("batch_size", batch_size)
    loaders = []
    for i, idx in enumerate(partitions):
        if len(idx) == 0:
            raise ValueError(f"client {i} has no data")
        idx_t = torch.as_tensor(np.asarray(idx), dtype=torch.long)
        ds = TensorDataset(x[idx_t], y[idx_t])
        loaders.append(DataLoader(ds, batch_size=batch_size, shuffle=True, generator=make_generator(seed + i)))
    return loaders
