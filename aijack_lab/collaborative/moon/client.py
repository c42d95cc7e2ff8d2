"""MOON client: model-contrastive learning between local, global and previous local representations."""
import copy
from typing import Dict, Optional

import torch
import torch.nn.functional as F

from ...utils.validation import check_positive
from ..fedavg import FedAVGClient


class MOONClient(FedAVGClient):
    """MOON (Li et al., 2021): the local loss adds ``mu * l_con`` with

    ``l_con = -log( exp(sim(z, z_glob)/tau) / (exp(sim(z, z_glob)/tau) + exp(sim(z, z_prev)/tau)) )``

    where ``z`` is the representation of the model being trained, ``z_glob`` that of the global
    model received this round and ``z_prev`` that of this client's model at the end of its
    previous round; ``sim`` is cosine similarity. It pulls the local representation towards the
    global one and away from the drifted previous local one.

    Args:
        model: the local model.
        tau: temperature; mu: weight of the contrastive term.
        rep_layer: name of the submodule whose output is the representation (e.g. ``"conv"`` of
            ``DigitsCNN``); None uses the model's output.
        Others as ``FedAVGClient``.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        user_id: int = 0,
        lr: float = 0.1,
        tau: float = 0.5,
        mu: float = 1.0,
        rep_layer: Optional[str] = None,
        send_gradient: bool = True,
        optimizer_type_for_global_grad: str = "sgd",
        server_side_update: bool = True,
        optimizer_kwargs_for_global_grad: Optional[Dict] = None,
        device: str = "cpu",
    ):
        super().__init__(
            model,
            user_id=user_id,
            lr=lr,
            send_gradient=send_gradient,
            server_side_update=server_side_update,
            optimizer_type_for_global_grad=optimizer_type_for_global_grad,
            optimizer_kwargs_for_global_grad=optimizer_kwargs_for_global_grad,
            device=device,
        )
        self.tau = check_positive("tau", tau)
        self.mu = check_positive("mu", mu, allow_zero=True)
        if rep_layer is not None:
            names = dict(model.named_modules())
            if rep_layer not in names:
                raise ValueError(f"rep_layer {rep_layer!r} is not a submodule of the model; it has {sorted(n for n in names if n)}")
        self.rep_layer = rep_layer
        self.prev_model: Optional[torch.nn.Module] = None  # this client's model after its last round
        self.last_contrastive_loss = float("nan")

    def representation(self, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Output of ``rep_layer`` (or of the model) on ``x``, flattened per sample."""
        if self.rep_layer is None:
            return model(x).flatten(1)
        captured = {}
        layer = dict(model.named_modules())[self.rep_layer]
        handle = layer.register_forward_hook(lambda _m, _i, out: captured.__setitem__("z", out))
        try:
            model(x)
        finally:
            handle.remove()
        return captured["z"].flatten(1)

    def contrastive_loss(self, z, z_glob, z_prev) -> torch.Tensor:
        pos = F.cosine_similarity(z, z_glob, dim=1) / self.tau
        neg = F.cosine_similarity(z, z_prev, dim=1) / self.tau
        # -log(e^pos / (e^pos + e^neg)), computed stably
        return (torch.logsumexp(torch.stack([pos, neg], dim=1), dim=1) - pos).mean()

    def begin_local_training(self) -> None:
        self._global_model = copy.deepcopy(self.model).eval()
        # before its first round a client's "previous" model is the initial global model (as in
        # the MOON reference code): then z_glob == z_prev and l_con = log 2 with zero gradient
        self._prev_model = self.prev_model.eval() if self.prev_model is not None else self._global_model
        for m in (self._global_model, self._prev_model):
            for p in m.parameters():
                p.requires_grad_(False)
        self._con_total, self._con_count = 0.0, 0

    def local_objective(self, data, target, criterion):
        """Task loss plus ``mu`` times the model-contrastive loss; the total is reported."""
        captured = {}
        if self.rep_layer is None:
            out = self(data)
            z = out.flatten(1)
        else:
            layer = dict(self.model.named_modules())[self.rep_layer]
            handle = layer.register_forward_hook(lambda _m, _i, o: captured.__setitem__("z", o))
            try:
                out = self(data)
            finally:
                handle.remove()
            z = captured["z"].flatten(1)
        loss = criterion(out, target)
        if self.mu > 0:
            with torch.no_grad():
                z_glob = self.representation(self._global_model, data)
                z_prev = self.representation(self._prev_model, data)
            con = self.contrastive_loss(z, z_glob, z_prev)
            loss = loss + self.mu * con
            self._con_total += con.item() * len(target)
            self._con_count += len(target)
        return loss, loss.item()

    def end_local_training(self) -> None:
        self.last_contrastive_loss = self._con_total / self._con_count if self.mu > 0 and self._con_count else 0.0
        self.prev_model = copy.deepcopy(self.model)
        self._global_model = self._prev_model = None
