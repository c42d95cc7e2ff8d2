"""Vectorised per-sample gradients, clipping and noising for DP-SGD.

:class:`DPEngine` watches the forward passes of the modules that own the optimizer's parameters
(a process-wide forward hook filtered by parameter identity, so the paper's loop works with only
``optimizer(nn.parameters())``). It keeps each layer's input and, on backward, the gradient of its
output; autograd never computes the (summed) weight gradients: a layer's own parameters are frozen
during its forward, and the output of a layer whose input needs no gradient (the first layer) joins
the graph through an in-place identity (no copy), so the backward pass stops there. Output gradients
come from a pre-hook on the autograd node of each layer's output. Per-sample gradients per layer type:

- ``nn.Linear`` on (B, in) inputs: never materialised. The per-sample norm is
  ``‖g_i‖·‖x_i‖`` (Goodfellow 2015) and the clipped sum is one matrix product ``(c⊙g)ᵀ x``.
- ``nn.Linear`` on (B, ..., in) and ``nn.Conv1d``/``nn.Conv2d`` (groups=1, numeric padding): with
  the unfolded input ``A_i`` (L x d, a cached gather index that reads NCHW or oneDNN's channels-last
  activations in place; faster than ``F.unfold`` here) and the
  output gradient ``G_i`` (L x c), per layer whichever is cheaper by the sizes: the per-sample
  gradients ``G_iᵀA_i`` by one batched matmul, or "ghost" norms
  ``‖G_iᵀA_i‖² = Σ (A_iA_iᵀ)⊙(G_iG_iᵀ)`` and the clipped sum as one matmul over (B·L).
- a model's first ``nn.Conv2d`` on small inputs: its forward is computed from the same unfolded
  input (one product with ``[weight | bias]``, cheaper than oneDNN's per-call overhead there), which
  the clipping then reuses (:class:`_PatchForward`).
- any other module with parameters: ``torch.func.vmap`` of the vector-Jacobian product of that
  module alone (falls back per layer, the rest of the model keeps the fast paths).
- BatchNorm in training mode mixes the samples of a batch, so per-sample gradients do not exist:
  a ``ValueError`` names the layer (use GroupNorm/LayerNorm, or put it in eval mode).

The clipped sums of a lot accumulate in one flat buffer, so the noise is one ``randn`` and one add;
there a conv layer's weight and bias share one (c, d+1) block in the layout of its per-sample
gradients, so its clipped sum is one matrix-vector product written straight into the buffer. At
these sizes each small tensor op costs about as much as the arithmetic, so the step is written to
issue few of them.
"""
import functools
import weakref
from typing import Callable, Dict, List, Optional, Sequence

import torch
from torch import nn
from torch.nn import functional as F

_MIXING = (nn.modules.batchnorm._BatchNorm,)
_IN_VMAP = [0]  # > 0 while a vmap fallback runs a module: every engine's hooks stand aside
_UNFOLD_INDEX: Dict[tuple, torch.Tensor] = {}  # conv geometry -> gather index into [x, 0, 1]


class _Layer:
    """What the engine knows about one module that owns privatised parameters (built once)."""

    __slots__ = ("module", "kind", "params", "weight", "bias", "geometry", "patch_forward")

    def __init__(self, module, params, param_ids):
        self.module = module
        self.patch_forward = None  # decided at its first capture (see _PatchForward)
        self.params = params
        self.weight = getattr(module, "weight", None)
        self.bias = getattr(module, "bias", None)
        if self.weight is not None and id(self.weight) not in param_ids:
            self.weight = None
        if self.bias is not None and id(self.bias) not in param_ids:
            self.bias = None
        self.geometry = None
        if isinstance(module, nn.Linear):
            self.kind = "linear"
        elif _conv_fast_ok(module):
            self.kind = "conv"
            if isinstance(module, nn.Conv1d):
                self.geometry = ((1,) + module.kernel_size, (1,) + module.stride, (0,) + module.padding,
                                 (1,) + module.dilation)
            else:
                self.geometry = (module.kernel_size, module.stride, module.padding, module.dilation)
        else:
            self.kind = "vmap"


class _Capture:
    __slots__ = ("layer", "inputs", "grad", "leaf", "patches")

    def __init__(self, layer, inputs, leaf=None):
        self.layer = layer
        self.inputs = inputs
        self.grad = None
        self.leaf = leaf  # an output made a leaf: its gradient lands in .grad, no hook needed
        self.patches = None  # the unfolded input, when the forward already made it (_PatchForward)

    def add(self, grad):
        if grad is not None:
            self.grad = grad if self.grad is None else self.grad + grad


