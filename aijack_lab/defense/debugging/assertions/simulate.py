"""A synthetic detection stream for teaching model assertions: one object moving across frames,
with injected detector faults whose positions are known."""
from typing import Dict, List, Tuple

import numpy as np

from ....utils.validation import check_positive_int, check_probability


def simulate_detections(num_frames: int = 40, multibox_rate: float = 0.1, flicker_rate: float = 0.1,
                        seed: int = 0) -> Tuple[List[np.ndarray], Dict[str, List[int]]]:
    """Frames of ``[x1, y1, x2, y2]`` boxes for an object moving right, plus the injected faults.

    With probability ``multibox_rate`` a frame reports the object three times (jittered copies);
    with probability ``flicker_rate`` an interior frame loses it (never two misses in a row).
    Returns ``(frames, {"multibox": [...], "flicker": [...]})``.
    """
    check_positive_int("num_frames", num_frames)
    check_probability("multibox_rate", multibox_rate, allow_zero=True)
    check_probability("flicker_rate", flicker_rate, allow_zero=True)
    rng = np.random.default_rng(seed)
    frames, multibox, flicker = [], [], []
    for t in range(num_frames):
        box = np.array([[5.0 + 2 * t, 20.0, 25.0 + 2 * t, 40.0]]) + rng.normal(0, 0.4, (1, 4))
        r = rng.random()
        interior = 0 < t < num_frames - 1
        if interior and r < flicker_rate and (not flicker or flicker[-1] < t - 1):
            frames.append(np.zeros((0, 4)))
            flicker.append(t)
        elif r < flicker_rate + multibox_rate:
            frames.append(np.vstack([box, box + rng.normal(0, 1.0, (1, 4)), box + rng.normal(0, 1.0, (1, 4))]))
            multibox.append(t)
        else:
            frames.append(box)
    return frames, {"multibox": multibox, "flicker": flicker}
