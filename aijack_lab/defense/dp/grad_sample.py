"""Vectorised per-sample gradients, clipping and noising for DP-SGD.

:class:`DPEngine` watches the forward passes of the modules that own the optimizer's parameters
(a process-wide forward hook filtered by parameter identity, so the paper's loop works with only
``optimizer(nn.parameters())``). It keeps each layer's input and, on backward, the gradient of its
output, then computes per-sample gradients per layer type:

- ``nn.Linear`` on (B, in) inputs: never materialised. The per-sample norm is
  ``‖g_i‖·‖x_i‖`` (Goodfellow 2015) and the clipped sum is one matrix product ``(c⊙g)ᵀ x``.
- ``nn.Linear`` on (B, ..., in), ``nn.Conv1d``/``nn.Conv2d`` (groups=1, numeric padding):
  closed form with ``unfold`` and a batched matrix product.
- any other module with parameters: ``torch.func.vmap`` of the vector-Jacobian product of that
  module alone (falls back per layer, the rest of the model keeps the fast paths).
- BatchNorm in training mode mixes the samples of a batch, so per-sample gradients do not exist:
  a ``ValueError`` names the layer (use GroupNorm/LayerNorm, or put it in eval mode).
"""
import math
import weakref
from typing import Callable, Dict, List, Optional, Sequence

import torch
from torch import nn
from torch.nn import functional as F

_MIXING = (nn.modules.batchnorm._BatchNorm,)
_IN_VMAP = [0]  # > 0 while a vmap fallback runs a module: every engine's hooks stand aside


class _Capture:
    __slots__ = ("module", "inputs", "params", "grad")

    def __init__(self, module, inputs, params):
        self.module = module
        self.inputs = inputs
        self.params = params
        self.grad = None


def _conv_per_sample(module, x, g):
    """Per-sample weight (and bias) gradients of a Conv1d/Conv2d by unfold + bmm."""
    is1d = isinstance(module, nn.Conv1d)
    if is1d:
        x, g = x.unsqueeze(2), g.unsqueeze(2)
        kernel, stride = (1, module.kernel_size[0]), (1, module.stride[0])
        padding, dilation = (0, module.padding[0]), (1, module.dilation[0])
    else:
        kernel, stride, padding, dilation = module.kernel_size, module.stride, module.padding, module.dilation
    b = x.shape[0]
    cols = F.unfold(x, kernel, dilation=dilation, padding=padding, stride=stride)  # (B, Cin*k*k, L)
    g2 = g.reshape(b, g.shape[1], -1)  # (B, Cout, L)
    out = {"weight": torch.bmm(g2, cols.transpose(1, 2)).view(b, *module.weight.shape)}
    if module.bias is not None:
        out["bias"] = g2.sum(2)
    return out


def _conv_fast_ok(module) -> bool:
    return (
        isinstance(module, (nn.Conv1d, nn.Conv2d))
        and module.groups == 1
        and not isinstance(module.padding, str)
        and module.padding_mode == "zeros"
    )


def _vmap_per_sample(module, inputs, g, params):
    """Per-sample gradients of ``module``'s own parameters by vmap over the vjp of the module alone."""
    from torch.func import functional_call, grad, vmap

    names = {id(p): n for n, p in module.named_parameters(recurse=False)}
    own = {names[id(p)]: p.detach() for p in params}
    buffers = {n: b for n, b in module.named_buffers(recurse=False)}

    def inner(ps, g_i, *xs):
        out = functional_call(module, {**ps, **buffers}, tuple(x.unsqueeze(0) for x in xs))
        return (out * g_i.unsqueeze(0)).sum()

    xs = [x.detach() for x in inputs if isinstance(x, torch.Tensor)]
    _IN_VMAP[0] += 1
    try:
        return vmap(grad(inner), in_dims=(None, 0) + (0,) * len(xs))(own, g, *xs)
    except Exception as exc:
        raise ValueError(
            f"per-sample gradients: layer {type(module).__name__} is not supported by the closed forms "
            f"(Linear, Conv1d, Conv2d) and torch.func.vmap cannot handle it either ({type(exc).__name__}: {exc}); "
            f"replace it or freeze its parameters"
        ) from exc
    finally:
        _IN_VMAP[0] -= 1


