"""FedProxAPI: the FedAVG loop with FedProx clients, recording each round's client drift."""
from typing import List, Optional

import torch

from ...utils.metrics import evaluate_accuracy
from ...utils.validation import check_positive
from ..fedavg import FedAVGAPI


def client_drift(global_parameters, client_models) -> List[float]:
    """L2 distance between each client's model and the global parameters it started the round from."""
    drifts = []
    for model in client_models:
        sq = 0.0
        for p, g in zip(model.parameters(), global_parameters):
            sq += float(((p.detach() - g) ** 2).sum())
        drifts.append(sq ** 0.5)
    return drifts


class FedProxAPI(FedAVGAPI):
    """``FedProxAPI(server, clients, criterion, optimizers, dataloaders).run()`` (paper Code S-11).

    Same arguments, hooks, engines and ``history`` as ``FedAVGAPI``; each round's entry also has
    ``client_drift`` (‖w_k − w_t‖ per client after local training), ``mean_client_drift`` and, with
    a ``validation_dataloader``, ``client_accuracies`` (each local model before aggregation).
    ``mu``, if given, overrides every client's proximal coefficient.

    A client whose update has NaN/inf entries stops the run with a ValueError naming it (the
    server's ``receive``); the global model keeps the previous round's parameters.
    """

    def __init__(self, server, clients, criterion, local_optimizers, local_dataloaders, *args, mu: Optional[float] = None, **kwargs):
        super().__init__(server, clients, criterion, local_optimizers, local_dataloaders, *args, **kwargs)
        for i, client in enumerate(clients):
            if not hasattr(client, "proximal_term"):
                raise TypeError(f"clients[{i}] is a {type(client).__name__}, not a FedProxClient")
        if mu is not None:
            check_positive("mu", mu, allow_zero=True)
            for client in clients:
                client.mu = float(mu)
        self._drift: List[float] = []
        self._client_acc: Optional[List[float]] = None

    def local_train(self, com_cnt: int) -> List[List[float]]:
        start = [p.detach().clone() for p in self.server.server_model.parameters()]
        losses = super().local_train(com_cnt)
        self._drift = client_drift(start, [c.model for c in self.clients])
        self._client_acc = (
            [evaluate_accuracy(c.model, self.validation_dataloader) for c in self.clients]
            if self.validation_dataloader is not None else None
        )
        return losses

    def _end_round(self, info, total_rounds):
        info = dict(info)
        info["client_drift"] = list(self._drift)
        info["mean_client_drift"] = sum(self._drift) / len(self._drift) if self._drift else float("nan")
        info["client_accuracies"] = self._client_acc
        super()._end_round(info, total_rounds)
