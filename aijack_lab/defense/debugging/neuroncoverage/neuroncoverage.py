"""Neuron coverage: the fraction of neurons that some input activated above a threshold.

A neuron is a unit of a hooked layer's output (a feature of a Linear/activation output, a channel
of a convolutional one, averaged over space). As in DeepXplore, each input's activations are
min-max scaled within the layer before thresholding, so one threshold in [0, 1) fits every layer.
"""
from numbers import Real
from typing import Dict, Iterable, List, Optional

import torch
from torch import nn

_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.SiLU)
_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


class NeuronCoverageTracker:
    """Track which neurons of ``model`` any input has activated.

    Args:
        model: a torch model.
        dummy_data: one example batch, used to find the layers and their sizes.
        threshold: activation level (after per-input min-max scaling) that counts as "activated", in [0, 1).
        layers: names of the modules to track; default: every activation module (the hidden
            neurons) and the last Linear/Conv module (the output neurons).

    The paper's listing passes ``(nn, threshold, dummy_data)``; both orders are accepted (the
    threshold is the number).
    """

    def __init__(self, model: nn.Module, dummy_data=None, threshold=0.5, layers: Optional[List[str]] = None):
        if isinstance(dummy_data, Real) and torch.is_tensor(threshold):
            dummy_data, threshold = threshold, dummy_data
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not torch.is_tensor(dummy_data):
            raise TypeError("dummy_data must be a tensor batch the model accepts")
        if isinstance(threshold, bool) or not isinstance(threshold, Real) or not 0.0 <= float(threshold) < 1.0:
            raise ValueError(
                f"threshold must be in [0, 1): activations are min-max scaled per input, got {threshold!r}"
            )
        self.model = model
        self.threshold = float(threshold)
        modules = dict(model.named_modules())
        if layers is None:
            layers = [n for n, m in modules.items() if isinstance(m, _ACTIVATIONS)]
            linear = [n for n, m in modules.items() if isinstance(m, _LAYERS)]
            if linear and linear[-1] not in layers:
                layers.append(linear[-1])
        unknown = [n for n in layers if n not in modules]
        if unknown:
            raise ValueError(f"model has no modules named {unknown}")
        if not layers:
            raise ValueError("model has no layers to track (no activation, Linear or Conv modules)")
        self.layers = list(layers)
        self._modules = {n: modules[n] for n in self.layers}
        sizes = self._activations(dummy_data)
        self.covered: Dict[str, torch.Tensor] = {n: torch.zeros(a.shape[1], dtype=torch.bool) for n, a in sizes.items()}

    def _activations(self, x) -> Dict[str, torch.Tensor]:
        acts: Dict[str, torch.Tensor] = {}
        handles = []
        for name, module in self._modules.items():
            def hook(_m, _inp, out, name=name):
                out = out.detach()
                acts[name] = out.flatten(2).mean(dim=2) if out.dim() > 2 else out.reshape(out.shape[0], -1)
            handles.append(module.register_forward_hook(hook))
        was = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                self.model(x)
        except Exception as exc:
            raise ValueError(f"the model could not run on the given data: {exc}") from exc
        finally:
            self.model.train(was)
            for h in handles:
                h.remove()
        return acts

    def reset(self) -> None:
        for mask in self.covered.values():
            mask.zero_()

    def update(self, x: torch.Tensor) -> None:
        """Mark the neurons that ``x`` (a batch) activates."""
        for name, a in self._activations(x).items():
            lo = a.min(dim=1, keepdim=True).values
            hi = a.max(dim=1, keepdim=True).values
            scaled = (a - lo) / (hi - lo).clamp_min(1e-12)
            self.covered[name] |= (scaled > self.threshold).any(dim=0)

    def coverage(self, data: Iterable, reset: bool = True) -> Dict:
        """Coverage over ``data`` (a dataloader of ``(x, y)`` or ``x`` batches, or one tensor).

        Returns ``{"total": fraction of all tracked neurons covered, "per_layer": {name: fraction}}``.
        With ``reset=False`` the coverage accumulates over calls.
        """
        if reset:
            self.reset()
        batches = [data] if torch.is_tensor(data) else data
        seen = 0
        for batch in batches:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            self.update(x)
            seen += 1
        if seen == 0:
            raise ValueError("coverage got no data")
        return self.report()

    def report(self) -> Dict:
        per_layer = {n: m.float().mean().item() for n, m in self.covered.items()}
        total = sum(int(m.sum()) for m in self.covered.values()) / sum(m.numel() for m in self.covered.values())
        return {"total": total, "per_layer": per_layer}
