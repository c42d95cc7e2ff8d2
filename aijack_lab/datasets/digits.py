"""scikit-learn's bundled handwritten digits as torch tensors."""
from typing import Tuple

import numpy as np
import torch

from ..utils.validation import check_in_range


def load_digits(
    test_size: float = 0.25, seed: int = 0
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return ``X_train, y_train, X_test, y_test``.

    Images are float32 tensors of shape (N, 1, 8, 8) scaled to [0, 1] (the raw data is 0..16);
    labels are int64 in 0..9. The split is stratified and fixed by ``seed``.
    """
    from sklearn.datasets import load_digits as _load
    from sklearn.model_selection import train_test_split

    check_in_range("test_size", test_size, 0.0, 1.0, low_open=True, high_open=True)
    data = _load()
    x = (data.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = data.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_size, random_state=seed, stratify=y)
    return (
        torch.from_numpy(np.ascontiguousarray(x_tr)),
        torch.from_numpy(y_tr),
        torch.from_numpy(np.ascontiguousarray(x_te)),
        torch.from_numpy(y_te),
    )
