"""Helpers shared by panels: cached bundled data and trained models, small plotting utilities."""
import functools

import numpy as np


@functools.lru_cache(maxsize=None)
def digits():
    """``load_digits()`` once per session (the split is fixed)."""
    from aijack_lab.datasets import load_digits

    return load_digits()


@functools.lru_cache(maxsize=8)
def digits_model(kind: str = "cnn", epochs: int = 10, seed: int = 0):
    """A trained digits model, trained once per (kind, epochs, seed) and reused (deterministic)."""
    from aijack_lab.models import train_digits_model

    return train_digits_model(kind, epochs=epochs, seed=seed)


def show_digit_row(axes, images, titles=None, cmap="gray"):
    """Draw 8x8 (or any 2-D) images on a row of axes with optional titles."""
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i >= len(images):
            continue
        img = np.asarray(images[i]).squeeze()
        ax.imshow(img, cmap=cmap, vmin=0.0, vmax=1.0)
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
