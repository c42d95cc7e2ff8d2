"""DBA, the distributed backdoor attack (Xie et al., ICLR 2020).

A global trigger is split into local parts; each colluding client poisons a fraction of its
training batches with its own part (relabelled ``target_label``) and scales its update. The
global model then responds to the assembled global trigger, which no single client ever used.
"""
from typing import Callable, Dict, Optional, Sequence, Union

import torch

from ...manager import BaseManager
from ...utils.seeding import make_generator
from ...utils.validation import check_positive, check_positive_int, check_probability
from ..fl_utils import BatchTransformLoader, gradients_to_parameters


class DistributedBackdoorAttackClientManager(BaseManager):
    """``DistributedBackdoorAttackClientManager(decomposed_trigger_rules, target_label, poison_ratio, scale)``.

    Args:
        decomposed_trigger_rules: the local triggers, callables ``x -> x'``; a sequence indexed by
            the client's ``user_id`` (AIJack's convention) or a dict ``{user_id: trigger}``.
        target_label: the label the backdoor makes the model predict.
        poison_ratio: the probability that a training sample is triggered and relabelled.
        scale: factor on the uploaded update (DBA's scale factor γ; 1 sends the plain update).
        seed: seed of which samples get poisoned.
    """

    def __init__(
        self,
        decomposed_trigger_rules: Union[Sequence[Callable], Dict[int, Callable]],
        target_label: int,
        poison_ratio: float = 0.5,
        scale: float = 1.0,
        seed: Optional[int] = 0,
    ):
        super().__init__(decomposed_trigger_rules, target_label, poison_ratio=poison_ratio, scale=scale, seed=seed)
        if isinstance(decomposed_trigger_rules, dict):
            rules = dict(decomposed_trigger_rules)
        elif isinstance(decomposed_trigger_rules, (list, tuple)):
            rules = dict(enumerate(decomposed_trigger_rules))
        else:
            raise TypeError("decomposed_trigger_rules must be a list of triggers or a dict {user_id: trigger}")
        if not rules:
            raise ValueError("decomposed_trigger_rules is empty")
        for key, rule in rules.items():
            if not callable(rule):
                raise TypeError(f"decomposed_trigger_rules[{key!r}] must be callable as rule(x) -> x")
        self.decomposed_trigger_rules = rules
        self.target_label = check_positive_int("target_label", target_label, allow_zero=True)
        self.poison_ratio = check_probability("poison_ratio", poison_ratio, allow_zero=True, allow_one=True)
        self.scale = check_positive("scale", scale)
        self.seed = seed

    def rule_for(self, user_id) -> Callable:
        if user_id not in self.decomposed_trigger_rules:
            raise ValueError(
                f"decomposed_trigger_rules has no trigger for user_id {user_id!r} "
                f"(it has {sorted(self.decomposed_trigger_rules, key=str)})"
            )
        return self.decomposed_trigger_rules[user_id]

    def extend(self, cls):
        manager = self

        class DistributedBackdoorAttackClient(cls):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.trigger = manager.rule_for(self.user_id)
                self.target_label = manager.target_label
                seed = None if manager.seed is None else manager.seed + 7919 * (1 + int(self.user_id))
                self._poison_generator = make_generator(seed)
                self.poisoned_count = 0

            def local_train(self, local_epoch, criterion, trainloader, optimizer, communication_id=0):
                def poison(x, y):
                    mask = torch.rand(len(y), generator=self._poison_generator) < manager.poison_ratio
                    if not bool(mask.any()):
                        return x, y
                    x, y = x.clone(), y.clone()
                    x[mask] = self.trigger(x[mask])
                    y[mask] = manager.target_label
                    self.poisoned_count += int(mask.sum())
                    return x, y

                return super().local_train(local_epoch, criterion, BatchTransformLoader(trainloader, poison), optimizer, communication_id)

            def upload_gradients(self):
                return [manager.scale * g for g in super().upload_gradients()]

            def upload_parameters(self):
                return gradients_to_parameters(self.prev_parameters, self.upload_gradients(), self.lr)

        return DistributedBackdoorAttackClient
