"""FoolsGold at the FedAVG server (paper Code S-22).

Reference: Fung, Yoon, Beschastnikh. The Limitations of Federated Learning in Sybil Settings.
RAID 2020 (arXiv:1808.04866), Algorithm 1.

Sybils that push one poisoning objective send updates that point the same way round after round,
while honest clients' data differ. The server sums each client's updates into a history ``H_i``,
takes the pairwise cosine similarities ``cs_ij`` of the histories, and gives client ``i`` the
learning-rate weight ``α_i = 1 - max_j cs_ij`` after two corrections: *pardoning* (an honest client
that merely resembles a sybil has ``cs_ij`` scaled by ``v_i / v_j``, where ``v = max_j cs_ij``), and a
logit squashing ``κ (ln(α / (1 - α)) + 0.5)`` clipped to [0, 1] after ``α`` is divided by its max.
"""
import math
from typing import List, Optional

import numpy as np
import torch

from ...manager import BaseManager
from ...utils.validation import check_positive


def foolsgold_weights(histories: torch.Tensor, kappa: float = 1.0) -> np.ndarray:
    """FoolsGold's weights from a (clients, parameters) matrix of update histories.

    Returns one weight per client in [0, 1] (not normalised); alike clients get weights near 0.
    """
    if not torch.is_tensor(histories) or histories.dim() != 2:
        raise TypeError("histories must be a 2-D tensor (clients, parameters)")
    n = histories.shape[0]
    if n < 2:
        raise ValueError(f"FoolsGold compares clients with each other: it needs at least two clients, got {n}")
    h = histories.double()
    unit = h / h.norm(dim=1, keepdim=True).clamp_min(1e-12)
    cs = (unit @ unit.T).numpy()
    np.fill_diagonal(cs, -np.inf)
    v = cs.max(axis=1)
    np.fill_diagonal(cs, 0.0)
    # pardoning: scale down the similarity to a client that is more sybil-like than oneself
    for i in range(n):
        for j in range(n):
            if i != j and v[j] > v[i] and v[j] > 0:
                cs[i, j] *= v[i] / v[j]
    np.fill_diagonal(cs, -np.inf)
    alpha = np.clip(1.0 - cs.max(axis=1), 0.0, 1.0)
    if alpha.max() <= 0:
        return np.zeros(n)
    alpha = alpha / alpha.max()
    alpha[alpha >= 1.0] = 0.99
    with np.errstate(divide="ignore"):
        alpha = kappa * (np.log(alpha / (1.0 - alpha)) + 0.5)
    alpha[~np.isfinite(alpha)] = 0.0  # log(0): a perfect sybil
    return np.clip(alpha, 0.0, 1.0)


def _flat(update) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1).double() for t in update])


class FoolsGoldServerManager(BaseManager):
    """``FoolsGoldServerManager().attach(FedAVGServer)``.

    Args:
        kappa: confidence of the logit squashing (κ > 0; 1 in the paper).

    The server keeps ``aggregate_historical_gradients`` (one flat history per client), ``cs``
    (the last cosine-similarity matrix), ``alpha`` (the last FoolsGold weights) and
    ``foolsgold_history`` (the weights of every round). A round's aggregation weights are the
    FoolsGold weights times the usual FedAVG weights, normalised; if every client gets weight
    zero the global model does not move that round.
    """

    def __init__(self, kappa: float = 1.0):
        super().__init__(kappa=kappa)
        self.kappa = check_positive("kappa", kappa)

    def extend(self, cls):
        manager = self

        class FoolsGoldServer(cls):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                if self.num_clients < 2:
                    raise ValueError(f"FoolsGold needs at least two clients, got {self.num_clients}")
                self.kappa = manager.kappa
                self.aggregate_historical_gradients: Optional[torch.Tensor] = None
                self.cs: Optional[np.ndarray] = None
                self.alpha: Optional[np.ndarray] = None
                self.foolsgold_history: List[List[float]] = []

            def _deltas(self, use_gradients: bool):
                uploads = self.uploaded_gradients if use_gradients else self.uploaded_models
                for i, update in enumerate(uploads):
                    if not all(torch.is_tensor(t) for t in update):
                        raise TypeError(f"{self._client_name(i)}: FoolsGold needs plaintext tensor updates")
                if use_gradients:
                    return [_flat(u) for u in uploads]
                glob = _flat(list(self.server_model.parameters()))
                return [glob - _flat(u) for u in uploads]  # the pseudo-gradient direction

            def update_foolsgold(self, use_gradients: bool = True) -> np.ndarray:
                deltas = torch.stack(self._deltas(use_gradients))
                if self.aggregate_historical_gradients is None:
                    self.aggregate_historical_gradients = torch.zeros_like(deltas)
                if self.aggregate_historical_gradients.shape != deltas.shape:
                    raise ValueError("the clients' updates changed shape between rounds")
                self.aggregate_historical_gradients += deltas
                h = self.aggregate_historical_gradients
                unit = h / h.norm(dim=1, keepdim=True).clamp_min(1e-12)
                self.cs = (unit @ unit.T).numpy()
                self.alpha = foolsgold_weights(h, self.kappa)
                self.foolsgold_history.append([float(a) for a in self.alpha])
                return self.alpha

            def update(self, use_gradients: bool = True) -> None:
                alpha = self.update_foolsgold(use_gradients)
                if not use_gradients and not (alpha > 0).any():
                    self.last_weights = [0.0] * self.num_clients  # nobody trusted: keep the global model
                    return
                super().update(use_gradients)

            def aggregation_weights(self) -> List[float]:
                base = super().aggregation_weights()
                if self.alpha is None:
                    return base
                w = [a * b for a, b in zip(self.alpha, base)]
                total = sum(w)
                if total <= 0 or not math.isfinite(total):
                    return [0.0] * len(w)
                return [x / total for x in w]

        return FoolsGoldServer
