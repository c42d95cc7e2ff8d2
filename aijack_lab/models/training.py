"""Seeded supervised training used by panels, tests and examples."""
from typing import Callable, Optional

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ..utils.progress import ProgressCallback, report_progress
from ..utils.seeding import make_generator
from ..utils.validation import check_positive, check_positive_int
from .digits import make_digits_model


def train_classifier(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    epochs: int = 10,
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
    optimizer_cls: Callable = torch.optim.Adam,
    progress: Optional[ProgressCallback] = None,
) -> nn.Module:
    """Train ``model`` in place with cross-entropy; the batch order depends only on ``seed``."""
    check_positive_int("epochs", epochs)
    check_positive("lr", lr)
    check_positive_int("batch_size", batch_size)
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} rows but y has {len(y)}")
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True, generator=make_generator(seed))
    optimizer = optimizer_cls(model.parameters(), lr=lr)
    criterion = nn.CrossEntropyLoss()
    model.train()
    for epoch in range(epochs):
        for xb, yb in loader:
            optimizer.zero_grad()
            criterion(model(xb), yb).backward()
            optimizer.step()
        report_progress(progress, epoch + 1, epochs)
    model.eval()
    return model


def train_digits_model(
    kind: str = "cnn", epochs: int = 10, seed: int = 0, progress: Optional[ProgressCallback] = None
) -> nn.Module:
    """A digits classifier trained on ``load_digits(seed=0)``'s training split (≈97% test accuracy for the CNN)."""
    from ..datasets import load_digits

    x_train, y_train, _, _ = load_digits()
    model = make_digits_model(kind, seed=seed)
    return train_classifier(model, x_train, y_train, epochs=epochs, seed=seed, progress=progress)


def train_logistic_regression(
    X: torch.Tensor, y: torch.Tensor, num_classes: Optional[int] = None, l2_reg: float = 1e-3,
    seed: int = 0, max_iter: int = 200,
) -> nn.Module:
    """Multinomial logistic regression (an ``nn.Linear``) fitted to the optimum of
    ``mean cross-entropy + (l2_reg/2)·||θ||²`` by full-batch L-BFGS (what influence functions assume)."""
    from ..utils.seeding import seeded

    check_positive("l2_reg", l2_reg, allow_zero=True)
    if len(X) != len(y) or len(X) == 0:
        raise ValueError(f"X has {len(X)} rows and y {len(y)}; they must match and be non-empty")
    k = int(num_classes if num_classes is not None else int(y.max()) + 1)
    with seeded(seed):
        model = nn.Linear(X.shape[1], k)
    opt = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(X), y) + 0.5 * l2_reg * sum((p ** 2).sum() for p in model.parameters())
        loss.backward()
        return loss

    opt.step(closure)
    return model
