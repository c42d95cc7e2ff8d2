"""The FedAVG protocol loop (paper Code 5)."""
from typing import Callable, List, Optional

import torch

from ...engines import resolve_engine
from ...utils.metrics import evaluate_accuracy
from ...utils.progress import ProgressCallback
from ...utils.validation import check_positive_int
from ..core import BaseFedAPI, update_nbytes


class FedAVGAPI(BaseFedAPI):
    """``FedAVGAPI(server, clients, criterion, optimizers, dataloaders).run()``.

    Each round: every client trains ``local_epoch`` epochs (on the chosen ``engine``), the server
    receives their uploads, aggregates them and distributes the result.

    Args:
        server, clients: the parties (clients in the same order as optimizers and dataloaders).
        criterion: the loss.
        local_optimizers, local_dataloaders: one per client.
        num_communication: rounds.
        local_epoch: local epochs per round.
        use_gradients: clients upload pseudo-gradients (True) or parameters (False).
        custom_action: called as ``custom_action(api)`` after each round (AIJack's hook).
        validation_dataloader: ``(x, y)`` tensors or a dataloader; the global model's accuracy on
            it is recorded each round as ``global_accuracy``.
        on_round: ``hook(api, info)`` or a list of them, called after each round.
        progress: ``progress(round_done, num_communication)``; may raise to stop.
        engine: where clients train: None/"inprocess", or an engine object (see aijack_lab.engines).
    """

    def __init__(
        self,
        server,
        clients: List,
        criterion,
        local_optimizers: List,
        local_dataloaders: List,
        num_communication: int = 1,
        local_epoch: int = 1,
        use_gradients: bool = True,
        custom_action: Optional[Callable] = None,
        device: str = "cpu",
        validation_dataloader=None,
        on_round=None,
        progress: Optional[ProgressCallback] = None,
        engine=None,
    ):
        super().__init__(on_round=on_round, progress=progress)
        n = len(clients)
        if n == 0:
            raise ValueError("FedAVGAPI needs at least one client")
        if len(local_optimizers) != n:
            raise ValueError(f"got {len(local_optimizers)} local_optimizers for {n} clients")
        if len(local_dataloaders) != n:
            raise ValueError(f"got {len(local_dataloaders)} local_dataloaders for {n} clients")
        self.server = server
        self.clients = clients
        self.criterion = criterion
        self.local_optimizers = local_optimizers
        self.local_dataloaders = local_dataloaders
        self.num_communication = check_positive_int("num_communication", num_communication)
        self.local_epoch = check_positive_int("local_epoch", local_epoch)
        self.use_gradients = use_gradients
        self.custom_action = custom_action
        self.device = device
        self.validation_dataloader = validation_dataloader
        self.engine = resolve_engine(engine)
        self.client_num = n

    def local_train(self, com_cnt: int) -> List[List[float]]:
        return self.engine.local_train(self, com_cnt)

    def evaluate(self) -> Optional[float]:
        if self.validation_dataloader is None:
            return None
        # a server may evaluate another model than the one it trains (FedEXP: the last two iterates' mean)
        evaluation_model = getattr(self.server, "evaluation_model", None)
        model = evaluation_model() if callable(evaluation_model) else self.server.server_model
        return evaluate_accuracy(model, self.validation_dataloader)

    def run(self):
        # every client starts from the global model
        self.server.distribute(force_send_model_state_dict=True)
        for com_cnt in range(self.num_communication):
            start = self._now()
            losses = self.local_train(com_cnt)
            self.server.receive(use_gradients=self.use_gradients)
            self.server.update(use_gradients=self.use_gradients)
            self.server.distribute()
            uploads = self.server.uploaded_gradients if self.use_gradients else self.server.uploaded_models
            info = {
                "round": com_cnt,
                "client_losses": [l[-1] if l else float("nan") for l in losses],
                "global_accuracy": self.evaluate(),
                "seconds": self._now() - start,
                "bytes_uploaded": sum(update_nbytes(u) for u in uploads),
                "client_updates": uploads,
            }
            if self.custom_action is not None:
                self.custom_action(self)
            self._end_round(info, self.num_communication)
        return self.history
