"""DP-SGD (Abadi et al. 2016) as in the paper's Code 4, AdaDPS, DPlis, and a DP FedAVG client.

Lots and batches: a **lot** is the set of samples of one noisy step — the unit of privacy
accounting (the sampling rate is q = lot_size / N). ``lot_loader(optimizer)`` draws lots by
Poisson sampling (each sample joins a lot independently with probability q, the sampling the RDP
accountant assumes; ``sampling="shuffle"`` gives fixed-size lots from a permutation, a common
approximation not covered exactly by the Poisson analysis). ``batch_loader(lot)`` only splits a
lot into batches for compute: ``optimizer.step()`` after each batch clips that batch's per-sample
gradients and adds them up; the noisy update happens once per lot, when the loop asks
``lot_loader`` for the next lot. Each lot counts one step into the accountant.
"""
import copy
import math
from typing import Callable, Optional

import torch
from torch.optim import optimizer as torch_optimizer
from torch.utils.data import DataLoader, Dataset, TensorDataset

from ...manager import BaseManager
from ...utils.progress import ProgressCallback, report_progress
from ...utils.seeding import make_generator
from ...utils.validation import check_positive, check_positive_int
from .accountant import GeneralMomentAccountant
from .grad_sample import DPEngine

SAMPLINGS = ("poisson", "shuffle")


