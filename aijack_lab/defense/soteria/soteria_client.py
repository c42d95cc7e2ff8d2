"""Soteria: a client-side defense against gradient inversion (paper Code S-21).

Reference: Sun, Li, Wang, Rawat, Chen, Yang. Soteria: Provable Defense against Privacy Leakage in
Federated Learning from Representation Perspective. CVPR 2021.

A model splits into a feature extractor (``input_layer`` takes the data ``x``) and a layer
``perturbed_layer`` whose input is the representation ``r``. The gradient of a linear layer's
weight on ``r`` is ``δ rᵀ``: its column ``f`` reveals ``r_f``. Removing ``r_f`` moves the input an
attacker can reconstruct by about ``|r_f| / ||∂r_f/∂x||``, so Soteria prunes (zeroes) the columns
of the target weight's gradient with the largest such score, a fraction ``epsilon`` of them,
computed on every local batch. The gradients of the other layers are sent unchanged.
"""
from typing import List, Optional

import torch

from ...manager import BaseManager
from ...utils.validation import check_in_range


def _submodule(model: torch.nn.Module, name: str, arg: str) -> torch.nn.Module:
    if not isinstance(name, str) or not name:
        raise TypeError(f"{arg} must be the name of a submodule (a non-empty string), got {name!r}")
    try:
        return model.get_submodule(name)
    except AttributeError:
        children = [n for n, _ in model.named_children()]
        raise ValueError(f"{arg}={name!r} is not a submodule of {type(model).__name__}; it has {children}") from None


def _jacobian_norms_forward(fn, inputs: torch.Tensor) -> torch.Tensor:
    """(N, F) norms ``||∂fn(x_n)_f / ∂x_n||`` by forward-mode differentiation (one pass per input entry)."""
    from torch.func import jacfwd, vmap

    def one(xi):
        return fn(xi.unsqueeze(0)).reshape(-1)

    jac = vmap(jacfwd(one))(inputs.detach())  # (N, F, *input shape)
    return jac.reshape(jac.shape[0], jac.shape[1], -1).norm(dim=2)


def soteria_scores(representation: torch.Tensor, inputs: torch.Tensor, fn=None) -> torch.Tensor:
    """Soteria's per-feature score ``mean_n |r_nf| / ||∂r_nf/∂x_n||`` (shape: features).

    ``representation`` (N, F) must be computed from ``inputs`` (N, ...); each sample's
    representation depends only on its own input (no batch statistics across samples). With
    ``fn`` (``representation == fn(inputs)``) the Jacobian is taken in forward mode, one pass per
    input entry; otherwise ``representation`` must keep its graph and one batched backward pass
    over the F features is used.
    """
    if representation.dim() != 2:
        representation = representation.reshape(representation.shape[0], -1)
    n, f = representation.shape
    if fn is not None:
        try:
            norms = _jacobian_norms_forward(fn, inputs)
        except Exception:  # e.g. a module that updates buffers in place: use the backward path
            norms = None
        if norms is not None:
            ratio = representation.detach().abs() / norms.clamp_min(1e-12)
            return torch.where(norms > 0, ratio, torch.zeros_like(ratio)).mean(dim=0)
    eye = torch.eye(f, dtype=representation.dtype).unsqueeze(1).expand(f, n, f)
    try:
        (jac,) = torch.autograd.grad(representation, inputs, grad_outputs=eye, retain_graph=True,
                                     is_grads_batched=True)
    except RuntimeError:  # an op without a batching rule: one backward per feature
        rows = []
        for i in range(f):
            (g,) = torch.autograd.grad(representation, inputs, grad_outputs=eye[i].contiguous(), retain_graph=True)
            rows.append(g)
        jac = torch.stack(rows)
    norms = jac.reshape(f, n, -1).norm(dim=2).T  # (N, F)
    ratio = representation.detach().abs() / norms.clamp_min(1e-12)
    ratio = torch.where(norms > 0, ratio, torch.zeros_like(ratio))  # a dead feature reveals nothing
    return ratio.mean(dim=0)


