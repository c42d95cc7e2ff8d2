"""Label flipping (Tolpegin et al., ESORICS 2020): malicious clients train on data whose
``victim_label`` samples are relabelled ``target_label``, so the global model learns to send the
victim class to the target class."""
from typing import Optional

import torch

from ...manager import BaseManager
from ...utils.seeding import make_generator
from ...utils.validation import check_positive_int
from ..fl_utils import BatchTransformLoader


def _check_label(name: str, value, class_num: Optional[int]) -> int:
    value = check_positive_int(name, value, allow_zero=True)
    if class_num is not None and value >= class_num:
        raise ValueError(f"{name} must be a class in [0, {class_num - 1}], got {value}")
    return value


class LabelFlipAttackClientManager(BaseManager):
    """``LabelFlipAttackClientManager(victim_label, target_label).attach(FedAVGClient)``.

    Args:
        victim_label: the class whose samples the malicious clients relabel.
        target_label: the label they get; None draws a random other class per sample (needs
            ``class_num``).
        class_num: the number of classes; when given, both labels are checked against it. Either
            way a label outside the model's outputs is rejected at the first batch.
        seed: seed of the random relabelling when ``target_label`` is None.
    """

    def __init__(self, victim_label: int, target_label: Optional[int] = None, class_num: Optional[int] = None, seed: Optional[int] = 0):
        super().__init__(victim_label=victim_label, target_label=target_label, class_num=class_num, seed=seed)
        if class_num is not None:
            class_num = check_positive_int("class_num", class_num)
            if class_num < 2:
                raise ValueError(f"class_num must be at least 2, got {class_num}")
        self.class_num = class_num
        self.victim_label = _check_label("victim_label", victim_label, class_num)
        if target_label is None:
            if class_num is None:
                raise ValueError("target_label=None (a random other class) needs class_num")
        else:
            target_label = _check_label("target_label", target_label, class_num)
            if target_label == self.victim_label:
                raise ValueError(f"target_label must differ from victim_label (both {target_label})")
        self.target_label = target_label
        self.seed = seed

    def flip(self, labels: torch.Tensor, num_outputs: Optional[int] = None, generator=None) -> torch.Tensor:
        """``labels`` with the victim class relabelled."""
        classes = self.class_num or num_outputs
        if num_outputs is not None:
            for name, value in (("victim_label", self.victim_label), ("target_label", self.target_label)):
                if value is not None and value >= num_outputs:
                    raise ValueError(f"{name}={value} is outside the model's {num_outputs} classes")
        mask = labels == self.victim_label
        if self.target_label is not None:
            return torch.where(mask, torch.full_like(labels, self.target_label), labels)
        # a uniformly random class other than the victim
        draw = torch.randint(0, classes - 1, labels.shape, generator=generator)
        draw = draw + (draw >= self.victim_label).long()
        return torch.where(mask, draw.to(labels.dtype), labels)

    def extend(self, cls):
        manager = self

        class LabelFlipAttackClient(cls):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.victim_label = manager.victim_label
                self.target_label = manager.target_label
                self._flip_generator = make_generator(manager.seed)
                self.flipped_count = 0

            def _num_outputs(self, x):
                was = self.model.training
                self.model.eval()  # no batch-norm statistics are touched by this probe
                try:
                    with torch.no_grad():
                        out = self.model(x[:1])
                finally:
                    self.model.train(was)
                return out.shape[1] if out.dim() == 2 else None

            def local_train(self, local_epoch, criterion, trainloader, optimizer, communication_id=0):
                checked = {}

                def poison(x, y):
                    if "n" not in checked:
                        checked["n"] = self._num_outputs(x)
                    flipped = manager.flip(y, checked["n"], self._flip_generator)
                    self.flipped_count += int((flipped != y).sum())
                    return x, flipped

                loader = BatchTransformLoader(trainloader, poison)
                return super().local_train(local_epoch, criterion, loader, optimizer, communication_id)

        return LabelFlipAttackClient


# AIJack's name for the same manager
LabelFlipAttackManager = LabelFlipAttackClientManager
