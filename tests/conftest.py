"""Shared test set-up: one torch thread (on 2 cores a second busy process slows 2 threads 10-100x)."""
import os

os.environ.setdefault("MPLBACKEND", "Agg")

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits():
    from aijack_lab.datasets import load_digits

    return load_digits()