class SoteriaClientManager(BaseManager):
    """``SoteriaClientManager("conv", "lin", target_layer_name="lin.0.weight").attach(FedAVGClient)``.

    Args:
        input_layer: name of the submodule that takes the data (its input is ``x``).
        perturbed_layer: name of the submodule whose input is the representation ``r``.
        epsilon: fraction of the representation's features whose gradient columns are pruned
            (``int(epsilon · F)`` of the F features), in [0, 1].
        target_layer_name: the parameter (a 2-D weight with F columns) whose gradient is pruned;
            default the first 2-D weight under ``perturbed_layer``.

    The client keeps ``pruned_indices`` (the last step's pruned features) and
    ``pruned_fractions`` (one entry per local step). The upload is the pseudo-gradient with the
    last step's pruned columns zero (after one local SGD step it is the pruned batch gradient).
    """

    def __init__(self, input_layer: str, perturbed_layer: str, epsilon: float = 0.2,
                 target_layer_name: Optional[str] = None):
        super().__init__(input_layer, perturbed_layer, epsilon=epsilon, target_layer_name=target_layer_name)
        for arg, name in (("input_layer", input_layer), ("perturbed_layer", perturbed_layer)):
            if not isinstance(name, str) or not name:
                raise TypeError(f"{arg} must be the name of a submodule (a non-empty string), got {name!r}")
        if target_layer_name is not None and (not isinstance(target_layer_name, str) or not target_layer_name):
            raise TypeError(f"target_layer_name must be a parameter name such as 'lin.0.weight', got {target_layer_name!r}")
        self.input_layer = input_layer
        self.perturbed_layer = perturbed_layer
        self.epsilon = check_in_range("epsilon", epsilon, 0.0, 1.0)
        self.target_layer_name = target_layer_name

    def extend(self, cls):
        manager = self

        class SoteriaClient(cls):
            """Prunes the target layer's gradient columns by the Soteria score at every local step."""

            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.input_layer = manager.input_layer
                self.perturbed_layer = manager.perturbed_layer
                self.epsilon = manager.epsilon
                self.target_layer_name = self._resolve_target()
                self.pruned_indices: Optional[torch.Tensor] = None
                self.pruned_fractions: List[float] = []
                self._soteria_on = False
                self._soteria_x = None
                self._soteria_out = None
                layer = _submodule(self.model, manager.input_layer, "input_layer")
                self._soteria_input_module = layer
                layer.register_forward_pre_hook(self._capture_input)
                layer.register_forward_hook(self._capture_output)
                _submodule(self.model, manager.perturbed_layer, "perturbed_layer").register_forward_pre_hook(
                    self._score_representation)

            def _resolve_target(self) -> str:
                params = dict(self.model.named_parameters())
                _submodule(self.model, manager.perturbed_layer, "perturbed_layer")
                name = manager.target_layer_name
                if name is None:
                    prefix = manager.perturbed_layer + "."
                    candidates = [n for n, p in params.items() if n.startswith(prefix) and p.dim() == 2]
                    if not candidates:
                        raise ValueError(f"perturbed_layer={manager.perturbed_layer!r} has no 2-D weight; "
                                         "give target_layer_name")
                    name = candidates[0]
                if name not in params:
                    raise ValueError(f"target_layer_name={name!r} is not a parameter of {type(self.model).__name__}; "
                                     f"it has {list(params)}")
                if params[name].dim() != 2:
                    raise ValueError(f"target_layer_name={name!r} must be a 2-D (linear) weight, "
                                     f"got shape {tuple(params[name].shape)}")
                return name

            # -- hooks, active only during local training ------------------------------------
            def _capture_input(self, _module, args):
                if self._soteria_on:
                    self._soteria_x = args[0]

            def _capture_output(self, _module, _args, output):
                if self._soteria_on:
                    self._soteria_out = output

            def _score_representation(self, _module, args):
                if not self._soteria_on or not torch.is_grad_enabled():
                    return
                x, r = self._soteria_x, args[0]
                if x is None or not x.requires_grad or not r.requires_grad:
                    return
                r2 = r.reshape(r.shape[0], -1)
                weight = dict(self.model.named_parameters())[self.target_layer_name]
                if weight.shape[1] != r2.shape[1]:
                    raise ValueError(
                        f"target_layer_name={self.target_layer_name!r} has {weight.shape[1]} columns but the "
                        f"representation entering {self.perturbed_layer!r} has {r2.shape[1]} features")
                # when the representation is the input layer's own output, differentiate that
                # module in forward mode (cheaper than one backward pass per feature)
                fn = None
                if r is self._soteria_out and x.shape[0] == r.shape[0]:
                    fn = self._soteria_forward
                self._soteria_on = False  # no hooks while scoring
                try:
                    scores = soteria_scores(r2, x, fn=fn)
                finally:
                    self._soteria_on = True
                k = int(self.epsilon * r2.shape[1])
                self.pruned_indices = torch.topk(scores, k).indices if k > 0 else torch.zeros(0, dtype=torch.long)
                self.pruned_fractions.append(k / r2.shape[1])

            def _soteria_forward(self, x):
                return self._soteria_input_module(x)

            def _prune(self, tensor: torch.Tensor) -> torch.Tensor:
                if self.pruned_indices is not None and len(self.pruned_indices):
                    tensor[:, self.pruned_indices] = 0
                return tensor

            # -- training and upload -----------------------------------------------------------
            def local_train(self, local_epoch, criterion, trainloader, optimizer, communication_id=0):
                from ...attack.fl_utils import BatchTransformLoader

                loader = BatchTransformLoader(trainloader, lambda x, y: (x.detach().requires_grad_(True), y))
                self._soteria_on = True
                try:
                    return super().local_train(local_epoch, criterion, loader, _PruningOptimizer(optimizer, self),
                                               communication_id)
                finally:
                    self._soteria_on = False
                    self._soteria_x = None

            def _prune_gradient(self) -> None:
                weight = dict(self.model.named_parameters())[self.target_layer_name]
                if weight.grad is not None:
                    with torch.no_grad():
                        self._prune(weight.grad)

            def upload_gradients(self):
                grads = super().upload_gradients()
                names = [n for n, _ in self.model.named_parameters()]
                i = names.index(self.target_layer_name)
                grads[i] = self._prune(grads[i].clone())
                return grads

            def upload_parameters(self):
                from ...attack.fl_utils import gradients_to_parameters

                return gradients_to_parameters(self.prev_parameters, self.upload_gradients(), self.lr)

        return SoteriaClient


class _PruningOptimizer:
    """Wraps the local optimizer: ``step()`` prunes the target gradient first, the rest is delegated."""

    def __init__(self, optimizer, client):
        self._optimizer = optimizer
        self._client = client

    def step(self, *args, **kwargs):
        self._client._prune_gradient()
        return self._optimizer.step(*args, **kwargs)

    def zero_grad(self, *args, **kwargs):
        return self._optimizer.zero_grad(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._optimizer, name)
