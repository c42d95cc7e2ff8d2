"""Pixel-pattern triggers for backdoor attacks, their decomposition among colluding clients (DBA),
and the backdoor success rate."""
from typing import List, Optional, Sequence, Tuple

import torch

from ...utils.metrics import predict
from ...utils.validation import check_finite, check_positive_int


class PixelPatternTrigger:
    """A callable ``x -> x'`` that sets the given pixels of every image to ``value``.

    Args:
        pixels: ``(row, col)`` positions in the last two dimensions of the images.
        value: the pixel value written (digits are in [0, 1]).
    """

    def __init__(self, pixels: Sequence[Tuple[int, int]], value: float = 1.0):
        pixels = [tuple(p) for p in pixels]
        if not pixels:
            raise ValueError("pixels must name at least one (row, col) position")
        for p in pixels:
            if len(p) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in p):
                raise ValueError(f"pixels must be (row, col) pairs of non-negative ints, got {p!r}")
        self.pixels: List[Tuple[int, int]] = pixels
        self.value = check_finite("value", value)
        self._rows = torch.tensor([p[0] for p in pixels])
        self._cols = torch.tensor([p[1] for p in pixels])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(x) or x.dim() < 2:
            raise TypeError("a trigger applies to image tensors of shape (..., H, W)")
        h, w = x.shape[-2:]
        if int(self._rows.max()) >= h or int(self._cols.max()) >= w:
            raise ValueError(f"trigger pixels {self.pixels} fall outside images of size {h}x{w}")
        out = x.clone()
        out[..., self._rows, self._cols] = self.value
        return out

    def __repr__(self) -> str:
        return f"PixelPatternTrigger({self.pixels!r}, value={self.value!r})"


def digits_corner_trigger(value: float = 1.0) -> PixelPatternTrigger:
    """Four 3-pixel bars on the left and right borders of an 8x8 digit (pixels that are almost always 0)."""
    bars = [
        [(0, 0), (1, 0), (2, 0)],
        [(0, 7), (1, 7), (2, 7)],
        [(5, 0), (6, 0), (7, 0)],
        [(5, 7), (6, 7), (7, 7)],
    ]
    return PixelPatternTrigger([p for bar in bars for p in bar], value=value)


def decompose_trigger(trigger: PixelPatternTrigger, num_parts: int) -> List[PixelPatternTrigger]:
    """Split a global trigger into ``num_parts`` local triggers of consecutive pixels (DBA's decomposition)."""
    if not isinstance(trigger, PixelPatternTrigger):
        raise TypeError(f"trigger must be a PixelPatternTrigger, got {type(trigger).__name__}")
    check_positive_int("num_parts", num_parts)
    n = len(trigger.pixels)
    if num_parts > n:
        raise ValueError(f"cannot split a {n}-pixel trigger into {num_parts} parts")
    bounds = [round(i * n / num_parts) for i in range(num_parts + 1)]
    return [PixelPatternTrigger(trigger.pixels[a:b], trigger.value) for a, b in zip(bounds[:-1], bounds[1:])]


def backdoor_success_rate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, trigger, target_label: int) -> float:
    """Fraction of the samples not of ``target_label`` that ``model`` labels ``target_label`` once triggered."""
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} rows but y has {len(y)}")
    keep = y != target_label
    if not bool(keep.any()):
        raise ValueError("every sample already has target_label; the success rate is undefined")
    pred = predict(model, trigger(x[keep])).argmax(dim=1)
    return float((pred == target_label).float().mean())


def class_accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, label: int) -> float:
    """Accuracy of ``model`` on the samples of one class."""
    keep = y == label
    if not bool(keep.any()):
        raise ValueError(f"no sample has label {label}")
    return float((predict(model, x[keep]).argmax(dim=1) == label).float().mean())