class DPEngine:
    """Per-sample clipping and Gaussian noise for a set of parameters.

    Args:
        params: the parameters to privatise (every one must get its gradient from a module forward).
        l2_norm_clip: the bound C on each sample's whole-gradient L2 norm.
        noise_multiplier: σ; the noise added to a lot's sum of clipped gradients is N(0, σ²C²).
        loss_reduction: ``"mean"`` (the loss averages over the batch, as ``nn.CrossEntropyLoss()``
            does) or ``"sum"``.
        generator: a torch.Generator for the noise (None: the global RNG).
    """

    def __init__(self, params: Sequence[torch.Tensor], l2_norm_clip: float, noise_multiplier: float,
                 loss_reduction: str = "mean", generator: Optional[torch.Generator] = None):
        self.params: List[torch.Tensor] = [p for p in params if p.requires_grad]
        if not self.params:
            raise ValueError("the optimizer has no parameters that require gradients")
        if loss_reduction not in ("mean", "sum"):
            raise ValueError(f"loss_reduction must be 'mean' or 'sum', got {loss_reduction!r}")
        self.param_ids = {id(p) for p in self.params}
        self.l2_norm_clip = float(l2_norm_clip)
        self.noise_multiplier = float(noise_multiplier)
        self.loss_reduction = loss_reduction
        self.generator = generator
        self.preconditioner: Optional[Dict[int, torch.Tensor]] = None
        self.captures: List[_Capture] = []
        self._own: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
        self.active = True
        self.accum: Dict[int, torch.Tensor] = {}
        self.lot_samples = 0
        self.last_norms: Optional[torch.Tensor] = None
        ref = weakref.ref(self)

        def hook(module, inputs, output):
            eng = ref()
            if eng is not None:
                eng._on_forward(module, inputs, output)

        def pre_hook(module, inputs):
            eng = ref()
            if eng is not None:
                return eng._on_forward_pre(module, inputs)

        self._frozen: List[torch.Tensor] = []
        self._handle = torch.nn.modules.module.register_module_forward_hook(hook)
        self._pre_handle = torch.nn.modules.module.register_module_forward_pre_hook(pre_hook)
        weakref.finalize(self, self._handle.remove)
        weakref.finalize(self, self._pre_handle.remove)

    def close(self) -> None:
        """Stop watching forward passes."""
        self._handle.remove()
        self._pre_handle.remove()
        self._thaw()

    def _thaw(self) -> None:
        for p in self._frozen:
            p.requires_grad_(True)
        self._frozen = []

    def _own_params(self, module):
        own = self._own.get(module)
        if own is None:
            own = [p for p in module.parameters(recurse=False) if id(p) in self.param_ids]
            self._own[module] = own
        return own

    def _on_forward_pre(self, module, inputs):
        # The per-sample gradients come from the layer's input and output gradient, so autograd need
        # not compute the (summed) weight gradients: the layer's own parameters are frozen during its
        # forward and its first input is made to require grad so that the output gradient still flows.
        if not self.active or _IN_VMAP[0] or not torch.is_grad_enabled():
            return None
        own = self._own_params(module)
        if not own or not inputs or not isinstance(inputs[0], torch.Tensor) or not inputs[0].is_floating_point():
            return None
        if isinstance(module, _MIXING) and module.training:
            return None  # the post-hook raises
        for p in own:
            if p.requires_grad:
                p.requires_grad_(False)
                self._frozen.append(p)
        if not any(isinstance(x, torch.Tensor) and x.requires_grad for x in inputs):
            return (inputs[0].detach().requires_grad_(True),) + tuple(inputs[1:])
        return None

    # -- capture ----------------------------------------------------------------------------
    def _on_forward(self, module, inputs, output):
        if not self.active or _IN_VMAP[0] or not torch.is_grad_enabled():
            return
        own = self._own_params(module)
        if not own:
            return
        if self._frozen:
            self._thaw()
        if isinstance(module, _MIXING) and module.training:
            raise ValueError(
                f"{type(module).__name__} in training mode mixes the samples of a batch, so per-sample gradients "
                f"(and DP-SGD's guarantee) do not exist; use GroupNorm/LayerNorm or call .eval() on it"
            )
        if not isinstance(output, torch.Tensor) or not output.requires_grad:
            return
        cap = _Capture(module, inputs, own)
        self.captures.append(cap)

        def on_grad(grad):
            cap.grad = grad.detach() if cap.grad is None else cap.grad + grad.detach()

        output.register_hook(on_grad)

    # -- per-sample gradients ----------------------------------------------------------------
    def _layer_grads(self, cap: _Capture, materialize: bool):
        """Return ('ghost', x, g) for a 2-D Linear, or ('full', {param_id: (B, *shape)})."""
        m, g = cap.module, cap.grad
        x = cap.inputs[0].detach() if cap.inputs and isinstance(cap.inputs[0], torch.Tensor) else None
        if x is None:
            raise ValueError(f"per-sample gradients: {type(m).__name__} got no tensor input")
        if self.loss_reduction == "mean":
            g = g * x.shape[0]
        names = {n: p for n, p in m.named_parameters(recurse=False)}
        if isinstance(m, nn.Linear):
            if x.dim() == 2 and not materialize:
                return ("ghost", x, g)
            gw = torch.einsum("b...o,b...i->boi", g, x) if x.dim() > 2 else torch.bmm(g.unsqueeze(2), x.unsqueeze(1))
            by_name = {"weight": gw}
            if m.bias is not None:
                by_name["bias"] = g.reshape(g.shape[0], -1, g.shape[-1]).sum(1)
        elif _conv_fast_ok(m):
            by_name = _conv_per_sample(m, x, g)
        else:
            per = _vmap_per_sample(m, cap.inputs, g, cap.params)
            return ("full", {id(names[n]): v for n, v in per.items()})
        return ("full", {id(names[n]): v for n, v in by_name.items() if id(names[n]) in self.param_ids})

    def per_sample_gradients(self) -> Dict[int, torch.Tensor]:
        """Materialised per-sample gradients of the last backward, {id(param): (B, *shape)}."""
        out: Dict[int, torch.Tensor] = {}
        for cap in self._ready_captures():
            kind, per = self._layer_grads(cap, materialize=True)
            for pid, v in per.items():
                out[pid] = out[pid] + v if pid in out else v
        return out

    def _ready_captures(self) -> List[_Capture]:
        return [c for c in self.captures if c.grad is not None]

    def clip_and_accumulate(self) -> int:
        """Clip each sample's gradient of the last backward to C and add the sum to the lot's sum.

        Returns the number of samples; clears ``.grad`` of the parameters.
        """
        self._thaw()
        caps = self._ready_captures()
        self.captures = []
        self.active = False
        covered = {id(p) for c in caps for p in c.params}
        missing = [p for p in self.params if p.grad is not None and id(p) not in covered]
        if missing:
            raise ValueError(
                f"{len(missing)} parameter(s) (shape {tuple(missing[0].shape)}) got a gradient outside any module "
                f"forward, so their per-sample gradients cannot be traced; use them inside an nn.Module "
                f"(and call optimizer.zero_grad() before the forward pass)"
            )
        if not caps:
            for p in self.params:
                p.grad = None
            return 0
        counts: Dict[int, int] = {}
        for c in caps:
            for p in c.params:
                counts[id(p)] = counts.get(id(p), 0) + 1
        materialize_all = self.preconditioner is not None
        layers = []
        batch = None
        for c in caps:
            shared = any(counts[id(p)] > 1 for p in c.params)
            layer = self._layer_grads(c, materialize=materialize_all or shared)
            b = layer[1].shape[0] if layer[0] == "ghost" else next(iter(layer[1].values())).shape[0]
            if batch is None:
                batch = b
            elif b != batch:
                raise ValueError(f"per-sample gradients: layers saw different batch sizes ({batch} and {b})")
            layers.append(layer)
        # sum materialised gradients of shared parameters, precondition (AdaDPS), then norms
        full: Dict[int, torch.Tensor] = {}
        ghosts = []
        for layer in layers:
            if layer[0] == "ghost":
                ghosts.append(layer)
            else:
                for pid, v in layer[1].items():
                    full[pid] = full[pid] + v if pid in full else v
        if self.preconditioner is not None:
            full = {pid: v / self.preconditioner[pid] for pid, v in full.items()}
        norms2 = None
        for v in full.values():
            n2 = v.reshape(batch, -1).pow(2).sum(1)
            norms2 = n2 if norms2 is None else norms2 + n2
        for layer, cap in zip(layers, caps):
            if layer[0] != "ghost":
                continue
            _, x, g = layer
            g2 = g.pow(2).sum(1)
            n2 = g2 * x.pow(2).sum(1)
            if cap.module.bias is not None and id(cap.module.bias) in self.param_ids:
                n2 = n2 + g2
            norms2 = n2 if norms2 is None else norms2 + n2
        norms = norms2.sqrt()
        self.last_norms = norms
        factor = (self.l2_norm_clip / (norms + 1e-6)).clamp_(max=1.0)
        for pid, v in full.items():
            self._add(pid, torch.tensordot(factor, v, dims=1))
        for layer, cap in zip(layers, caps):
            if layer[0] != "ghost":
                continue
            _, x, g = layer
            cg = g * factor.unsqueeze(1)
            m = cap.module
            if id(m.weight) in self.param_ids:
                self._add(id(m.weight), cg.t() @ x)
            if m.bias is not None and id(m.bias) in self.param_ids:
                self._add(id(m.bias), cg.sum(0))
        for p in self.params:
            p.grad = None
        self.lot_samples += batch
        return batch

    def _add(self, pid: int, v: torch.Tensor) -> None:
        if pid in self.accum:
            self.accum[pid].add_(v)
        else:
            self.accum[pid] = v  # a fresh tensor computed from this batch

    def noisy_gradients(self, denominator: float) -> List[torch.Tensor]:
        """(sum of clipped gradients + N(0, σ²C²)) / denominator for each parameter; resets the lot."""
        std = self.noise_multiplier * self.l2_norm_clip
        total = sum(p.numel() for p in self.params)
        p0 = self.params[0]
        noise = (torch.normal(0.0, std, size=(total,), generator=self.generator, dtype=p0.dtype)
                 if std > 0 else torch.zeros(total, dtype=p0.dtype))
        out, offset = [], 0
        for p in self.params:
            s = self.accum.get(id(p))
            z = noise[offset:offset + p.numel()].view(p.shape)
            offset += p.numel()
            out.append((z if s is None else s.add_(z)).div_(denominator))
        self.accum = {}
        self.lot_samples = 0
        return out


def per_sample_gradients(model: nn.Module, criterion: Callable, x: torch.Tensor, y: torch.Tensor,
                         loss_reduction: str = "mean") -> Dict[str, torch.Tensor]:
    """Per-sample gradients ``{name: (B, *shape)}`` of ``criterion(model(x), y)`` by the engine's closed forms."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    engine = DPEngine([p for _, p in named], 1.0, 0.0, loss_reduction=loss_reduction)
    try:
        for _, p in named:
            p.grad = None
        criterion(model(x), y).backward()
        per = engine.per_sample_gradients()
        engine.captures = []
        for _, p in named:
            p.grad = None
    finally:
        engine.close()
    return {n: per[id(p)] for n, p in named if id(p) in per}