class _Tap(torch.autograd.Function):
    """Puts a tensor that needs no gradient into the graph without copying it (``mark_dirty``: autograd
    treats the identity as an in-place op); its backward hands the gradient to a capture and stops."""

    @staticmethod
    def forward(ctx, x, anchor, cap):
        ctx.cap = cap
        ctx.mark_dirty(x)
        return x

    @staticmethod
    def backward(ctx, grad):
        ctx.cap.add(grad)
        return None, None, None


_ANCHOR = torch.zeros((), requires_grad=True)  # the input that makes _Tap's output require grad

PATCH_FORWARD_MAX = 1 << 17  # patch elements (B·L·(C·kh·kw+1)) up to which _PatchForward is used


class _PatchForward:
    """The forward of a model's first ``nn.Conv2d`` (its input needs no gradient) as one product of the
    unfolded input with ``[weight | bias]``, for small inputs.

    The engine unfolds that input for the per-sample gradients anyway; for small images (8x8 digits:
    about 45 µs against oneDNN's 95 µs a batch of 64, where its per-call overhead dominates) computing
    the convolution from the same patches is cheaper, and the patches are kept for the clipping. The
    engine sets it as the module's instance ``forward`` while it watches the model (``close()`` removes
    it); whenever the engine is not collecting per-sample gradients, the input needs a gradient, or
    the patches would exceed ``PATCH_FORWARD_MAX`` elements, it calls ``nn.Conv2d.forward`` itself.
    Pickled or deep-copied, it becomes the plain ``nn.Conv2d.forward`` of the (copied) module.
    """

    __slots__ = ("engine", "layer", "stash")

    def __init__(self, engine, layer):
        self.engine = weakref.ref(engine)
        self.layer = layer
        self.stash = None  # (input, patches) of the last forward, picked up by its capture

    def __call__(self, x):
        module, eng = self.layer.module, self.engine()
        if (eng is None or not eng._watching() or x.requires_grad or x.dim() != 4 or x.device.type != "cpu"
                or not x.is_floating_point()):
            return nn.Conv2d.forward(module, x)
        kh, kw = self.layer.geometry[0]
        b, c, h, w = x.shape
        ho, wo = _conv_output_size(h, w, self.layer.geometry)
        ones = module.bias is not None
        if b * ho * wo * (c * kh * kw + ones) > PATCH_FORWARD_MAX or ho <= 0 or wo <= 0:
            return nn.Conv2d.forward(module, x)
        a = _unfold(x, self.layer.geometry, ones, eng._unfold_buffers)  # (B, L, C·kh·kw [+1])
        weight = module.weight.reshape(module.out_channels, -1)
        out = torch.empty((b, module.out_channels, ho, wo), dtype=x.dtype, memory_format=torch.channels_last)
        # (channels-last memory is (B, Ho, Wo, O): the product's (B·L, O) rows, written in place)
        rows = out.permute(0, 2, 3, 1).view(-1, module.out_channels)
        patches = a.view(-1, a.shape[2])
        if ones:  # (the patches without their column of 1s: a strided view; the bias is added by addmm)
            torch.addmm(module.bias, patches[:, :-1], weight.t(), out=rows)
        else:
            torch.mm(patches, weight.t(), out=rows)
        self.stash = (x, a)
        return out

    def __reduce__(self):
        return functools.partial, (nn.Conv2d.forward, self.layer.module)


def _patch_forward_ok(layer: "_Layer") -> bool:
    """A first layer whose forward _PatchForward can compute: a plain ``nn.Conv2d`` (not a subclass with
    its own forward) whose bias, if any, is privatised, and no forward of its own already set."""
    m = layer.module
    return (type(m) is nn.Conv2d and layer.kind == "conv" and (m.bias is None) == (layer.bias is None)
            and layer.weight is not None and "forward" not in m.__dict__)


def _remove_patch_forwards(patch_forwards: List[_PatchForward]) -> None:
    for f in patch_forwards:
        if f.layer.module.__dict__.get("forward") is f:
            del f.layer.module.__dict__["forward"]
    patch_forwards.clear()


def _inert_hook(*args):
    return None


def _inert():
    return _inert_hook


class _PreHook:
    """An engine's forward pre-hook for one layer (see ``DPEngine._freeze``). Deep-copied or pickled
    with its model it becomes an inert hook: a copy is not the model the engine watches (and a weak
    reference does not pickle)."""

    __slots__ = ("ref", "layer")

    def __init__(self, engine, layer):
        self.ref, self.layer = weakref.ref(engine), layer

    def __call__(self, module, inputs):
        eng = self.ref()
        if eng is not None and eng._watching():
            eng._freeze(self.layer, module)

    def __reduce__(self):
        return _inert, ()


