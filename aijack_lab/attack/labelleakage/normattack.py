"""The norm attack on split learning (Li et al. Label Leakage and Protection in Two-party Split
Learning. ICLR 2022): in an imbalanced binary task, the gradients the label party sends back are
larger for the rare class, so their norms alone rank the feature party's examples by label."""
from typing import List

import numpy as np
import torch

from ...manager import BaseManager


def norm_leak_auc(scores, labels) -> float:
    """AUC of ``scores`` for the positive class, by the rank-sum formula (ties count a half)."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels)
    if len(np.unique(labels)) != 2:
        raise ValueError("the leak AUC needs both labels present")
    return float(roc_auc_score(labels, np.asarray(scores)))


class NormAttackSplitNNManager(BaseManager):
    """Attach to ``SplitNNAPI``: the first (feature) party records the norm of every per-example
    gradient it receives; ``leak_auc_history`` holds, per epoch, the AUC of those norms as a
    predictor of the (hidden) binary label, and ``attack(dataloader)`` scores a fresh pass.

    Args:
        criterion: the loss the label party uses (kept for the published API).
        device: where tensors live (only "cpu" is used here; accepted in any case).
        target_label: which label counts as positive for the AUC (default 1).
    """

    def __init__(self, criterion, device: str = "cpu", target_label: int = 1):
        super().__init__(criterion, device=device)
        self.criterion, self.device, self.target_label = criterion, str(device).lower(), target_label

    def extend(self, cls):
        manager = self

        class NormAttackSplitNNAPI(cls):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.leak_auc_history: List[float] = []
                self._epoch_norms: List[torch.Tensor] = []
                self._epoch_labels: List[torch.Tensor] = []
                self._current_y = None

            def transfer(self, kind, sender, receiver, tensor):
                tensor = super().transfer(kind, sender, receiver, tensor)
                if kind == "gradient" and receiver == 0:
                    self._epoch_norms.append(tensor.reshape(len(tensor), -1).norm(dim=1).detach())
                return tensor

            def train_batch(self, x, y):
                # the labels are recorded only to *evaluate* the attack; the attacker never uses them
                self._epoch_labels.append(y.detach())
                return super().train_batch(x, y)

            def _end_round(self, info, total_rounds):
                norms, labels = torch.cat(self._epoch_norms), torch.cat(self._epoch_labels)
                auc = norm_leak_auc(norms.numpy(), (labels == manager.target_label).numpy())
                self.leak_auc_history.append(auc)
                info = dict(info, leak_auc=auc)
                self._epoch_norms, self._epoch_labels = [], []
                super()._end_round(info, total_rounds)

            def attack(self, dataloader):
                """One pass over ``dataloader`` without updating the models: ``(norm scores, labels)``."""
                scores, labels = [], []
                for x, y in dataloader:
                    for c in self.clients:
                        c.model.zero_grad()
                    self._epoch_norms = []
                    out = self.forward(x)
                    self.backward(self.criterion(out, y))
                    scores.append(torch.cat(self._epoch_norms))
                    labels.append(y)
                for c in self.clients:
                    c.model.zero_grad()
                self._epoch_norms, self._epoch_labels = [], []
                return torch.cat(scores).numpy(), torch.cat(labels).numpy()

        return NormAttackSplitNNAPI
