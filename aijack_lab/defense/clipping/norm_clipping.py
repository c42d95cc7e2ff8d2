"""Server-side norm clipping: every client's update is scaled down to an L2 norm of at most
``max_norm`` before averaging, which bounds what one (possibly boosted) malicious update can do.

Reference: Sun, Kairouz, Suresh and McMahan. Can You Really Backdoor Federated Learning? 2019.
"""
import math
from typing import List, Optional

import torch

from ...manager import BaseManager
from ...utils.validation import check_positive


def _norm(update) -> float:
    return math.sqrt(sum(float((t.detach().double() ** 2).sum()) for t in update))


class NormClippingServerManager(BaseManager):
    """``NormClippingServerManager(max_norm).attach(FedAVGServer)``.

    Clips each uploaded pseudo-gradient (or, for parameter uploads, each client's change from the
    current global model) to L2 norm ``max_norm``. ``max_norm=None`` uses the median norm of the
    round's updates (so at most half the clients are clipped, with no constant to tune).

    The server keeps ``update_norms`` and ``clip_factors`` (one list per round) for inspection.
    Needs plaintext tensor updates (it reads them; it does not compose with encrypted updates).
    """

    def __init__(self, max_norm: Optional[float] = None):
        super().__init__(max_norm=max_norm)
        self.max_norm = None if max_norm is None else check_positive("max_norm", max_norm)

    def extend(self, cls):
        manager = self

        class NormClippingServer(cls):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.update_norms: List[List[float]] = []
                self.clip_factors: List[List[float]] = []

            def receive(self, use_gradients: bool = True) -> None:
                super().receive(use_gradients)
                uploads = self.uploaded_gradients if use_gradients else self.uploaded_models
                for i, update in enumerate(uploads):
                    if not all(torch.is_tensor(t) for t in update):
                        raise TypeError(f"{self._client_name(i)}: norm clipping needs plaintext tensor updates")
                if use_gradients:
                    deltas = uploads
                else:
                    glob = [p.detach() for p in self.server_model.parameters()]
                    deltas = [[t - g for t, g in zip(update, glob)] for update in uploads]
                norms = [_norm(d) for d in deltas]
                bound = manager.max_norm
                if bound is None:
                    bound = float(torch.tensor(norms).median())
                factors = [1.0 if n <= bound or n == 0 else bound / n for n in norms]
                if use_gradients:
                    clipped = [[t * f for t in d] for d, f in zip(deltas, factors)]
                    self.uploaded_gradients = clipped
                else:
                    self.uploaded_models = [[g + t * f for g, t in zip(glob, d)] for d, f in zip(deltas, factors)]
                self.update_norms.append(norms)
                self.clip_factors.append(factors)

        return NormClippingServer
