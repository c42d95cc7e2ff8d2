"""Model replacement (Bagdasaryan et al., "How To Backdoor Federated Learning", AISTATS 2020).

The attacker trains a backdoored model ``X`` and uploads its update scaled by ``gamma`` (about the
number of clients over the server's learning rate), so that after averaging the global model is
replaced by ``X``: the backdoor survives the averaging that would dilute a plain malicious update.
``alpha`` trades the task loss against an anomaly term (the distance to the global model) that
keeps the update inconspicuous.
"""
from typing import Callable, Optional, Sequence

import torch

from ...manager import BaseManager
from ...utils.seeding import make_generator
from ...utils.validation import check_in_range, check_positive, check_positive_int, check_probability
from ..fl_utils import BatchTransformLoader, claimed_num_samples, gradients_to_parameters


def l2norm_checker(client) -> torch.Tensor:
    """The anomaly term: the L2 distance between the client's model and the last global model."""
    sq = sum(((p - prev.detach()) ** 2).sum() for p, prev in zip(client.model.parameters(), client.prev_parameters))
    return torch.sqrt(sq + 1e-12)


class ModelReplacementAttackClientManager(BaseManager):
    """``ModelReplacementAttackClientManager(alpha, gamma).attach(FedAVGClient)``.

    Args:
        alpha: weight of the task loss; ``1 - alpha`` weighs ``criterion_anomaly_detection`` (in [0, 1]).
        gamma: scale of the uploaded update (> 0); ``gamma = num_clients`` replaces the global
            model under equal FedAVG weights.
        criterion_anomaly_detection: ``f(client) -> scalar tensor`` penalising a conspicuous update.
        reference_dataloader: if given, local training stops once the loss on it is ``<= eps``
            (the attacker's model already carries the backdoor).
        eps: the threshold above.
        trigger, target_label: if given, the client poisons its own batches: a ``poison_ratio``
            fraction of samples get ``trigger(x)`` and ``target_label``. Without them the client
            trains on its dataloader as given (poison it yourself, as AIJack does).
        poison_ratio: fraction of samples poisoned when ``trigger`` is given.
        attack_rounds: the communication rounds (0-based) in which the client attacks; in the
            others it trains and uploads honestly. None attacks in every round. The paper's
            single-shot attack picks one round late in training, when honest updates are small.
        seed: seed of which samples get poisoned.
    """

    def __init__(
        self,
        alpha: float,
        gamma: float,
        criterion_anomaly_detection: Callable = l2norm_checker,
        reference_dataloader=None,
        eps: float = 1e-6,
        trigger: Optional[Callable] = None,
        target_label: Optional[int] = None,
        poison_ratio: float = 0.5,
        attack_rounds: Optional[Sequence[int]] = None,
        seed: Optional[int] = 0,
    ):
        super().__init__(alpha, gamma, criterion_anomaly_detection=criterion_anomaly_detection,
                         reference_dataloader=reference_dataloader, eps=eps, trigger=trigger,
                         target_label=target_label, poison_ratio=poison_ratio,
                         attack_rounds=attack_rounds, seed=seed)
        self.alpha = check_in_range("alpha", alpha, 0.0, 1.0)
        self.gamma = check_positive("gamma", gamma)
        if not callable(criterion_anomaly_detection):
            raise TypeError("criterion_anomaly_detection must be callable as f(client) -> tensor")
        self.criterion_anomaly_detection = criterion_anomaly_detection
        self.reference_dataloader = reference_dataloader
        self.eps = check_positive("eps", eps, allow_zero=True)
        if (trigger is None) != (target_label is None):
            raise ValueError("give both trigger and target_label (or neither)")
        if trigger is not None and not callable(trigger):
            raise TypeError("trigger must be callable as trigger(x) -> x")
        self.trigger = trigger
        self.target_label = None if target_label is None else check_positive_int("target_label", target_label, allow_zero=True)
        self.poison_ratio = check_probability("poison_ratio", poison_ratio, allow_zero=True)
        if attack_rounds is not None:
            if isinstance(attack_rounds, (str, bytes)) or not hasattr(attack_rounds, "__iter__"):
                raise TypeError("attack_rounds must be a sequence of round numbers or None")
            attack_rounds = frozenset(check_positive_int("attack_rounds", r, allow_zero=True) for r in attack_rounds)
        self.attack_rounds = attack_rounds
        self.seed = seed

    def attacks_in(self, communication_id: int) -> bool:
        return self.attack_rounds is None or communication_id in self.attack_rounds

    def extend(self, cls):
        manager = self

        class ModelReplacementAttackClient(cls):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.gamma = manager.gamma
                seed = None if manager.seed is None else manager.seed + 104729 * (1 + int(self.user_id))
                self._poison_generator = make_generator(seed)
                self.attacking = False

            def reference_loss(self, criterion) -> float:
                total, count = 0.0, 0
                was = self.model.training
                self.model.eval()
                with torch.no_grad():
                    for x, y in manager.reference_dataloader:
                        total += float(criterion(self(x), y)) * len(y)
                        count += len(y)
                self.model.train(was)
                if count == 0:
                    raise ValueError("reference_dataloader is empty")
                return total / count

            def local_train(self, local_epoch, criterion, trainloader, optimizer, communication_id=0):
                self.attacking = manager.attacks_in(communication_id)
                if not self.attacking:
                    return super().local_train(local_epoch, criterion, trainloader, optimizer, communication_id)
                loader = trainloader
                if manager.trigger is not None:
                    def poison(x, y):
                        mask = torch.rand(len(y), generator=self._poison_generator) < manager.poison_ratio
                        if not bool(mask.any()):
                            return x, y
                        x, y = x.clone(), y.clone()
                        x[mask] = manager.trigger(x[mask])
                        y[mask] = manager.target_label
                        return x, y

                    loader = BatchTransformLoader(trainloader, poison)

                def loss_fn(outputs, labels):
                    loss = manager.alpha * criterion(outputs, labels)
                    if manager.alpha < 1.0:
                        loss = loss + (1.0 - manager.alpha) * manager.criterion_anomaly_detection(self)
                    return loss

                losses = []
                for _ in range(local_epoch):
                    if manager.reference_dataloader is not None and self.reference_loss(criterion) <= manager.eps:
                        break
                    losses += super().local_train(1, loss_fn, loader, optimizer, communication_id)
                if not losses:
                    self.num_samples = self.num_samples or claimed_num_samples(trainloader)
                return losses

            def upload_gradients(self):
                factor = manager.gamma if self.attacking else 1.0
                return [factor * g for g in super().upload_gradients()]

            def upload_parameters(self):
                return gradients_to_parameters(self.prev_parameters, self.upload_gradients(), self.lr)

        return ModelReplacementAttackClient
