"""Shared pieces of the horizontal-FL panels (not a panel module: the leading underscore keeps it
out of ``load_all_panels``).

Each FL panel runs one module-level ``run_*`` function and its Code view is that function's own
source (``inspect.getsource``) after ``CODE_HEADER``, so the code shown is exactly the code run.
"""
import inspect
from typing import Callable, Iterable, Optional

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from aijack_lab.collaborative import (
    DSFLAPI, DSFLClient, DSFLServer, FedAVGAPI, FedAVGClient, FedAVGServer, FedEXPServer, FedGEMSAPI,
    FedGEMSClient, FedGEMSServer, FedKDClient, FedMDAPI, FedMDClient, FedMDServer, FedProxAPI,
    FedProxClient, MOONClient,
)
from aijack_lab.datasets import load_digits, make_client_dataloaders, partition_dirichlet, partition_iid
from aijack_lab.models import make_digits_model

CODE_HEADER = """\
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from aijack_lab.collaborative import (
    DSFLAPI, DSFLClient, DSFLServer, FedAVGAPI, FedAVGClient, FedAVGServer, FedEXPServer, FedGEMSAPI,
    FedGEMSClient, FedGEMSServer, FedKDClient, FedMDAPI, FedMDClient, FedMDServer, FedProxAPI,
    FedProxClient, MOONClient,
)
from aijack_lab.datasets import load_digits, make_client_dataloaders, partition_dirichlet, partition_iid
from aijack_lab.models import make_digits_model
"""


def federated_digits(num_clients, partition="iid", alpha=0.5, seed=0, public_size=0, batch_size=32):
    """Digits split among clients (IID or Dirichlet non-IID); the first ``public_size`` training
    samples are held out as a public set. Returns loaders, test data, public data, label counts."""
    X_train, y_train, X_test, y_test = load_digits()
    public = None
    if public_size:
        public = (X_train[:public_size], y_train[:public_size])
        X_train, y_train = X_train[public_size:], y_train[public_size:]
    if partition == "iid":
        parts = partition_iid(len(X_train), num_clients, seed=seed)
    else:
        parts = partition_dirichlet(y_train, num_clients, alpha=alpha, seed=seed)
    loaders = make_client_dataloaders(X_train, y_train, parts, batch_size=batch_size, seed=seed)
    label_counts = [torch.bincount(y_train[torch.as_tensor(p)], minlength=10).tolist() for p in parts]
    return loaders, (X_test, y_test), public, label_counts


def heterogeneous_models(num_clients, seed=0):
    """Clients with different architectures: MLPs of growing width and a small CNN, in turn."""
    models = []
    for i in range(num_clients):
        if i % 3 == 0:
            models.append(make_digits_model("mlp", seed=seed + i, hidden=16))
        elif i % 3 == 1:
            models.append(make_digits_model("mlp", seed=seed + i, hidden=32))
        else:
            models.append(make_digits_model("cnn", seed=seed + i, channels=4))
    return models


def sub_progress(progress, part, parts):
    """A progress callback for run ``part`` of ``parts`` consecutive runs (None stays None)."""
    if progress is None:
        return None
    return lambda step, total: progress(part * total + step, parts * total)


def code_view(functions: Iterable[Callable], call: str) -> str:
    body = "\n\n".join(inspect.getsource(f) for f in [sub_progress, *functions])
    return f"{CODE_HEADER}\n\n{body}\n\n{call}\n"


def kwargs_text(values: dict, names: Iterable[str]) -> str:
    return ", ".join(f"{n}={values[n]!r}" for n in names)


def plot_label_counts(ax, label_counts):
    import numpy as np
    from matplotlib import colormaps

    counts = np.asarray(label_counts)
    bottom = np.zeros(counts.shape[0])
    cmap = colormaps["tab10"]
    for label in range(counts.shape[1]):
        ax.bar(np.arange(counts.shape[0]), counts[:, label], bottom=bottom, color=cmap(label), label=str(label))
        bottom += counts[:, label]
    ax.set_xlabel("client")
    ax.set_ylabel("samples per label")
    ax.set_title("client data", fontsize=9)