class _PostHook(_PreHook):
    """An engine's forward hook for one layer: captures its input and output (see ``_PreHook``)."""

    __slots__ = ()

    def __call__(self, module, inputs, output):
        eng = self.ref()
        if eng is None or not eng._watching():
            return None
        return eng._capture(self.layer, inputs, output)


def _mixing_error(module):
    raise ValueError(
        f"{type(module).__name__} in training mode mixes the samples of a batch, so per-sample gradients "
        f"(and DP-SGD's guarantee) do not exist; use GroupNorm/LayerNorm or call .eval() on it"
    )


def _conv_fast_ok(module) -> bool:
    return (
        isinstance(module, (nn.Conv1d, nn.Conv2d))
        and module.groups == 1
        and not isinstance(module.padding, str)
        and module.padding_mode == "zeros"
    )


def _conv_output_size(h: int, w: int, geometry):
    """(Ho, Wo) of a convolution with ``geometry`` = (kernel, stride, padding, dilation) pairs."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = geometry
    return (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1


def _unfold_index(shape, geometry, ones: bool, channels_last: bool = False) -> torch.Tensor:
    """Gather index into ``[x.flatten(), 0, 1]``: patch rows (oh, ow), columns (c, kh, kw) and, with
    ``ones``, a last column of 1s (the bias' "input"); padding reads the 0. ``channels_last``: the
    flattened sample is in (h, w, c) order (oneDNN's layout for these convs; gathering from it
    directly saves a copy of the input)."""
    key = (tuple(shape), geometry, ones, channels_last)
    idx = _UNFOLD_INDEX.get(key)
    if idx is None:
        c, h, w = shape
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = geometry
        ho, wo = _conv_output_size(h, w, geometry)
        if ho <= 0 or wo <= 0:
            raise ValueError(f"convolution output would be empty for input shape {tuple(shape)}")
        rows = (torch.arange(ho) * sh - ph).view(ho, 1, 1, 1, 1) + (torch.arange(kh) * dh).view(1, 1, 1, kh, 1)
        cols = (torch.arange(wo) * sw - pw).view(1, wo, 1, 1, 1) + (torch.arange(kw) * dw).view(1, 1, 1, 1, kw)
        chan = torch.arange(c).view(1, 1, c, 1, 1)
        rows, cols, chan = torch.broadcast_tensors(rows, cols, chan)
        valid = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        offset = (rows * w + cols) * c + chan if channels_last else chan * h * w + rows * w + cols
        idx = torch.where(valid, offset, torch.full_like(rows, c * h * w))
        idx = idx.reshape(ho * wo, c * kh * kw)
        if ones:
            idx = torch.cat([idx, torch.full((ho * wo, 1), c * h * w + 1, dtype=idx.dtype)], 1)
        idx = idx.reshape(-1)
        if len(_UNFOLD_INDEX) > 256:
            _UNFOLD_INDEX.clear()
        _UNFOLD_INDEX[key] = idx
    return idx


def _unfold(x: torch.Tensor, geometry, ones: bool = False, buffers: Optional[Dict[tuple, tuple]] = None
            ) -> torch.Tensor:
    """(B, L, C·kh·kw [+1]) patches of a (B, C, H, W) input — ``F.unfold(...).transpose(1, 2)``
    (and a column of 1s) by one gather, several times faster than ``F.unfold`` for small images.

    The gather reads rows ``[x_i, 0, 1]`` (padding reads the 0, the bias column the 1). They are
    written into a reusable buffer from ``buffers`` (one per engine, so concurrent engines never
    share one) whose last two columns are set once: a copy into it costs a fraction of a ``cat``.
    """
    b = x.shape[0]
    cl = x.shape[1] > 1 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    idx = _unfold_index(x.shape[1:], geometry, ones, cl)
    # (b, c·h·w) in memory order, a view either way (channels-last: each sample is dense in (h, w, c))
    n = x.shape[1] * x.shape[2] * x.shape[3]
    src = x.as_strided((b, n), (x.stride(0), 1), x.storage_offset()) if cl else x.reshape(b, -1)
    key = (n, x.dtype, x.device)
    entry = None if buffers is None else buffers.get(key)
    if entry is None or entry[0].shape[0] < b:
        buf = torch.empty((max(b, 64), n + 2), dtype=x.dtype, device=x.device)
        buf[:, n] = 0.0
        buf[:, n + 1] = 1.0
        entry = (buf, {})  # the buffer, and its row views per batch size
        if buffers is not None:
            buffers[key] = entry
    views = entry[1].get(b)
    if views is None:
        buf = entry[0]
        views = entry[1][b] = (buf[:b], buf[:b, :n])  # rows [x_i, 0, 1] and their x_i part
    flat, head = views
    head.copy_(src)
    return flat.index_select(1, idx).view(b, -1, x.shape[1] * geometry[0][0] * geometry[0][1] + ones)


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
        per = vmap(grad(inner), in_dims=(None, 0) + (0,) * len(xs))(own, g, *xs)
    except Exception as exc:
        raise ValueError(
            f"per-sample gradients: layer {type(module).__name__} is not supported by the closed forms "
            f"(Linear, Conv1d, Conv2d) and torch.func.vmap cannot handle it either ({type(exc).__name__}: {exc}); "
            f"replace it or freeze its parameters"
        ) from exc
    finally:
        _IN_VMAP[0] -= 1
    named = dict(module.named_parameters(recurse=False))
    return {id(named[n]): v for n, v in per.items()}


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
        self.force_mode: Optional[str] = None  # tests: "ghost" or "bmm" for every unfolded layer
        self.captures: List[_Capture] = []
        self._layers: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # module -> _Layer | None
        self._owner: Dict[int, int] = {}  # id(param) -> how many planned layers own it (tied weights)
        self.active = True
        self._blocks: Dict[int, torch.Tensor] = {}  # id(layer) -> its interleaved [weight | bias] block
        self._unfold_buffers: Dict[tuple, tuple] = {}  # reusable [x | 0 | 1] rows of _unfold
        self._closed_cache: Dict[tuple, tuple] = {}  # layer sequence -> _closed_forms
        self._layout([])
        self.accum: Dict[int, torch.Tensor] = {}  # id(param) -> the lot's sum of clipped gradients so far
        self.lot_samples = 0
        self.last_norms: Optional[torch.Tensor] = None
        self._frozen: List[torch.Tensor] = []
        ref = weakref.ref(self)

        def hook(module, inputs, output):
            eng = ref()
            if eng is not None:
                return eng._on_forward(module, inputs, output)

        def pre_hook(module, inputs):
            eng = ref()
            if eng is not None:
                eng._on_forward_pre(module, inputs)

        self._hook, self._pre_hook_fn = hook, pre_hook
        self._module_handles: list = []
        self._tried: "weakref.WeakSet" = weakref.WeakSet()
        self._handle = torch.nn.modules.module.register_module_forward_hook(hook)
        self._pre_handle = torch.nn.modules.module.register_module_forward_pre_hook(pre_hook)
        self._global = True
        handles = self._module_handles
        self._patch_forwards: List[_PatchForward] = []
        patch_forwards = self._patch_forwards
        weakref.finalize(self, self._handle.remove)
        weakref.finalize(self, self._pre_handle.remove)
        weakref.finalize(self, lambda: [h.remove() for h in handles])
        weakref.finalize(self, _remove_patch_forwards, patch_forwards)

    def close(self) -> None:
        """Stop watching forward passes."""
        self._handle.remove()
        self._pre_handle.remove()
        for h in self._module_handles:
            h.remove()
        self._module_handles.clear()
        _remove_patch_forwards(self._patch_forwards)
        self._thaw()

    def _resolve(self, root) -> None:
        """If ``root`` holds every privatised parameter, watch only its parameter-owning modules.

        The process-wide hooks find the modules from the parameters alone; once one forward pass
        shows a module tree that owns them all, per-module hooks replace them, so the other modules
        (of this model and any other) run without hook overhead.
        """
        self._tried.add(root)
        owners, covered = [], set()
        for m in root.modules():
            own = [p for p in m.parameters(recurse=False) if id(p) in self.param_ids]
            if own:
                owners.append(m)
                covered.update(id(p) for p in own)
        if len(covered) < len(self.param_ids):
            return
        for m in owners:
            pre, post = self._bound_hooks(self._layer(m))
            self._module_handles.append(m.register_forward_pre_hook(pre))
            self._module_handles.append(m.register_forward_hook(post))
        self._handle.remove()
        self._pre_handle.remove()
        self._global = False
        if not self.accum and not self.lot_samples:  # (no lot in progress: the buffer may change layout)
            self._layout([layer for layer in (self._layers.get(m) for m in owners)
                          if layer is not None and layer.kind == "conv" and layer.weight is not None
                          and layer.bias is not None and all(self._owner[id(p)] == 1 for p in layer.params)])

    def _layout(self, interleaved: List[_Layer]) -> None:
        """The flat buffer of the lot's clipped sums (one ``randn`` noises it all) and each parameter's view.

        Parameters are consecutive slices, except that the weight and bias of each layer in
        ``interleaved`` (unfolded layers) share one (c, d+1) block, rows ``[w_j | b_j]``: the layout
        of that layer's per-sample gradients, so its clipped sum is one matrix-vector product
        written straight into the buffer (the views of weight and bias are strided).
        """
        p0 = self.params[0]
        flat = torch.zeros(sum(p.numel() for p in self.params), dtype=p0.dtype, device=p0.device)
        by_weight = {id(layer.weight): layer for layer in interleaved}
        biases = {id(layer.bias) for layer in interleaved}
        views: Dict[int, torch.Tensor] = {}
        blocks: Dict[int, torch.Tensor] = {}
        offset = 0
        for p in self.params:
            if id(p) in biases:
                continue
            layer = by_weight.get(id(p))
            if layer is None:
                views[id(p)] = flat[offset:offset + p.numel()].view(p.shape)
                offset += p.numel()
                continue
            c = p.shape[0]
            d = p.numel() // c
            block = flat[offset:offset + c * (d + 1)]
            views[id(p)] = block.view(c, d + 1)[:, :d].view(p.shape)
            views[id(layer.bias)] = block.view(c, d + 1)[:, d]
            blocks[id(layer)] = block
            offset += c * (d + 1)
        self._flat, self._views, self._blocks = flat, views, blocks
        self._grad_views = [views[id(p)] for p in self.params]
        self._noisy = None  # (buffer, per-parameter views) of noisy_gradients(reuse=True)

    def _bound_hooks(self, layer: _Layer):
        """Forward pre-/post-hooks for one known layer: what ``_on_forward_pre``/``_on_forward`` do,
        with the layer lookup done once (the hooks run every forward pass, so they stay lean)."""
        return _PreHook(self, layer), _PostHook(self, layer)

    def _thaw(self) -> None:
        for p in self._frozen:
            p.requires_grad_(True)
        self._frozen = []

    def _layer(self, module) -> Optional[_Layer]:
        try:
            return self._layers[module]
        except KeyError:
            pass
        own = [p for p in module.parameters(recurse=False) if id(p) in self.param_ids]
        layer = _Layer(module, own, self.param_ids) if own else None
        for p in own:
            self._owner[id(p)] = self._owner.get(id(p), 0) + 1
        self._layers[module] = layer
        self._closed_cache.clear()
        return layer

    def _watching(self) -> bool:
        return self.active and not _IN_VMAP[0] and torch.is_grad_enabled()

    def _on_forward_pre(self, module, inputs):
        if not self._watching():
            return
        if self._global and module not in self._tried:
            self._resolve(module)
        layer = self._layer(module)
        if layer is not None:
            self._freeze(layer, module)

    def _freeze(self, layer: _Layer, module) -> None:
        """Freezes the layer's parameters for its forward: autograd records no weight-gradient work
        for it (``_capture`` or the clipping thaws them)."""
        if isinstance(module, _MIXING) and module.training:
            _mixing_error(module)
        frozen = self._frozen
        for p in layer.params:
            if p.requires_grad:
                p.requires_grad_(False)
                frozen.append(p)

    # -- capture ----------------------------------------------------------------------------
    def _on_forward(self, module, inputs, output):
        if not self._watching():
            return None
        layer = self._layer(module)
        if layer is None:
            return None
        return self._capture(layer, inputs, output)

    def _capture(self, layer: _Layer, inputs, output):
        if self._frozen:
            self._thaw()
        if not isinstance(output, torch.Tensor) or not output.is_floating_point():
            return None
        if not output.requires_grad:
            # nothing upstream needs a gradient (e.g. the first layer): the backward ends here.
            # A fresh output tensor joins the graph in place (no copy; in-place ops downstream,
            # ReLU(inplace=True), still work) and its gradient lands in the capture
            if output._base is None and not any(output is x for x in inputs):
                cap = _Capture(layer, inputs)
                self.captures.append(cap)
                forward = layer.patch_forward
                if forward is None:  # the first time: the next forwards compute it from the patches
                    forward = layer.patch_forward = False
                    if _patch_forward_ok(layer):
                        forward = layer.patch_forward = _PatchForward(self, layer)
                        layer.module.__dict__["forward"] = forward
                        self._patch_forwards.append(forward)
                elif forward and forward.stash is not None:
                    if inputs and forward.stash[0] is inputs[0]:
                        cap.patches = forward.stash[1]
                    forward.stash = None
                return _Tap.apply(output, _ANCHOR, cap)
            # (a view, or the module's own input: the model gets a copy of a leaf instead)
            leaf = output.detach().requires_grad_(True)
            self.captures.append(_Capture(layer, inputs, leaf))
            return leaf.clone()
        cap = _Capture(layer, inputs)
        self.captures.append(cap)
        node, nr = output.grad_fn, output.output_nr
        if node is None:  # (a view/leaf without a node: the tensor hook path)
            output.register_hook(cap.add)
        else:
            # a pre-hook on the node that made the output sees the gradient of this output; cheaper
            # than Tensor.register_hook, and unaffected by later in-place ops on the output
            node.register_prehook(lambda grads: cap.add(grads[nr]))
        return None

    # -- per-sample gradients ----------------------------------------------------------------
    def _input(self, cap: _Capture, detach: bool = True) -> torch.Tensor:
        x = cap.inputs[0] if cap.inputs and isinstance(cap.inputs[0], torch.Tensor) else None
        if x is None:
            raise ValueError(f"per-sample gradients: {type(cap.layer.module).__name__} got no tensor input")
        return x.detach() if detach else x

    def _patches(self, cap: _Capture, detach: bool = True):
        """(A, Gᵀ) of a conv or an N-D Linear: the unfolded input (B, L, d), with a last column of 1s
        when the layer's bias is privatised (so one product gives weight and bias), and the output
        gradient as (B, c, L) (a view for NCHW and channels-last gradients alike). The per-sample
        gradient of the layer is ``Gᵀ_i A_i`` (c x d)."""
        layer, g = cap.layer, cap.grad
        if cap.patches is not None:  # (made by _PatchForward from this very input)
            return cap.patches, g.reshape(g.shape[0], g.shape[1], -1)
        x = self._input(cap, detach)
        b = x.shape[0]
        ones = layer.bias is not None
        if layer.kind == "linear":
            a = x.reshape(b, -1, x.shape[-1])
            if ones:
                a = torch.cat([a, a.new_ones(a.shape[:2] + (1,))], 2)
            return a, g.reshape(b, -1, g.shape[-1]).transpose(1, 2)
        if layer.geometry[0][0] == 1 and x.dim() == 3:  # Conv1d
            x = x.unsqueeze(2)
        return _unfold(x, layer.geometry, ones, self._unfold_buffers), g.reshape(b, g.shape[1], -1)

    def _split(self, layer: _Layer, per: torch.Tensor) -> Dict[int, torch.Tensor]:
        """{id(param): ...} from a (..., c, d[+1]) weight[|bias] block."""
        out = {}
        lead = per.shape[:-2]
        if layer.bias is not None:
            out[id(layer.bias)] = per[..., -1]
            per = per[..., :-1]
        if layer.weight is not None:  # a (c, d) block stays a view; _add reshapes into the buffer
            out[id(layer.weight)] = per.reshape(*lead, *layer.weight.shape) if lead else per
        return out

    def _materialize(self, cap: _Capture) -> Dict[int, torch.Tensor]:
        """{id(param): (B, *shape)} per-sample gradients of one layer (of the raw, unscaled output grads)."""
        layer = cap.layer
        if layer.kind == "vmap":
            return _vmap_per_sample(layer.module, cap.inputs, cap.grad, layer.params)
        a, gt = self._patches(cap)
        if layer.weight is None:  # only the bias is privatised
            return {id(layer.bias): gt.sum(2)}
        return self._split(layer, torch.bmm(gt, a))

    def _scale(self, batch: int) -> float:
        return float(batch) if self.loss_reduction == "mean" else 1.0

    def per_sample_gradients(self) -> Dict[int, torch.Tensor]:
        """Materialised per-sample gradients of the last backward, {id(param): (B, *shape)}."""
        out: Dict[int, torch.Tensor] = {}
        for cap in self._ready_captures():
            for pid, v in self._materialize(cap).items():
                v = v * self._scale(v.shape[0])
                out[pid] = out[pid] + v if pid in out else v
        return out

    def _ready_captures(self) -> List[_Capture]:
        for c in self.captures:
            if c.leaf is not None:
                c.grad, c.leaf = c.leaf.grad, None
        return [c for c in self.captures if c.grad is not None]

    def _use_ghost(self, l: int, c: int, d: int) -> bool:
        # ghost: L²(c+d) for the norms; bmm: c·L·d to materialise, then 2·c·d (norms, weighted sum);
        # both need ~c·L·d for the clipped sum (ghost) or the per-sample gradients (bmm)
        if self.force_mode is not None:
            return self.force_mode == "ghost"
        return l * l * (c + d) < 2 * c * d

    def _closed_forms(self, caps: List[_Capture]) -> tuple:
        """Per capture, whether its layer's clipped sum has a closed form. Not when a parameter is
        reached through several captures (a layer called twice, tied weights), for layers without
        one (vmap fallback) and for a privatised bias alone: those need materialised per-sample
        gradients. Cached per sequence of layers (the same every batch; cleared when a layer is
        first seen, as that can reveal tied weights)."""
        key = tuple(id(c.layer) for c in caps)
        closed = self._closed_cache.get(key)
        if closed is None:
            seen, repeated = set(), set()
            for c in caps:
                (repeated if id(c.layer) in seen else seen).add(id(c.layer))
            closed = self._closed_cache[key] = tuple(
                c.layer.kind != "vmap" and c.layer.weight is not None and id(c.layer) not in repeated
                and all(self._owner[id(p)] == 1 for p in c.layer.params) for c in caps)
        return closed

    def clip_and_accumulate(self) -> int:
        """Clip each sample's gradient of the last backward to C and add the sum to the lot's sum.

        Returns the number of samples; clears ``.grad`` of the parameters. (Every tensor it reads
        is detached or a buffer, so autograd records nothing without a ``no_grad`` context.)
        """
        self._thaw()
        caps = self._ready_captures()
        self.captures = []
        self.active = False
        params = self.params
        for p in params:
            if p.grad is not None:
                covered = {id(q) for c in caps for q in c.layer.params}
                missing = [q for q in params if q.grad is not None and id(q) not in covered]
                if missing:
                    raise ValueError(
                        f"{len(missing)} parameter(s) (shape {tuple(missing[0].shape)}) got a gradient outside any "
                        f"module forward, so their per-sample gradients cannot be traced; use them inside an "
                        f"nn.Module (and call optimizer.zero_grad() before the forward pass)"
                    )
                for q in params:
                    q.grad = None
                break
        if not caps:
            return 0
        batch = caps[0].grad.shape[0]
        precond = self.preconditioner
        closed = self._closed_forms(caps) if precond is None else (False,) * len(caps)
        full: Dict[int, torch.Tensor] = {}  # materialised per-sample gradients, (B, ...)
        blocks = []  # (layer, (B, c·d') per-sample weight|bias blocks) of unfolded layers
        sums = []  # (kind, layer, A, G) of layers whose clipped sums need the clip factors
        sq = None  # the squared per-sample norms, (B,), summed in place over the layers
        vecdot = torch.linalg.vecdot
        for c, fast in zip(caps, closed):
            if c.grad.shape[0] != batch:
                raise ValueError(f"per-sample gradients: layers saw different batch sizes ({batch} and "
                                 f"{c.grad.shape[0]})")
            layer = c.layer
            if not fast:
                for pid, v in self._materialize(c).items():
                    full[pid] = full[pid] + v if pid in full else v
                continue
            if layer.kind == "linear" and c.grad.dim() == 2:
                x, g = self._input(c), c.grad
                xn2 = vecdot(x, x)
                if layer.bias is not None:
                    xn2.add_(1.0)
                gn2 = vecdot(g, g)
                sums.append(("linear", layer, x, g))
                if sq is not None:
                    sq.addcmul_(gn2, xn2)
                    continue
                part = gn2.mul_(xn2)
            else:
                a, gt = self._patches(c)
                if self._use_ghost(a.shape[1], gt.shape[1], a.shape[2]):
                    part = (torch.bmm(a, a.transpose(1, 2)) * torch.bmm(gt.transpose(1, 2), gt)).sum((1, 2))
                    sums.append(("ghost", layer, a, gt))
                else:
                    per = torch.bmm(gt, a).view(batch, -1)
                    blocks.append((layer, per, gt.shape[1]))
                    n = torch.linalg.vector_norm(per, dim=1)  # (faster than vecdot for wide rows)
                    if sq is not None:
                        sq.addcmul_(n, n)
                        continue
                    part = n.square_()
            sq = part if sq is None else sq.add_(part)
        if precond is not None:
            full = {pid: v / precond[pid] for pid, v in full.items()}
        for pid, v in full.items():
            v = v.reshape(batch, -1)
            full[pid] = v
            sq = vecdot(v, v) if sq is None else sq.add_(vecdot(v, v))
        scale = self._scale(batch)
        norms = sq.sqrt_()
        if scale != 1.0:
            norms.mul_(scale)
        self.last_norms = norms
        # the per-sample gradients are scale·(raw); fold the scale into the clip factor:
        # scale·min(1, C/(norm + 1e-6))
        factor = norms.add(1e-6).reciprocal_().mul_(self.l2_norm_clip * scale).clamp_(max=scale)
        for pid, v in full.items():
            self._add(pid, torch.matmul(factor, v))
        accum = self.accum
        for layer, per, c_out in blocks:
            block = self._blocks.get(id(layer))
            if block is None:
                for pid, v in self._split(layer, torch.matmul(factor, per).view(c_out, -1)).items():
                    self._add(pid, v)
            elif id(layer.weight) in accum:
                block.addmv_(per.t(), factor)
            else:  # the first batch of the lot writes the clipped sum straight into the buffer
                torch.mv(per.t(), factor, out=block)
                accum[id(layer.weight)] = self._views[id(layer.weight)]
                accum[id(layer.bias)] = self._views[id(layer.bias)]
        for kind, layer, a, g in sums:
            if kind == "linear":
                cgt = g.t() * factor  # (c, B): each sample's output gradient times its clip factor
                wid = id(layer.weight)
                w = self._views[wid]
                if wid in accum:
                    w.addmm_(cgt, a)
                elif w.is_contiguous():
                    torch.mm(cgt, a, out=w)
                    accum[wid] = w
                else:
                    self._add(wid, torch.mm(cgt, a))
                if layer.bias is not None:
                    bid = id(layer.bias)
                    if bid in accum or not self._views[bid].is_contiguous():
                        self._add(bid, cgt.sum(1))
                    else:
                        accum[bid] = torch.sum(cgt, 1, out=self._views[bid])
            else:  # ghost: the clipped sum as one matmul over (B·L)
                cgt = (g * factor.view(batch, 1, 1)).transpose(0, 1).reshape(g.shape[1], -1)  # (c, B·L)
                for pid, v in self._split(layer, torch.mm(cgt, a.reshape(-1, a.shape[2]))).items():
                    self._add(pid, v)
        self.lot_samples += batch
        return batch

    def _add(self, pid: int, v: torch.Tensor) -> None:
        acc = self.accum.get(pid)
        target = self._views[pid] if acc is None else acc  # (a strided view for interleaved blocks)
        if v.shape != target.shape:
            v = v.reshape(target.shape)
        if acc is None:
            target.copy_(v)
            self.accum[pid] = target
        else:
            target.add_(v)

    def reset_lot(self) -> None:
        """Forget the clipped sums of the current lot."""
        self.accum = {}
        self.lot_samples = 0

    def noisy_gradients(self, denominator: float, reuse: bool = False) -> List[torch.Tensor]:
        """(sum of clipped gradients + N(0, σ²C²)) / denominator for each parameter; resets the lot.

        The returned tensors are fresh (the next lot does not overwrite them), unless ``reuse``: then
        they are views of one buffer that the next ``reuse`` call overwrites (for a caller that
        applies them at once, as the DP optimizers do; saves an allocation and a view per parameter).
        """
        std = self.noise_multiplier * self.l2_norm_clip
        flat = self._flat
        if len(self.accum) < len(self.params):  # parameters without a clipped sum in this lot
            for p in self.params:
                if id(p) not in self.accum:
                    self._views[id(p)].zero_()
        if reuse:
            if self._noisy is None or self._noisy[0].shape != flat.shape:
                buf = torch.empty_like(flat)
                self._noisy = (buf, [buf.as_strided(v.shape, v.stride(), v.storage_offset()) for v in self._grad_views])
            out, grads = self._noisy
            if std > 0:
                torch.randn(flat.shape, generator=self.generator, dtype=flat.dtype, device=flat.device, out=out)
                torch.add(flat, out, alpha=std, out=out).div_(denominator)
            else:
                torch.div(flat, denominator, out=out)
        else:
            if std > 0:
                z = torch.randn(flat.shape, generator=self.generator, dtype=flat.dtype, device=flat.device)
                out = torch.add(flat, z, alpha=std).div_(denominator)
            else:
                out = flat / denominator
            grads = [out.as_strided(v.shape, v.stride(), v.storage_offset()) for v in self._grad_views]
        self.reset_lot()
        return grads


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
