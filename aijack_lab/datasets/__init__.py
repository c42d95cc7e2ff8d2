"""Bundled data (sklearn digits, breast cancer, wine), local MNIST IDX files, and client partitions.

Nothing here downloads anything.
"""
from .digits import load_digits
from .tabular import load_breast_cancer, load_wine
from .idx import load_mnist_idx, read_idx
from .partition import partition_iid, partition_dirichlet, make_client_dataloaders

__all__ = [
    "load_digits",
    "load_breast_cancer",
    "load_wine",
    "load_mnist_idx",
    "read_idx",
    "partition_iid",
    "partition_dirichlet",
    "make_client_dataloaders",
]
