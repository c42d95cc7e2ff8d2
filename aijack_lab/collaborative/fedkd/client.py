"""FedKD client: a private mentor and a shared mentee taught by adaptive mutual distillation."""
import copy
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F

from ...utils.validation import check_positive, check_in_range
from ..fedavg import FedAVGClient
from ..optimizers import make_parameter_optimizer


class FedKDClient(FedAVGClient):
    """FedKD (Wu et al., 2022): only the small *mentee* (``student_model``) is shared and averaged;
    the *mentor* (``teacher_model``) stays on the client. Both learn the task and from each other:

    ``L_mentee = CE(y, s) + KL(t || s) / (CE(y, t) + CE(y, s))``
    ``L_mentor = CE(y, t) + KL(s || t) / (CE(y, t) + CE(y, s))``

    The distillation weight is adaptive: it is large when both models' task losses are small
    (their predictions are reliable) and small early on. ``adaptive_distillation_losses=False``
    uses the plain KL. With ``svd_energy`` in (0, 1], uploaded pseudo-gradients of 2-D weight
    matrices are replaced by their truncated SVD keeping that fraction of the spectral energy
    (FedKD's update compression); ``last_upload_compressed_nbytes`` is what the factors would
    occupy on the wire.

    Args:
        student_model: the shared mentee (what ``FedAVGServer`` aggregates).
        teacher_model: the local mentor; None gives an independent copy of the mentee.
        task_lossfn: task loss for both (default cross-entropy; the API's criterion is used when
            training through ``FedAVGAPI``).
        teacher_lr: learning rate of the mentor's own Adam optimizer.
        temperature: softmax temperature of the distillation terms.
    """

    def __init__(
        self,
        student_model: torch.nn.Module,
        teacher_model: Optional[torch.nn.Module] = None,
        task_lossfn=None,
        student_lr: float = 0.1,
        teacher_lr: float = 0.01,
        adaptive_distillation_losses: bool = True,
        temperature: float = 1.0,
        svd_energy: Optional[float] = None,
        user_id: int = 0,
        send_gradient: bool = True,
        optimizer_type_for_global_grad: str = "sgd",
        server_side_update: bool = True,
        optimizer_kwargs_for_global_grad: Optional[Dict] = None,
        device: str = "cpu",
    ):
        super().__init__(
            student_model,
            user_id=user_id,
            lr=student_lr,
            send_gradient=send_gradient,
            server_side_update=server_side_update,
            optimizer_type_for_global_grad=optimizer_type_for_global_grad,
            optimizer_kwargs_for_global_grad=optimizer_kwargs_for_global_grad,
            device=device,
        )
        if teacher_model is None:
            teacher_model = copy.deepcopy(student_model)
        if not isinstance(teacher_model, torch.nn.Module):
            raise TypeError(f"teacher_model must be a torch.nn.Module, got {type(teacher_model).__name__}")
        self.student_model = self.model
        self.teacher_model = teacher_model
        self.task_lossfn = task_lossfn if task_lossfn is not None else torch.nn.CrossEntropyLoss()
        self.teacher_lr = check_positive("teacher_lr", teacher_lr)
        self.temperature = check_positive("temperature", temperature)
        self.adaptive_distillation_losses = bool(adaptive_distillation_losses)
        self.svd_energy = None if svd_energy is None else check_in_range("svd_energy", svd_energy, 0.0, 1.0, low_open=True)
        self.teacher_optimizer = make_parameter_optimizer("adam", self.teacher_model.parameters(), lr=self.teacher_lr)
        self.last_distillation_loss = float("nan")
        self.last_upload_compressed_nbytes: Optional[int] = None

    def _kl(self, target_logits, logits):
        T = self.temperature
        return F.kl_div(F.log_softmax(logits / T, dim=1), F.softmax(target_logits / T, dim=1), reduction="batchmean") * T * T

    def loss(self, x, y, criterion=None):
        """``(mentee_loss, mentor_loss, distillation_loss)`` on one batch."""
        crit = criterion if criterion is not None else self.task_lossfn
        s = self.student_model(x)
        t = self.teacher_model(x)
        task_s = crit(s, y)
        task_t = crit(t, y)
        kd_s = self._kl(t.detach(), s)
        kd_t = self._kl(s.detach(), t)
        if self.adaptive_distillation_losses:
            scale = 1.0 / (task_s.detach() + task_t.detach() + 1e-8)
            kd_s, kd_t = kd_s * scale, kd_t * scale
        return task_s + kd_s, task_t + kd_t, (kd_s + kd_t).detach()

    def local_train(self, local_epoch: int, criterion, trainloader, optimizer, communication_id: int = 0) -> List[float]:
        """Train mentee (with ``optimizer``) and mentor (own Adam) together; returns the mentee's mean loss per epoch."""
        self.student_model.train()
        self.teacher_model.train()
        epoch_losses = []
        for _ in range(local_epoch):
            total, kd_total, count = 0.0, 0.0, 0
            for data, target in trainloader:
                data, target = data.to(self.device), target.to(self.device)
                optimizer.zero_grad()
                self.teacher_optimizer.zero_grad()
                loss_s, loss_t, kd = self.loss(data, target, criterion)
                (loss_s + loss_t).backward()
                optimizer.step()
                self.teacher_optimizer.step()
                total += loss_s.item() * len(target)
                kd_total += kd.item() * len(target)
                count += len(target)
            if count == 0:
                raise ValueError(f"client {self.user_id} has an empty dataloader")
            epoch_losses.append(total / count)
            self.last_distillation_loss = kd_total / count
        self.num_samples = count
        return epoch_losses

    def upload_gradients(self) -> List[torch.Tensor]:
        grads = super().upload_gradients()
        if self.svd_energy is None:
            self.last_upload_compressed_nbytes = None
            return grads
        out, nbytes = [], 0
        for g in grads:
            if g.dim() != 2:
                out.append(g)
                nbytes += g.numel() * g.element_size()
                continue
            u, sv, vh = torch.linalg.svd(g, full_matrices=False)
            energy = torch.cumsum(sv ** 2, 0) / torch.clamp((sv ** 2).sum(), min=1e-30)
            k = int(torch.searchsorted(energy, torch.tensor(self.svd_energy * (1 - 1e-6))).item()) + 1
            k = min(k, len(sv))
            out.append((u[:, :k] * sv[:k]) @ vh[:k])
            nbytes += (u.shape[0] * k + k + k * vh.shape[1]) * g.element_size()
        self.last_upload_compressed_nbytes = nbytes
        return out
