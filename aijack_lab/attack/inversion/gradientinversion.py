"""Gradient inversion: recover a client's training batch from the gradient it shares.

One attacker, five published methods as settings of it:

============  ========================================================================
DLG           ``distancename="l2"``, label optimised with the image (Zhu et al., NeurIPS 2019)
iDLG          ``optimize_label=False``: the label is read off the last layer's gradient
              (Zhao et al., 2020), then only the image is optimised
GS            ``distancename="cossim"`` + ``tv_reg_coef`` (Geiping et al., NeurIPS 2020)
CPL           ``lm_reg_coef``: label-matching regulariser (Wei et al., ESORICS 2020)
GradInversion ``bn_reg_coef`` + ``gc_reg_coef`` over ``group_num`` restarts averaged after
              registration (batch order, small shifts), batch recovery (Yin et al., CVPR 2021)
============  ========================================================================

The attacker makes a dummy input (and, for DLG, a dummy soft label), computes the gradient the
model would produce for it, and moves the dummy so that this gradient matches the received one
(second-order autograd). The target model is not modified: its parameters' ``.grad`` and its
batch-norm running statistics are left as they were.
"""
import math
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...utils.progress import ProgressCallback, report_progress
from ...utils.validation import check_finite, check_positive, check_positive_int
from ..base import BaseAttacker

# -- distances between gradient lists ---------------------------------------------------------


def l2_distance(fake_gradients: Sequence[torch.Tensor], received_gradients: Sequence[torch.Tensor]) -> torch.Tensor:
    """Sum over layers of the squared Euclidean distance (DLG)."""
    total = 0.0
    for f, r in zip(fake_gradients, received_gradients):
        total = total + ((f - r) ** 2).sum()
    return total


def cossim_distance(fake_gradients: Sequence[torch.Tensor], received_gradients: Sequence[torch.Tensor]) -> torch.Tensor:
    """One minus the cosine similarity of the concatenated gradients (Geiping et al.)."""
    dot, fake_sq, rec_sq = 0.0, 0.0, 0.0
    for f, r in zip(fake_gradients, received_gradients):
        dot = dot + (f * r).sum()
        fake_sq = fake_sq + (f * f).sum()
        rec_sq = rec_sq + (r * r).sum()
    return 1.0 - dot / (torch.sqrt(fake_sq) * torch.sqrt(rec_sq) + 1e-12)


DISTANCES = {"l2": l2_distance, "cossim": cossim_distance}

# -- image priors -------------------------------------------------------------------------------


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring pixels (anisotropic TV) over the last two axes."""
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs().mean()
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs().mean()
    return dx + dy


def label_matching(pred: torch.Tensor, label_probs: torch.Tensor) -> torch.Tensor:
    """CPL's label regulariser: distance between the model's softmax output and the label."""
    return torch.norm(F.softmax(pred, dim=-1) - label_probs, p=2)


def group_consistency(x: torch.Tensor, group_mean: torch.Tensor) -> torch.Tensor:
    """GradInversion's group term: squared distance of one restart to the (detached) group mean."""
    return ((x - group_mean) ** 2).sum()


