"""A malicious FedAVG server that inverts the clients' uploads (paper Code 7 and Code S-14).

``GradientInversionAttackServerManager(input_shape, distancename="l2").attach(FedAVGServer)``
returns a server class that, each round, runs :class:`GradientInversion_Attack` on what each
client uploaded and keeps the reconstructions in ``attack_results`` (one dict per round, client
index -> ``(x, y)``).

A FedAVG client uploads the pseudo-gradient ``(θ_start - θ_end) / lr``. After one local SGD step
at the client's ``lr`` (one batch, one epoch, plain SGD) this is exactly the batch gradient at
the global model, which is what the server still holds when it receives; with more local steps
the attack inverts an average of several gradients and degrades gracefully.
"""
from typing import Dict, List, Optional, Sequence, Union

import torch

from ...manager import BaseManager
from ...utils.validation import check_positive_int
from .gradientinversion import DISTANCES, GradientInversion_Attack


class GradientInversionAttackServerManager(BaseManager):
    """Attach gradient inversion to a server class (``FedAVGServer`` or a subclass).

    Args:
        input_shape: shape of one client input without the batch axis, e.g. ``(1, 8, 8)``.
        attack_function: the attacker class (default :class:`GradientInversion_Attack`).
        num_trial_per_communication: restarts per client and round; the one with the lowest
            gradient-matching loss is kept.
        target_client_id: index (or list of indices) of the clients to attack; None attacks all.
        batch_size: batch size the attacker assumes; None uses the sample count the client
            reports to FedAVG (``num_samples``, which is the batch size after one full-batch step).
        **kwargs: passed to the attacker (``distancename``, ``optimize_label``, ``lm_reg_coef``,
            ``num_iteration``, ``seed``, ...).
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        attack_function=GradientInversion_Attack,
        num_trial_per_communication: int = 1,
        target_client_id: Optional[Union[int, Sequence[int]]] = None,
        batch_size: Optional[int] = None,
        **kwargs,
    ):
        super().__init__(input_shape, **kwargs)
        if not isinstance(input_shape, (tuple, list, torch.Size)) or not input_shape:
            raise TypeError(f"input_shape must be a tuple such as (1, 8, 8), got {input_shape!r}")
        for s in input_shape:
            check_positive_int("input_shape entries", s)
        if not callable(attack_function):
            raise TypeError("attack_function must be an attacker class such as GradientInversion_Attack")
        if "distancename" in kwargs and kwargs["distancename"] not in DISTANCES:
            raise ValueError(f"unknown distancename {kwargs['distancename']!r}; choose one of {sorted(DISTANCES)}")
        self.input_shape = tuple(int(s) for s in input_shape)
        self.attack_function = attack_function
        self.num_trial_per_communication = check_positive_int("num_trial_per_communication", num_trial_per_communication)
        if target_client_id is not None:
            ids = [target_client_id] if isinstance(target_client_id, int) else list(target_client_id)
            for i in ids:
                check_positive_int("target_client_id", i, allow_zero=True)
            target_client_id = ids
        self.target_client_id = target_client_id
        self.batch_size = None if batch_size is None else check_positive_int("batch_size", batch_size)
        self.attack_kwargs = dict(kwargs)

    def extend(self, cls):
        manager = self

        class GradientInversionServerWrapper(cls):
            """A server that reconstructs each client's batch from its upload, every round."""

            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.attack_results: List[Dict[int, Optional[tuple]]] = []
                self.attack_losses: List[Dict[int, float]] = []

            def change_target_client_id(self, target_client_id) -> None:
                manager_ids = [target_client_id] if isinstance(target_client_id, int) else list(target_client_id)
                self._target_override = manager_ids

            def _targets(self) -> List[int]:
                ids = getattr(self, "_target_override", None) or manager.target_client_id
                ids = list(range(len(self.uploaded_gradients))) if ids is None else ids
                for i in ids:
                    if i >= len(self.uploaded_gradients):
                        raise ValueError(f"target_client_id {i} is out of range for {len(self.uploaded_gradients)} clients")
                return ids

            def receive(self, use_gradients: bool = True, *args, **kwargs):
                super().receive(use_gradients, *args, **kwargs)
                if use_gradients:
                    self.attack()

            def attack(self) -> Dict[int, Optional[tuple]]:
                """Invert this round's uploads; append and return ``{client index: (x, y)}``.

                An upload the server cannot read as plain tensors (e.g. Paillier-encrypted) gives None.
                """
                results: Dict[int, Optional[tuple]] = {}
                losses: Dict[int, float] = {}
                for i in self._targets():
                    upload = self.uploaded_gradients[i]
                    if not all(torch.is_tensor(t) for t in upload):
                        results[i] = None
                        continue
                    batch_size = manager.batch_size
                    if batch_size is None:
                        n = getattr(self.clients[i], "num_samples", None)
                        batch_size = n if isinstance(n, int) and n > 0 else 1
                    attacker = manager.attack_function(self.server_model, manager.input_shape, **manager.attack_kwargs)
                    best = None
                    for _ in range(manager.num_trial_per_communication):
                        x, y = attacker.attack(upload, batch_size=batch_size)
                        loss = getattr(attacker, "best_loss", 0.0)
                        if best is None or loss < best[2]:
                            best = (x, y, loss)
                    results[i] = (best[0], best[1])
                    losses[i] = best[2]
                self.attack_results.append(results)
                self.attack_losses.append(losses)
                return results

        return GradientInversionServerWrapper
