"""FedAVG server: a weighted mean of the clients' updates."""
from typing import Dict, List, Optional, Sequence

import torch

from ...utils.validation import check_positive
from ..core import BaseServer, check_finite_update, load_parameters, named_parameters_dict, parameters_to_list
from ..optimizers import make_parameter_optimizer


class FedAVGServer(BaseServer):
    """Aggregates client uploads with weights ``n_k / n`` (client sample counts) unless ``weight`` is given.

    Aggregation uses only ``+`` and scalar ``*`` on the uploaded objects, so encrypted or sparse
    updates aggregate without the server reading them.

    Args:
        clients: the clients (or their ids, with a transport that fetches their uploads).
        global_model: the global model.
        lr: server step size on the aggregated pseudo-gradient (match the clients' ``lr``).
        optimizer_type: "sgd" or "adam" for the server step.
        server_side_update: if False, the server only aggregates and sends the aggregate back.
        weight: fixed aggregation weights (one per client, normalised here).
    """

    def __init__(
        self,
        clients: List,
        global_model: torch.nn.Module,
        server_id: int = 0,
        lr: float = 0.1,
        optimizer_type: str = "sgd",
        server_side_update: bool = True,
        optimizer_kwargs: Optional[Dict] = None,
        weight: Optional[Sequence[float]] = None,
        device: str = "cpu",
    ):
        super().__init__(clients, global_model, server_id=server_id)
        self.lr = check_positive("lr", lr)
        self.server_side_update = server_side_update
        self.device = device
        self.weight = None if weight is None else self._normalise(weight)
        self.uploaded_gradients: List = []
        self.uploaded_models: List = []
        self.aggregated_gradients = None
        self.last_weights: List[float] = []
        self.optimizer = make_parameter_optimizer(
            optimizer_type, self.server_model.parameters(), lr=self.lr, **(optimizer_kwargs or {})
        )

    def _normalise(self, weight: Sequence[float]) -> List[float]:
        w = [check_positive(f"weight[{i}]", v, allow_zero=True) for i, v in enumerate(weight)]
        if len(w) != self.num_clients:
            raise ValueError(f"got {len(w)} weights for {self.num_clients} clients")
        total = sum(w)
        if total <= 0:
            raise ValueError("aggregation weights sum to zero")
        return [v / total for v in w]

    def _client_name(self, i: int) -> str:
        client = self.clients[i]
        return f"client {getattr(client, 'user_id', client)}"

    def aggregation_weights(self) -> List[float]:
        if self.weight is not None:
            return list(self.weight)
        counts = [getattr(c, "num_samples", None) for c in self.clients]
        if all(isinstance(n, int) and n > 0 for n in counts):
            total = sum(counts)
            return [n / total for n in counts]
        return [1.0 / self.num_clients] * self.num_clients

    # -- the three steps of a round -----------------------------------------------------------
    def receive(self, use_gradients: bool = True) -> None:
        """Collect ``upload_gradients()`` (or ``upload_parameters()``) from every client.

        Client managers change what is sent by overriding those two methods.
        """
        uploads = []
        for i, client in enumerate(self.clients):
            update = client.upload_gradients() if use_gradients else client.upload_parameters()
            check_finite_update(update, self._client_name(i))
            uploads.append(update)
        if use_gradients:
            self.uploaded_gradients = uploads
        else:
            self.uploaded_models = uploads

    def aggregate(self, updates: List[Sequence], weights: Sequence[float]) -> List:
        if len(updates) != len(weights):
            raise ValueError(f"{len(updates)} updates but {len(weights)} weights")
        if not updates:
            raise ValueError("no client updates to aggregate")
        aggregated = []
        for tensors in zip(*updates):
            acc = tensors[0] * weights[0]
            for t, w in zip(tensors[1:], weights[1:]):
                acc = acc + t * w
            aggregated.append(acc)
        return aggregated

    def update(self, use_gradients: bool = True) -> None:
        if use_gradients:
            self.update_from_gradients()
        else:
            self.update_from_parameters()

    def update_from_gradients(self) -> None:
        self.last_weights = self.aggregation_weights()
        self.aggregated_gradients = self.aggregate(self.uploaded_gradients, self.last_weights)
        if self.server_side_update and self._aggregate_is_plaintext():
            self.optimizer.zero_grad()
            for p, g in zip(self.server_model.parameters(), self.aggregated_gradients):
                p.grad = g.reshape(p.shape).to(p.dtype).clone()
            self.optimizer.step()

    def update_from_parameters(self) -> None:
        self.last_weights = self.aggregation_weights()
        load_parameters(self.server_model, self.aggregate(self.uploaded_models, self.last_weights))

    def distribute(self, force_send_model_state_dict: bool = False) -> None:
        """Send the global parameters (a dict by name), or the aggregated gradient (a list) when
        clients update themselves (``server_side_update=False``)."""
        if force_send_model_state_dict or self.aggregated_gradients is None or (
            self.server_side_update and self._aggregate_is_plaintext()
        ):
            for client in self.clients:
                client.download(named_parameters_dict(self.server_model))
        else:
            for client in self.clients:
                client.download(self.aggregated_gradients)
            # keep the server's copy in step with what the clients applied
            if self._clients_share_global_state():
                load_parameters(self.server_model, parameters_to_list(self.clients[0].model))

    def _aggregate_is_plaintext(self) -> bool:
        """False for updates the server cannot read (e.g. Paillier ciphertexts): it then sends the
        aggregate back for the clients to apply, whatever ``server_side_update`` says."""
        return all(torch.is_tensor(g) for g in self.aggregated_gradients)

    def _clients_share_global_state(self) -> bool:
        first = self.clients[0]
        return hasattr(first, "model") and isinstance(first.model, torch.nn.Module)

    def action(self, use_gradients: bool = True) -> None:
        self.receive(use_gradients)
        self.update(use_gradients)
        self.distribute()