def shift_images(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Translate images (last two axes) by ``(dy, dx)`` pixels, repeating the edge pixels."""
    if dy == 0 and dx == 0:
        return x
    h, w = x.shape[-2], x.shape[-1]
    lead = x.shape[:-2]
    flat = x.reshape((-1, 1, h, w))
    pad = (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0))  # left, right, top, bottom
    padded = F.pad(flat, pad, mode="replicate")
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[..., top : top + h, left : left + w].reshape(lead + (h, w))


class Registration:
    """How one restart maps onto the reference: ``order[i]`` is the restart's batch item that
    matches reference item ``i``, shifted by ``shifts[i] = (dy, dx)``."""

    def __init__(self, order: List[int], shifts: List[Tuple[int, int]]):
        self.order, self.shifts = order, shifts

    def to_reference(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([shift_images(x[j], *s) for j, s in zip(self.order, self.shifts)])

    def from_reference(self, ref: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(ref)
        for i, (j, (dy, dx)) in enumerate(zip(self.order, self.shifts)):
            out[j] = shift_images(ref[i], -dy, -dx)
        return out


def register_to(reference: torch.Tensor, x: torch.Tensor, labels: Optional[torch.Tensor] = None,
                max_shift: int = 1) -> Registration:
    """Align the batch ``x`` to ``reference`` (both ``(B, ..., H, W)``): the best one-to-one matching
    of batch items (only between items of equal label when ``labels`` are given) and, per item, the
    translation of at most ``max_shift`` pixels that minimises the squared error.

    GradInversion averages its restarts after image registration: restarts of a batch attack may
    recover the same images in another batch order (the gradient of a batch does not depend on
    its order) or slightly displaced, and a plain mean would blur them together.
    """
    from scipy.optimize import linear_sum_assignment

    b = x.shape[0]
    if reference.shape != x.shape:
        raise ValueError(f"reference {tuple(reference.shape)} and x {tuple(x.shape)} must have the same shape")
    spatial = x.dim() >= 3 and max_shift > 0
    offsets = [(dy, dx) for dy in range(-max_shift, max_shift + 1) for dx in range(-max_shift, max_shift + 1)] \
        if spatial else [(0, 0)]
    with torch.no_grad():
        ref = reference.reshape(b, -1)
        # cost[o, i, j]: error of reference item i against item j shifted by offset o
        cost = torch.stack([torch.cdist(ref, shift_images(x, *o).reshape(b, -1)) ** 2 for o in offsets])
        # a shift must earn its place: ties go to no shift
        cost = cost + 1e-9 * torch.tensor([abs(dy) + abs(dx) for dy, dx in offsets], dtype=cost.dtype)[:, None, None]
        best, which = cost.min(dim=0)
        if labels is not None:
            same = labels.reshape(-1, 1) == labels.reshape(1, -1)
            best = torch.where(same, best, torch.full_like(best, float("inf")))
    matrix = best.double().numpy()
    matrix[~np.isfinite(matrix)] = 1e300
    rows, cols = linear_sum_assignment(matrix)
    order = [0] * b
    shifts = [(0, 0)] * b
    for i, j in zip(rows.tolist(), cols.tolist()):
        order[i] = j
        shifts[i] = offsets[int(which[i, j])]
    return Registration(order, shifts)


def registered_mean(xs: Sequence[torch.Tensor], labels: Optional[torch.Tensor] = None, max_shift: int = 1,
                    passes: int = 2) -> Tuple[torch.Tensor, List[Registration]]:
    """The mean of restarts after registration (GradInversion's ``E(x)``), in the frame of the
    first restart, and each restart's registration; the reference is refined ``passes`` times."""
    reference = xs[0].detach()
    regs: List[Registration] = []
    for _ in range(max(1, passes)):
        regs = [register_to(reference, x.detach(), labels, max_shift) for x in xs]
        reference = torch.stack([r.to_reference(x.detach()) for r, x in zip(regs, xs)]).mean(dim=0)
    return reference, regs


def estimate_labels(
    received_gradients: Sequence[torch.Tensor], batch_size: int = 1, pos_of_final_fc_layer: int = -2
) -> torch.Tensor:
    """Labels of the batch from the classifier's last layer gradient (iDLG / Yin et al.).

    With cross-entropy, the gradient of the last bias is ``mean_i(softmax_i - onehot(y_i))``,
    negative exactly at the true label for one sample; for a batch of distinct labels the
    ``batch_size`` most negative entries are its labels. Without a bias, the rows of the last
    weight gradient give the same signal when the features feeding it are non-negative (sigmoid,
    ReLU): each row's minimum is used.
    """
    check_positive_int("batch_size", batch_size)
    weight = received_gradients[pos_of_final_fc_layer]
    if weight.dim() != 2:
        raise ValueError(
            f"received_gradients[{pos_of_final_fc_layer}] (pos_of_final_fc_layer) should be the last linear "
            f"layer's weight gradient (2-D), got shape {tuple(weight.shape)}"
        )
    num_classes = weight.shape[0]
    if batch_size > num_classes:
        raise ValueError(
            f"batch_size={batch_size} is larger than the {num_classes} classes the last layer's gradient can "
            "reveal; analytic labels (optimize_label=False) need batch_size <= number of classes"
        )
    index = pos_of_final_fc_layer % len(received_gradients)
    bias = received_gradients[index + 1] if index + 1 < len(received_gradients) else None
    if bias is not None and bias.dim() == 1 and bias.shape[0] == num_classes:
        score = bias
    elif batch_size == 1:
        score = weight.sum(dim=1)
    else:
        score = weight.min(dim=1).values
    if batch_size == 1:
        return score.argmin().reshape(1)
    return torch.argsort(score)[:batch_size].sort().values


# -- the attacker -------------------------------------------------------------------------------


class GradientInversion_Attack(BaseAttacker):
    """Reconstruct ``(x, y)`` from gradients of ``lossfunc(target_model(x), y)``.

    Args:
        target_model: the model whose gradients were shared, with the parameters they were
            computed at. It is used in its current train/eval mode (match the victim's).
        x_shape: shape of one input without the batch axis, e.g. ``(1, 8, 8)``.
        y_shape: shape of one dummy label, ``(num_classes,)``; inferred from the model if None.
        optimize_label: optimise a soft label with the image (DLG) or take the label from the
            gradient analytically (iDLG, ``False``).
        gradient_ignore_pos: indices of gradient tensors left out of the distance.
        pos_of_final_fc_layer: index of the last linear layer's weight gradient (for iDLG).
        num_iteration: optimisation steps.
        optimizer_class: a ``torch.optim`` class; LBFGS (default, with the strong-Wolfe line
            search unless ``optimizer_kwargs`` sets ``line_search_fn``) and Adam are the usual ones.
        optimizer_kwargs: extra arguments for it (``lr`` comes from ``lr``).
        lossfunc: the training loss; must accept class indices and, when ``optimize_label``,
            probability targets (``nn.CrossEntropyLoss`` does both).
        distancename: ``"l2"`` (DLG, iDLG, CPL) or ``"cossim"`` (GS).
        tv_reg_coef, lm_reg_coef, l2_reg_coef, bn_reg_coef, gc_reg_coef: weights of the total
            variation, label matching, L2, batch-norm statistics and group consistency terms.
        bn_reg_layers: batch-norm modules of ``target_model`` whose input statistics are pulled
            towards their running statistics (needed when ``bn_reg_coef > 0``).
        group_num: number of restarts optimised together (GradInversion); the returned image is
            their mean after registration.
        group_registration: register the restarts before averaging them (for the group term and
            the result): batch items matched one-to-one (within equal labels) and translated by at
            most ``registration_max_shift`` pixels onto the first restart (``False``: plain mean).
        registration_max_shift: largest translation, in pixels, tried by the registration (0: the
            batch matching only).
        lr: learning rate of the optimizer.
        clamp_range: ``(low, high)`` to clip the dummy input after each step, or None.
        early_stopping: stop after this many steps without a better loss (None: never).
        saving_interval: keep a copy of the dummy input every this many steps in ``snapshots``
            (0: none).
        log_interval: print the loss every this many steps (0: silent).
        progress: ``progress(step, num_iteration)``, may raise to stop.
        seed: seeds the dummy inputs; two attackers with the same seed give identical results.

    After :meth:`attack`: ``log_loss`` (the loss of every step), ``best_loss``, ``snapshots``
    (``(step, x)`` pairs) and, for ``group_num > 1``, ``group_x``/``group_y``.
    """

    attack_params = (
        "x_shape",
        "y_shape",
        "optimize_label",
        "num_iteration",
        "distancename",
        "tv_reg_coef",
        "lm_reg_coef",
        "l2_reg_coef",
        "bn_reg_coef",
        "gc_reg_coef",
        "group_num",
        "group_registration",
        "registration_max_shift",
        "lr",
        "seed",
    )

    def __init__(
        self,
        target_model: nn.Module,
        x_shape: Sequence[int],
        y_shape: Optional[Sequence[int]] = None,
        optimize_label: bool = True,
        gradient_ignore_pos: Sequence[int] = (),
        pos_of_final_fc_layer: int = -2,
        num_iteration: int = 100,
        optimizer_class=torch.optim.LBFGS,
        optimizer_kwargs: Optional[dict] = None,
        lossfunc: Callable = nn.CrossEntropyLoss(),
        distancename: str = "l2",
        tv_reg_coef: float = 0.0,
        lm_reg_coef: float = 0.0,
        l2_reg_coef: float = 0.0,
        bn_reg_coef: float = 0.0,
        gc_reg_coef: float = 0.0,
        bn_reg_layers: Sequence[nn.Module] = (),
        group_num: int = 1,
        group_registration: bool = True,
        registration_max_shift: int = 1,
        lr: float = 1.0,
        clamp_range: Optional[Tuple[float, float]] = None,
        early_stopping: Optional[int] = None,
        saving_interval: int = 0,
        log_interval: int = 0,
        progress: Optional[ProgressCallback] = None,
        seed: int = 0,
        device: str = "cpu",
    ):
        super().__init__(target_model)
        if not isinstance(target_model, nn.Module):
            raise TypeError(f"target_model must be a torch.nn.Module, got {type(target_model).__name__}")
        if not callable(lossfunc):
            raise TypeError("lossfunc must be callable, e.g. nn.CrossEntropyLoss()")
        if not (isinstance(optimizer_class, type) and issubclass(optimizer_class, torch.optim.Optimizer)):
            raise TypeError("optimizer_class must be a torch.optim.Optimizer class, e.g. torch.optim.LBFGS")
        self.x_shape = x_shape
        self.y_shape = y_shape
        self.optimize_label = optimize_label
        self.gradient_ignore_pos = gradient_ignore_pos
        self.pos_of_final_fc_layer = pos_of_final_fc_layer
        self.num_iteration = num_iteration
        self.optimizer_class = optimizer_class
        self.optimizer_kwargs = dict(optimizer_kwargs or {})
        if optimizer_class is torch.optim.LBFGS:
            # plain LBFGS steps diverge on some DLG runs; the line search keeps every step a descent
            self.optimizer_kwargs.setdefault("line_search_fn", "strong_wolfe")
        self.lossfunc = lossfunc
        self.distancename = distancename
        self.tv_reg_coef = tv_reg_coef
        self.lm_reg_coef = lm_reg_coef
        self.l2_reg_coef = l2_reg_coef
        self.bn_reg_coef = bn_reg_coef
        self.gc_reg_coef = gc_reg_coef
        self.bn_reg_layers = list(bn_reg_layers)
        self.group_num = group_num
        self.group_registration = group_registration
        self.registration_max_shift = registration_max_shift
        self.lr = lr
        self.clamp_range = clamp_range
        self.early_stopping = early_stopping
        self.saving_interval = saving_interval
        self.log_interval = log_interval
        self.progress = progress
        self.device = device
        self._check_params()
        self.x_shape = tuple(int(s) for s in x_shape)
        self.y_shape = self._infer_y_shape() if y_shape is None else tuple(int(s) for s in y_shape)
        self.log_loss: List[float] = []
        self.best_loss = float("inf")
        self.snapshots: List[Tuple[int, torch.Tensor]] = []
        self.group_x: List[torch.Tensor] = []
        self.group_y: List[torch.Tensor] = []
        self.reset_seed(seed)

    # -- set-up ----------------------------------------------------------------------------------
    def _check_params(self) -> None:
        if not isinstance(self.x_shape, (tuple, list, torch.Size)) or not self.x_shape:
            raise TypeError(f"x_shape must be a non-empty tuple such as (1, 8, 8), got {self.x_shape!r}")
        for s in self.x_shape:
            check_positive_int("x_shape entries", s)
        if self.y_shape is not None:
            if not isinstance(self.y_shape, (tuple, list, torch.Size)) or len(self.y_shape) != 1:
                raise TypeError(f"y_shape must be (num_classes,), got {self.y_shape!r}")
            check_positive_int("y_shape entries", self.y_shape[0])
        if not isinstance(self.optimize_label, bool):
            raise TypeError(f"optimize_label must be True or False, got {self.optimize_label!r}")
        if self.distancename not in DISTANCES:
            raise ValueError(f"unknown distancename {self.distancename!r}; choose one of {sorted(DISTANCES)}")
        check_positive_int("num_iteration", self.num_iteration)
        check_positive("lr", self.lr)
        for name in ("tv_reg_coef", "lm_reg_coef", "l2_reg_coef", "bn_reg_coef", "gc_reg_coef"):
            check_positive(name, getattr(self, name), allow_zero=True)
        check_positive_int("group_num", self.group_num)
        if not isinstance(self.group_registration, bool):
            raise TypeError(f"group_registration must be True or False, got {self.group_registration!r}")
        check_positive_int("registration_max_shift", self.registration_max_shift, allow_zero=True)
        check_positive_int("saving_interval", self.saving_interval, allow_zero=True)
        check_positive_int("log_interval", self.log_interval, allow_zero=True)
        if self.early_stopping is not None:
            check_positive_int("early_stopping", self.early_stopping)
        if self.clamp_range is not None:
            if len(self.clamp_range) != 2:
                raise ValueError(f"clamp_range must be (low, high), got {self.clamp_range!r}")
            lo, hi = (check_finite("clamp_range", v) for v in self.clamp_range)
            if lo >= hi:
                raise ValueError(f"clamp_range low ({lo}) must be below high ({hi})")
        bn_types = (nn.modules.batchnorm._BatchNorm,)
        own = {id(m) for m in self.target_model.modules()}
        for i, layer in enumerate(self.bn_reg_layers):
            if not isinstance(layer, bn_types):
                raise TypeError(f"bn_reg_layers[{i}] must be a batch-norm layer, got {type(layer).__name__}")
            if id(layer) not in own:
                raise ValueError(f"bn_reg_layers[{i}] is not a module of target_model")
        if self.bn_reg_coef > 0 and not self.bn_reg_layers:
            raise ValueError("bn_reg_coef > 0 needs bn_reg_layers (the model's batch-norm layers)")
        if self.gc_reg_coef > 0 and self.group_num < 2:
            raise ValueError("gc_reg_coef > 0 needs group_num >= 2 restarts")
        n_params = len(list(self.target_model.parameters()))
        for pos in self.gradient_ignore_pos:
            if not isinstance(pos, int) or not -n_params <= pos < n_params:
                raise ValueError(f"gradient_ignore_pos entry {pos!r} is not an index into the model's {n_params} parameters")

    def _infer_y_shape(self) -> Tuple[int]:
        was_training = self.target_model.training
        self.target_model.eval()
        try:
            with torch.no_grad():
                out = self.target_model(torch.zeros((1,) + self.x_shape, device=self.device))
        except Exception as exc:
            raise ValueError(f"target_model cannot take inputs of x_shape={self.x_shape}: {exc}") from exc
        finally:
            self.target_model.train(was_training)
        if out.dim() != 2:
            raise ValueError(f"target_model should return (batch, num_classes) logits, got shape {tuple(out.shape)}")
        return (int(out.shape[1]),)

    def reset_seed(self, seed: int) -> None:
        """Restart the attacker's random stream (dummy inputs) from ``seed``."""
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        self.seed = seed
        self._generator = torch.Generator()
        self._generator.manual_seed(seed)

    def _check_gradients(self, received_gradients) -> List[torch.Tensor]:
        params = list(self.target_model.parameters())
        if isinstance(received_gradients, torch.Tensor) or not isinstance(received_gradients, (list, tuple)):
            raise TypeError("received_gradients must be a list of tensors, one per parameter of target_model")
        if len(received_gradients) != len(params):
            raise ValueError(
                f"received_gradients has {len(received_gradients)} tensors but target_model has {len(params)} parameters"
            )
        out = []
        for i, (g, p) in enumerate(zip(received_gradients, params)):
            if not torch.is_tensor(g):
                raise TypeError(f"received_gradients[{i}] must be a tensor, got {type(g).__name__}")
            if g.numel() != p.numel():
                raise ValueError(
                    f"received_gradients[{i}] has shape {tuple(g.shape)} but the model's parameter {i} has shape {tuple(p.shape)}"
                )
            g = g.detach().to(device=p.device, dtype=p.dtype).reshape(p.shape)
            if not torch.isfinite(g).all():
                raise ValueError(f"received_gradients[{i}] contains NaN or inf")
            out.append(g)
        return out

    # -- the objective ---------------------------------------------------------------------------
    def _bn_hooks(self, stats: list):
        def hook(module, inputs, _output):
            x = inputs[0]
            dims = [0] + list(range(2, x.dim()))
            stats.append((module, x.mean(dim=dims), x.var(dim=dims, unbiased=False)))

        return [layer.register_forward_hook(hook) for layer in self.bn_reg_layers]

    def _objective(self, params, received, fake_x, fake_label, labels, bn_stats, group_mean):
        """The loss the dummy minimises (returns a scalar with a graph to ``fake_x``/``fake_label``)."""
        bn_stats.clear()
        pred = self.target_model(fake_x)
        if self.optimize_label and labels is None:
            label_probs = F.softmax(fake_label, dim=-1)
            loss = self.lossfunc(pred, label_probs)
        else:
            label_probs = None
            loss = self.lossfunc(pred, labels)
        fake_grads = torch.autograd.grad(loss, params, create_graph=True)
        if self._keep is not None:
            fake_grads = [fake_grads[i] for i in self._keep]
            received = [received[i] for i in self._keep]
        total = self._distance(fake_grads, received)
        if self.tv_reg_coef > 0:
            total = total + self.tv_reg_coef * total_variation(fake_x)
        if self.lm_reg_coef > 0:
            if label_probs is None:
                label_probs = F.one_hot(labels, pred.shape[-1]).to(pred.dtype)
            total = total + self.lm_reg_coef * label_matching(pred, label_probs)
        if self.l2_reg_coef > 0:
            total = total + self.l2_reg_coef * (fake_x ** 2).sum()
        if self.bn_reg_coef > 0:
            reg = 0.0
            for module, mean, var in bn_stats:
                reg = reg + torch.norm(mean - module.running_mean, 2) + torch.norm(var - module.running_var, 2)
            total = total + self.bn_reg_coef * reg
        if self.gc_reg_coef > 0 and group_mean is not None:
            total = total + self.gc_reg_coef * group_consistency(fake_x, group_mean)
        return total

    # -- public API ------------------------------------------------------------------------------
    def attack(self, received_gradients, batch_size: int = 1, init_x=None, labels=None):
        """Reconstruct the batch behind ``received_gradients``; return ``(x, y)``.

        ``x`` has shape ``(batch_size, *x_shape)``; ``y`` holds class indices. ``init_x`` starts
        from a given input instead of noise; ``labels`` fixes known labels. With ``group_num > 1``
        this runs :meth:`group_attack` and returns the mean of the restarts.
        """
        if self.group_num > 1:
            xs, ys = self.group_attack(received_gradients, batch_size=batch_size, init_x=init_x, labels=labels)
            return self.group_mean(xs, ys[0] if self._labels_fixed else None), ys[0]
        xs, ys = self._run(received_gradients, batch_size, init_x, labels, group=1)
        return xs[0], ys[0]

    def group_mean(self, xs: Sequence[torch.Tensor], labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The restarts' mean: registered onto the first restart (``group_registration``) or plain."""
        if not self.group_registration:
            return torch.stack(list(xs)).mean(dim=0)
        return registered_mean(xs, labels, self.registration_max_shift)[0]

    def group_attack(self, received_gradients, batch_size: int = 1, init_x=None, labels=None):
        """GradInversion's restarts: ``group_num`` dummies optimised side by side, each pulled
        towards the group's mean by ``gc_reg_coef``; returns the lists ``(xs, ys)``."""
        return self._run(received_gradients, batch_size, init_x, labels, group=self.group_num)

    def _prepare_labels(self, received, batch_size, labels):
        if labels is not None:
            labels = torch.as_tensor(labels, device=self.device)
            if labels.dtype not in (torch.int64, torch.int32) or labels.shape != (batch_size,):
                raise ValueError(f"labels must be {batch_size} integer class indices, got {tuple(labels.shape)} {labels.dtype}")
            if labels.min() < 0 or labels.max() >= self.y_shape[0]:
                raise ValueError(f"labels must be in [0, {self.y_shape[0]})")
            return labels.long()
        if not self.optimize_label:
            return estimate_labels(received, batch_size, self.pos_of_final_fc_layer).to(self.device)
        return None

    def _run(self, received_gradients, batch_size, init_x, labels, group):
        check_positive_int("batch_size", batch_size)
        received = self._check_gradients(received_gradients)
        labels = self._prepare_labels(received, batch_size, labels)
        self._labels_fixed = labels is not None
        x_full = (batch_size,) + self.x_shape
        if init_x is not None:
            init_x = torch.as_tensor(init_x, dtype=torch.float32)
            if tuple(init_x.shape) != x_full:
                raise ValueError(f"init_x must have shape {x_full}, got {tuple(init_x.shape)}")
        self._distance = DISTANCES[self.distancename]
        n_grad = len(received)
        ignore = {p % n_grad for p in self.gradient_ignore_pos}
        self._keep = [i for i in range(n_grad) if i not in ignore] if ignore else None

        workers = []
        for _ in range(group):
            if init_x is not None:
                x = init_x.clone().to(self.device)
            else:
                x = torch.randn(x_full, generator=self._generator).to(self.device)
            x.requires_grad_(True)
            variables = [x]
            y = None
            if labels is None:
                y = torch.randn((batch_size,) + self.y_shape, generator=self._generator).to(self.device)
                y.requires_grad_(True)
                variables.append(y)
            opt = self.optimizer_class(variables, lr=self.lr, **self.optimizer_kwargs)
            workers.append({"x": x, "y": y, "vars": variables, "opt": opt, "best": float("inf"),
                            "best_x": x.detach().clone(), "best_y": None if y is None else y.detach().clone()})

        self.log_loss = []
        self.snapshots = []
        params = list(self.target_model.parameters())
        bn_stats: list = []
        hooks = self._bn_hooks(bn_stats) if self.bn_reg_coef > 0 else []
        saved_bn = self._freeze_bn_statistics()
        since_best, running_best = 0, float("inf")
        try:
            for it in range(1, self.num_iteration + 1):
                targets = [None] * len(workers)
                if group > 1 and self.gc_reg_coef > 0:
                    current = [w["x"].detach() for w in workers]
                    if self.group_registration:
                        # each restart is pulled towards the registered mean, mapped into its own frame
                        mean, regs = registered_mean(current, labels, self.registration_max_shift)
                        targets = [r.from_reference(mean) for r in regs]
                    else:
                        targets = [torch.stack(current).mean(dim=0)] * len(workers)
                step_losses = []
                for w, target in zip(workers, targets):
                    def closure(w=w, target=target):
                        w["opt"].zero_grad()
                        loss = self._objective(params, received, w["x"], w["y"], labels, bn_stats, target)
                        grads = torch.autograd.grad(loss, w["vars"])
                        for v, g in zip(w["vars"], grads):
                            v.grad = g
                        return loss

                    # step() returns the loss at the point it started from: keep that point
                    x_before = w["x"].detach().clone()
                    y_before = None if w["y"] is None else w["y"].detach().clone()
                    loss = w["opt"].step(closure)
                    if self.clamp_range is not None:
                        with torch.no_grad():
                            w["x"].clamp_(*self.clamp_range)
                    value = float(loss.detach()) if torch.is_tensor(loss) else float(loss)
                    step_losses.append(value)
                    if value < w["best"]:
                        w["best"], w["best_x"], w["best_y"] = value, x_before, y_before
                mean_loss = sum(step_losses) / len(step_losses)
                self.log_loss.append(mean_loss)
                if mean_loss < running_best:
                    running_best, since_best = mean_loss, 0
                else:
                    since_best += 1
                if self.saving_interval and it % self.saving_interval == 0:
                    self.snapshots.append((it, workers[0]["x"].detach().clone()))
                if self.log_interval and it % self.log_interval == 0:
                    print(f"iteration {it}: loss {mean_loss:.6g}")
                report_progress(self.progress, it, self.num_iteration)
                if not all(math.isfinite(v) for v in step_losses):
                    break  # the optimiser diverged: keep the best iterate seen
                if self.early_stopping is not None and since_best >= self.early_stopping:
                    break
        finally:
            for h in hooks:
                h.remove()
            self._restore_bn_statistics(saved_bn)

        self.best_loss = min(w["best"] for w in workers)
        xs, ys = [], []
        for w in workers:
            xs.append(w["best_x"])
            if labels is not None:
                ys.append(labels.clone())
            else:
                ys.append(w["best_y"].argmax(dim=-1))
        self.group_x, self.group_y = xs, ys
        return xs, ys

    # -- leave the target model as it was -------------------------------------------------------
    def _freeze_bn_statistics(self):
        saved = []
        for m in self.target_model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                buffers = {k: v.clone() for k, v in m.named_buffers(recurse=False) if v is not None}
                saved.append((m, m.momentum, buffers))
                m.momentum = 0.0  # running statistics stay fixed while the dummy passes through
        return saved

    @staticmethod
    def _restore_bn_statistics(saved) -> None:
        for m, momentum, buffers in saved:
            m.momentum = momentum
            with torch.no_grad():
                for k, v in buffers.items():
                    getattr(m, k).copy_(v)