def _rows(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``t[idx]`` in ``t``'s memory layout. Plain indexing returns NCHW strides even for channels-last
    data (with one channel both layouts are "contiguous", and the strides still differ), and oneDNN
    picks its convolution layout from the input's strides: for the digits CNN the channels-last
    convolutions are 1.3-1.5x faster, forward and backward."""
    if len(idx) <= len(t) and t.dim() > 1 and (not t.is_contiguous() or (t.dim() == 4 and t.shape[1] == 1)):
        return torch.index_select(t, 0, idx, out=torch.empty_like(t[:len(idx)]))
    return t.index_select(0, idx)  # (faster than t[idx])


def _take(dataset: Dataset, idx: torch.Tensor):
    if isinstance(dataset, TensorDataset):
        return tuple(_rows(t, idx) for t in dataset.tensors)
    items = [dataset[int(i)] for i in idx]
    if not items:
        first = dataset[0]
        return tuple(torch.as_tensor(f).unsqueeze(0)[:0] for f in first)
    return tuple(torch.stack([torch.as_tensor(it[k]) for it in items]) for k in range(len(items[0])))


class _TensorBatches:
    """Consecutive slices of a lot's tensors (what a non-shuffled DataLoader yields, without its per-item cost)."""

    def __init__(self, tensors, batch_size: int):
        self.tensors, self.batch_size = tensors, batch_size

    def __len__(self):
        return math.ceil(len(self.tensors[0]) / self.batch_size)

    def __iter__(self):
        n = len(self.tensors[0])
        if n <= self.batch_size:  # the whole lot is one batch (no slicing)
            if n:
                yield tuple(self.tensors)
            return
        for s in range(0, n, self.batch_size):
            yield tuple(t[s:s + self.batch_size] for t in self.tensors)


def _group_positions(optimizer, params):
    """Per param group, the positions in ``params`` of its parameters (for the plain-SGD step)."""
    position = {id(p): i for i, p in enumerate(params)}
    return [[position[id(p)] for p in g["params"] if id(p) in position] for g in optimizer.param_groups]


# torch.optim's process-wide step hooks (dicts mutated in place); None if a torch version lacks them
_GLOBAL_STEP_HOOKS = tuple(getattr(torch_optimizer, name, None)
                           for name in ("_global_optimizer_pre_hooks", "_global_optimizer_post_hooks"))


def _plain_sgd_steps(optimizer, base_cls: type, positions):
    """``[(lr, positions)]`` per param group when ``base_cls.step`` would be exactly ``p ← p − lr·g``
    (``torch.optim.SGD`` without momentum, weight decay, maximize or step hooks); else None. The DP
    optimizers then apply the noisy gradients as one foreach add per group: the same arithmetic as
    SGD's step, without its per-call Python work (about 0.1 ms a lot on the digits models, half of
    the noisy step)."""
    if base_cls is not torch.optim.SGD or len(positions) != len(optimizer.param_groups):
        return None
    pre, post = _GLOBAL_STEP_HOOKS
    own_pre = getattr(optimizer, "_optimizer_step_pre_hooks", None)
    own_post = getattr(optimizer, "_optimizer_step_post_hooks", None)
    if pre is None or post is None or own_pre is None or own_post is None or pre or post or own_pre or own_post:
        return None  # (unknown torch internals, or hooks: the optimizer's own step runs them)
    steps = []
    for group, pos in zip(optimizer.param_groups, positions):
        lr = group["lr"]
        if (type(lr) not in (float, int) or group["momentum"] != 0 or group["weight_decay"] != 0
                or group["maximize"] or group.get("differentiable") or group.get("fused")):
            return None
        if pos:
            steps.append((lr, pos))
    return steps


def check_accountant(accountant) -> None:
    """DP-SGD needs an accountant it can count steps into and ask ε of: the RDP moments accountant,
    the PRV accountant, or any object with the same ``add_step_info``/``get_epsilon``/``reset_step_info``."""
    missing = [m for m in ("add_step_info", "get_epsilon", "reset_step_info") if not callable(getattr(accountant, m, None))]
    if missing or not hasattr(accountant, "noise_type"):
        raise TypeError(f"accountant must be a GeneralMomentAccountant or PRVAccountant (an object with "
                        f"add_step_info, get_epsilon, reset_step_info and noise_type), got {type(accountant).__name__}")


class DPSGDManager(BaseManager):
    """Builds the DP optimizer class and the lot/batch loaders of the paper's Code 4.

    Args:
        accountant: a :class:`GeneralMomentAccountant` (RDP) or :class:`PRVAccountant` (tighter ε);
            every lot adds one step to it.
        optimizer_cls: the optimizer the noisy gradients are fed to (``optim.SGD``, ``optim.Adam``…).
        l2_norm_clip: C, the bound on each sample's gradient norm.
        dataset: the private training data (a ``Dataset`` of ``(x, y)``).
        lot_size: expected samples per lot (q = lot_size / len(dataset)).
        batch_size: samples per compute batch inside a lot (None: the whole lot).
        iterations: lots per ``lot_loader`` call (None: one epoch, ``len(dataset) // lot_size``).
        smoothing, smoothing_radius: DPlis (Wang et al. 2021): each batch's gradients are taken at
            weights perturbed by Gaussian noise, i.e. of the randomly smoothed loss. The
            perturbation's standard deviation is ``smoothing_radius`` times the per-coordinate
            standard deviation of one DP update's noise, ``lr·σ·C/lot_size``.
        sampling: ``"poisson"`` (default, what the accountant assumes) or ``"shuffle"``.
        loss_reduction: ``"mean"`` or ``"sum"``, how the loss combines a batch.
        seed: seeds the lot sampling and the noise.
    """

    def __init__(self, accountant: GeneralMomentAccountant, optimizer_cls: type, l2_norm_clip: float = 1.0,
                 dataset: Optional[Dataset] = None, lot_size: int = 64, batch_size: Optional[int] = None,
                 iterations: Optional[int] = None, smoothing: bool = False, smoothing_radius: float = 10.0,
                 sampling: str = "poisson", loss_reduction: str = "mean", seed: Optional[int] = None):
        super().__init__(accountant, optimizer_cls)
        check_accountant(accountant)
        if not (isinstance(optimizer_cls, type) and issubclass(optimizer_cls, torch.optim.Optimizer)):
            raise TypeError(f"optimizer_cls must be a torch.optim.Optimizer subclass (e.g. optim.SGD), got {optimizer_cls!r}")
        self.accountant = accountant
        self.optimizer_cls = optimizer_cls
        self.l2_norm_clip = check_positive("l2_norm_clip", l2_norm_clip)
        self.dataset = dataset
        self.lot_size = check_positive_int("lot_size", lot_size)
        self.batch_size = None if batch_size is None else check_positive_int("batch_size", batch_size)
        self.iterations = None if iterations is None else check_positive_int("iterations", iterations)
        if not isinstance(smoothing, bool):
            raise TypeError(f"smoothing must be True or False, got {smoothing!r}")
        self.smoothing = smoothing
        self.smoothing_radius = check_positive("smoothing_radius", smoothing_radius, allow_zero=True)
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {list(SAMPLINGS)}, got {sampling!r}")
        self.sampling = sampling
        if loss_reduction not in ("mean", "sum"):
            raise ValueError(f"loss_reduction must be 'mean' or 'sum', got {loss_reduction!r}")
        self.loss_reduction = loss_reduction
        self.seed = seed
        self.generator = make_generator(seed) if seed is not None else torch.Generator()
        if seed is None:
            self.generator.seed()  # non-deterministic, without touching the global RNG
        self.noise_multiplier: Optional[float] = None
        if dataset is not None:
            if len(dataset) == 0:
                raise ValueError("dataset is empty")
            if self.lot_size > len(dataset):
                raise ValueError(f"lot_size must be <= len(dataset) = {len(dataset)}, got {lot_size}")

    @property
    def sampling_rate(self) -> float:
        self._need_dataset()
        return self.lot_size / len(self.dataset)

    def _need_dataset(self):
        if self.dataset is None:
            raise ValueError("pass dataset= to the manager: the lot loader and the sampling rate need the training data")

    # -- the optimizer ------------------------------------------------------------------------
    def _make_engine(self, params):
        return DPEngine(params, self.l2_norm_clip, self.noise_multiplier, self.loss_reduction, self.generator)

    def _lot_denominator(self, engine) -> float:
        return float(self.lot_size) if self.sampling == "poisson" else float(max(engine.lot_samples, 1))

    def _prepare_gradients(self, optimizer, engine, grads):
        """Hook for subclasses (AdaDPS): turn the noisy mean gradients into what the base step sees."""
        return grads

    def extend(self, cls: type) -> type:
        manager = self
        # the base step with the step hooks and profiler range (torch.optim adds them to a class's step
        # only once an instance of that class exists)
        base_step = cls.step if getattr(cls.step, "hooked", False) else torch.optim.Optimizer.profile_hook_step(cls.step)

        class DPOptimizer(cls):
            def __init__(self, params, *args, **kwargs):
                params = list(params)
                if not params:
                    raise ValueError("the DP optimizer got an empty parameter list (an optimizer needs parameters)")
                super().__init__(params, *args, **kwargs)
                flat = [p for g in self.param_groups for p in g["params"]]
                self.dp_engine = manager._make_engine(flat)
                self._group_positions = _group_positions(self, self.dp_engine.params)
                self.in_lot = False
                self._perturbation = None
                manager._on_optimizer(self)

            def zero_grad(self, set_to_none: bool = True):
                if any(p.grad is not None for g in self.param_groups for p in g["params"]):
                    super().zero_grad(set_to_none=set_to_none)  # (the engine leaves no .grad behind)
                self.dp_engine._thaw()
                self.dp_engine.captures = []
                self.dp_engine.active = True
                if manager.smoothing and self._perturbation is None:
                    self._perturb()

            def _perturb(self):
                lr = float(self.param_groups[0].get("lr", 1.0))
                std = manager.smoothing_radius * lr * manager.noise_multiplier * manager.l2_norm_clip / manager.lot_size
                if std <= 0:
                    return
                self._perturbation = []
                with torch.no_grad():
                    for p in self.dp_engine.params:
                        u = torch.normal(0.0, std, size=p.shape, generator=manager.generator, dtype=p.dtype)
                        p.add_(u)
                        self._perturbation.append(u)

            def _restore(self):
                if self._perturbation is not None:
                    with torch.no_grad():
                        for p, u in zip(self.dp_engine.params, self._perturbation):
                            p.sub_(u)
                    self._perturbation = None

            def step(self, closure=None):
                """Clip this batch's per-sample gradients into the lot; outside a lot, the batch is the lot."""
                if closure is not None:
                    with torch.enable_grad():
                        closure()
                try:
                    self.dp_engine.clip_and_accumulate()
                finally:
                    self._restore()
                if not self.in_lot:
                    self.step_for_lot()

            # torch.optim wraps every subclass's step in a profiler range and the step hooks (about
            # 20 µs a call here, once per batch); "hooked" tells it this one needs no wrapper: the
            # hooks and the profiler range run around the parameter update itself (the base step,
            # once per lot; step_for_lot takes the base step whenever hooks are registered)
            step.hooked = True

            def step_for_lot(self):
                """The noisy update of one lot; counts one step into the accountant."""
                engine = self.dp_engine
                grads = engine.noisy_gradients(manager._lot_denominator(engine), reuse=True)
                grads = manager._prepare_gradients(self, engine, grads)
                if len(self._group_positions) != len(self.param_groups):  # (add_param_group)
                    self._group_positions = _group_positions(self, engine.params)
                plain = _plain_sgd_steps(self, cls, self._group_positions)
                if plain is not None:
                    with torch.no_grad():
                        for lr, positions in plain:
                            torch._foreach_add_([engine.params[i] for i in positions],
                                                [grads[i] for i in positions], alpha=-lr)
                else:
                    for p, g in zip(engine.params, grads):
                        p.grad = g
                    base_step(self)
                    for p in engine.params:
                        p.grad = None
                manager.accountant.add_step_info({"sigma": manager.noise_multiplier}, manager.step_sampling_rate(), 1)

        DPOptimizer.__name__ = f"DP{cls.__name__}"
        return DPOptimizer

    def _on_optimizer(self, optimizer):
        pass

    def step_sampling_rate(self) -> float:
        return self.sampling_rate if self.dataset is not None else 1.0

    # -- loaders --------------------------------------------------------------------------------
    def _lot_indices(self, n: int, num_lots: int):
        q = self.lot_size / n
        if self.sampling == "poisson":
            for _ in range(num_lots):
                yield torch.nonzero(torch.rand(n, generator=self.generator) < q).squeeze(1)
        else:
            perm = torch.randperm(n, generator=self.generator)
            for i in range(num_lots):
                start = (i * self.lot_size) % n
                if start + self.lot_size > n:
                    perm = torch.randperm(n, generator=self.generator)
                    start = 0
                yield perm[start:start + self.lot_size]

    def privatize(self, noise_multiplier: float):
        """Return ``(dpoptimizer_cls, lot_loader, batch_loader)`` for noise multiplier σ."""
        if self.accountant.noise_type != "Gaussian":
            raise ValueError("DP-SGD adds Gaussian noise: use an accountant with noise_type='Gaussian'")
        self.noise_multiplier = check_positive("noise_multiplier", noise_multiplier)
        dpoptimizer_cls = self.attach(self.optimizer_cls)
        manager = self

        def lot_loader(optimizer):
            if not hasattr(optimizer, "dp_engine"):
                raise TypeError("lot_loader expects the optimizer built from privatize()'s dpoptimizer_cls")
            manager._need_dataset()
            n = len(manager.dataset)
            num_lots = manager.iterations or max(1, n // manager.lot_size)
            for idx in manager._lot_indices(n, num_lots):
                lot = _take(manager.dataset, idx)
                optimizer.in_lot = True
                optimizer.dp_engine.reset_lot()
                manager._before_lot(optimizer)
                yield lot
                optimizer.in_lot = False
                optimizer.step_for_lot()

        def batch_loader(lot_dataset):
            bs = manager.batch_size or max(1, len(lot_dataset))
            if isinstance(lot_dataset, TensorDataset):
                return _TensorBatches(lot_dataset.tensors, bs)
            return DataLoader(lot_dataset, batch_size=bs, shuffle=False)

        return dpoptimizer_cls, lot_loader, batch_loader

    def _before_lot(self, optimizer):
        pass


class AdaDPSManager(DPSGDManager):
    """AdaDPS (Li et al. 2022, Private Adaptive Optimization with Side Information), Algorithm 1.

    Each lot: side information gives a preconditioner ``A = √v̂ + ε₀``; each per-sample gradient is
    divided by ``A`` *before* clipping, so the clip bound and the noise act in the preconditioned
    geometry; the noisy mean ``(Σ clip(g_i/A) + N(0, σ²C²)) / L`` is the step of the base optimizer
    (``optim.SGD``: ``w ← w − lr·g̃``, with its own lr). ``v`` is RMSProp's second-moment estimate,
    ``v ← β·v + (1-β)·g²`` (``v̂ = v / (1-βᵗ)``), refreshed once per lot from:

    - ``public_dataset`` (needs ``model`` and ``criterion``): the gradient of the mean loss on the
      public data at the current weights — all of it by default (``public_batch_size=None``; with a
      small public set, a random sub-batch per lot gives a noisier v and, on the digits MLP, lost
      to DP-SGD), or a random batch of ``public_batch_size``;
    - without public data, the previous noisy private gradients (post-processing, no privacy cost).

    Defaults (``beta=0.9``, ``eps_root=0.03``) and the learning rate: chosen on the digits MLP at
    ε=4 (8 epochs, lots of 64, C=1, 100 public test images; eps_root in {0.03, 0.1, 0.3} x lr in
    {1, 1.4, 2}, seeds 0-4), where AdaDPS at lr 1.4 beats DP-SGD at its best lr (1.0 of
    {0.7, 1, 1.4}) on average — by a small margin; see the README's DP section.
    """

    def __init__(self, accountant, optimizer_cls, l2_norm_clip: float = 1.0, dataset=None, lot_size: int = 64,
                 batch_size=None, iterations=None, public_dataset: Optional[Dataset] = None,
                 model: Optional[torch.nn.Module] = None, criterion: Optional[Callable] = None,
                 public_batch_size: Optional[int] = None, beta: float = 0.9, eps_root: float = 0.03, **kwargs):
        super().__init__(accountant, optimizer_cls, l2_norm_clip=l2_norm_clip, dataset=dataset, lot_size=lot_size,
                         batch_size=batch_size, iterations=iterations, **kwargs)
        if public_dataset is not None and (model is None or criterion is None):
            raise ValueError("public_dataset needs model= and criterion= to compute the side-information gradients")
        if public_dataset is not None and len(public_dataset) == 0:
            raise ValueError("public_dataset is empty")
        self.public_dataset = public_dataset
        self.model = model
        self.criterion = criterion
        self.public_batch_size = (None if public_batch_size is None
                                  else check_positive_int("public_batch_size", public_batch_size))
        self.beta = float(beta)
        if not 0.0 <= self.beta < 1.0:
            raise ValueError(f"beta must be in [0, 1), got {beta}")
        self.eps_root = check_positive("eps_root", eps_root)
        self._public = None

    def _on_optimizer(self, optimizer):
        engine = optimizer.dp_engine
        optimizer.adadps_v = {id(p): torch.zeros_like(p) for p in engine.params}
        optimizer.adadps_steps = 0
        self._set_preconditioner(optimizer)

    def _set_preconditioner(self, optimizer):
        engine = optimizer.dp_engine
        t = max(optimizer.adadps_steps, 1)
        corr = 1.0 - self.beta ** t if optimizer.adadps_steps > 0 else 1.0
        if optimizer.adadps_steps == 0:
            engine.preconditioner = {pid: torch.ones_like(v) for pid, v in optimizer.adadps_v.items()}
        else:
            engine.preconditioner = {pid: (v / corr).sqrt() + self.eps_root for pid, v in optimizer.adadps_v.items()}

    def _update_v(self, optimizer, grads):
        for p, g in zip(optimizer.dp_engine.params, grads):
            v = optimizer.adadps_v[id(p)]
            v.mul_(self.beta).add_((1 - self.beta) * g.detach() ** 2)
        optimizer.adadps_steps += 1

    def _before_lot(self, optimizer):
        if self.public_dataset is None:
            return
        engine = optimizer.dp_engine
        n = len(self.public_dataset)
        if self.public_batch_size is None or self.public_batch_size >= n:
            if self._public is None:
                self._public = _take(self.public_dataset, torch.arange(n))[:2]
            x, y = self._public
        else:
            idx = torch.randint(0, n, (self.public_batch_size,), generator=self.generator)
            x, y = _take(self.public_dataset, idx)[:2]
        active = engine.active
        engine.active = False
        try:
            loss = self.criterion(self.model(x), y)
            grads = torch.autograd.grad(loss, engine.params, allow_unused=True)
        finally:
            engine.active = active
        self._update_v(optimizer, [torch.zeros_like(p) if g is None else g for p, g in zip(engine.params, grads)])
        self._set_preconditioner(optimizer)

    def _prepare_gradients(self, optimizer, engine, grads):
        # the clipped/noised quantity is already preconditioned; without public data the noisy
        # (un-preconditioned) gradient estimate g·P feeds the next preconditioner
        if self.public_dataset is None:
            pre = engine.preconditioner
            self._update_v(optimizer, [g * pre[id(p)] for p, g in zip(engine.params, grads)])
            self._set_preconditioner(optimizer)
        return grads


class DPSGDClientManager(BaseManager):
    """Makes a FedAVG client train with DP-SGD: ``DPSGDClientManager(accountant, ...).attach(FedAVGClient)``.

    Each client gets its own copy of the accountant (``client.accountant``; its privacy is about
    its own data). ``local_train`` draws Poisson lots of expected size ``lot_size`` from the
    client's ``trainloader.dataset``, one epoch = ``len(data) // lot_size`` lots, and feeds each
    lot's noisy mean gradient to the client's optimizer.
    """

    def __init__(self, accountant: GeneralMomentAccountant, l2_norm_clip: float = 1.0, noise_multiplier: float = 1.0,
                 lot_size: int = 32, batch_size: Optional[int] = None, loss_reduction: str = "mean",
                 seed: Optional[int] = None):
        super().__init__(accountant)
        check_accountant(accountant)
        self.accountant = accountant
        self.l2_norm_clip = check_positive("l2_norm_clip", l2_norm_clip)
        self.noise_multiplier = check_positive("noise_multiplier", noise_multiplier)
        self.lot_size = check_positive_int("lot_size", lot_size)
        self.batch_size = None if batch_size is None else check_positive_int("batch_size", batch_size)
        self.loss_reduction = loss_reduction
        self.seed = seed

    def extend(self, cls: type) -> type:
        manager = self

        class DPSGDClient(cls):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.accountant = copy.deepcopy(manager.accountant)
                self.accountant.reset_step_info()
                seed = None if manager.seed is None else manager.seed * 1000003 + int(self.user_id)
                self.dp_generator = make_generator(seed) if seed is not None else None
                self._dp_engine = None

            def get_epsilon(self, delta: float) -> float:
                return self.accountant.get_epsilon(delta)

            def local_train(self, local_epoch, criterion, trainloader, optimizer, communication_id=0):
                dataset = trainloader.dataset
                n = len(dataset)
                if n == 0:
                    raise ValueError(f"client {self.user_id} has an empty dataloader")
                if manager.lot_size > n:
                    raise ValueError(f"client {self.user_id}: lot_size {manager.lot_size} > its {n} samples")
                if self._dp_engine is None:
                    self._dp_engine = DPEngine(list(self.model.parameters()), manager.l2_norm_clip,
                                               manager.noise_multiplier, manager.loss_reduction, self.dp_generator)
                engine = self._dp_engine
                q = manager.lot_size / n
                self.train()
                losses = []
                for _ in range(local_epoch):
                    total, count = 0.0, 0
                    for _lot in range(max(1, n // manager.lot_size)):
                        idx = torch.nonzero(torch.rand(n, generator=self.dp_generator) < q).squeeze(1)
                        x_lot, y_lot = _take(dataset, idx)[:2]
                        bs = manager.batch_size or max(1, len(idx))
                        for s in range(0, len(idx), bs):
                            xb, yb = x_lot[s:s + bs].to(self.device), y_lot[s:s + bs].to(self.device)
                            optimizer.zero_grad()
                            engine.captures, engine.active = [], True
                            loss = criterion(self(xb), yb)
                            loss.backward()
                            engine.clip_and_accumulate()
                            total += loss.item() * len(yb)
                            count += len(yb)
                        grads = engine.noisy_gradients(float(manager.lot_size), reuse=True)
                        for p, g in zip(engine.params, grads):
                            p.grad = g
                        optimizer.step()
                        optimizer.zero_grad()
                        self.accountant.add_step_info({"sigma": manager.noise_multiplier}, q, 1)
                    losses.append(total / max(count, 1))
                self.num_samples = n
                return losses

        return DPSGDClient
