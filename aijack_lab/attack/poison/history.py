"""History attack (the data-free baseline of Cao and Gong, MPAF, CVPR Workshops 2022).

A fake client needs no data: it remembers the last two global models it received and uploads
their difference reversed and scaled by ``lam``, pushing the global model back along the path
it just came. In the first round, before it has two global models, it reverses its own local
update instead.
"""
from ...manager import BaseManager
from ...utils.validation import check_positive
from ..fl_utils import gradients_to_parameters


class HistoryAttackClientWrapper(BaseManager):
    """``HistoryAttackClientWrapper(lam=3.0).attach(FedAVGClient)``.

    The attacked client uploads the pseudo-gradient ``lam · (θ_t - θ_{t-1}) / lr`` where ``θ_t`` and
    ``θ_{t-1}`` are the last two global models (the server's step ``θ -= lr · g`` then undoes ``lam``
    times the previous global step, weighted by the client's aggregation weight).

    Args:
        lam: the scale λ (> 0).
    """

    def __init__(self, lam: float = 3.0):
        super().__init__(lam=lam)
        self.lam = check_positive("lam", lam)

    def extend(self, cls):
        manager = self

        class HistoryAttackClient(cls):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.lam = manager.lam
                self.previous_global_parameters = None
                self._downloads = 0

            def download(self, payload):
                # the model this client last synchronised to is the previous global model
                synced = [p.clone() for p in self.prev_parameters] if self._downloads > 0 else None
                super().download(payload)
                self._downloads += 1
                self.previous_global_parameters = synced

            def upload_gradients(self):
                if self.previous_global_parameters is None:
                    honest = super().upload_gradients()
                    return [-self.lam * g for g in honest]
                return [
                    self.lam * (now - before) / self.lr
                    for now, before in zip(self.prev_parameters, self.previous_global_parameters)
                ]

            def upload_parameters(self):
                return gradients_to_parameters(self.prev_parameters, self.upload_gradients(), self.lr)

        return HistoryAttackClient
