"""Top-k sparse gradients (paper Code S-20; Aji & Heafield, EMNLP 2017; Zhu et al., DLG, NeurIPS 2019).

Each client sends, for every parameter tensor, only the fraction ``k`` of its pseudo-gradient's
entries with the largest magnitude, as (values, flat indices). The server turns each upload back
into dense tensors (zeros elsewhere), aggregates, and with ``server_side_update=False`` sends the
aggregate back for the clients to apply. Fewer bytes go up, and the upload tells a gradient
inversion attacker less.
"""
from typing import List, Sequence

import torch

from ...manager import BaseManager
from ...utils.validation import check_in_range


class SparseGradient:
    """One sparsified tensor: ``values`` at flat ``indices`` of a tensor of ``shape``.

    Supports ``+`` (with another SparseGradient of the same shape, or a dense tensor) and scalar
    ``*``, so a plain server can aggregate it; ``nbytes`` is what it occupies on the wire
    (values plus int32 indices).
    """

    def __init__(self, values: torch.Tensor, indices: torch.Tensor, shape: Sequence[int]):
        if not (torch.is_tensor(values) and torch.is_tensor(indices)):
            raise TypeError("values and indices must be tensors")
        if values.shape != indices.shape or values.dim() != 1:
            raise ValueError(f"values and indices must be 1-D of the same length, got {tuple(values.shape)} "
                             f"and {tuple(indices.shape)}")
        self.shape = torch.Size(shape)
        numel = self.shape.numel()
        if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= numel):
            raise ValueError(f"indices must lie in [0, {numel}) for shape {tuple(self.shape)}")
        if values.is_floating_point() and not torch.isfinite(values).all():
            raise ValueError("a sparse gradient has NaN or inf values")
        self.values = values
        self.indices = indices.to(torch.int32) if numel < 2**31 else indices.to(torch.int64)

    @property
    def nbytes(self) -> int:
        return self.values.numel() * self.values.element_size() + self.indices.numel() * self.indices.element_size()

    def to_dense(self) -> torch.Tensor:
        dense = torch.zeros(self.shape.numel(), dtype=self.values.dtype)
        dense.index_add_(0, self.indices.long(), self.values)
        return dense.reshape(self.shape)

    def __mul__(self, scalar):
        if torch.is_tensor(scalar) and scalar.numel() != 1 or isinstance(scalar, SparseGradient):
            raise TypeError("a SparseGradient multiplies by a scalar only")
        return SparseGradient(self.values * scalar, self.indices, self.shape)

    __rmul__ = __mul__

    def __add__(self, other):
        if isinstance(other, SparseGradient):
            if other.shape != self.shape:
                raise ValueError(f"cannot add sparse gradients of shapes {tuple(self.shape)} and {tuple(other.shape)}")
            idx = torch.cat([self.indices.long(), other.indices.long()])
            val = torch.cat([self.values, other.values.to(self.values.dtype)])
            uniq, inverse = torch.unique(idx, return_inverse=True)
            summed = torch.zeros(len(uniq), dtype=val.dtype).index_add_(0, inverse, val)
            return SparseGradient(summed, uniq, self.shape)
        if torch.is_tensor(other):
            return self.to_dense() + other
        return NotImplemented

    __radd__ = __add__

    def __repr__(self):
        return f"SparseGradient(shape={tuple(self.shape)}, nnz={len(self.values)})"


def topk_sparsify(tensor: torch.Tensor, k: float) -> SparseGradient:
    """Keep the ``int(k · numel)`` (at least one) largest-magnitude entries of ``tensor``."""
    flat = tensor.detach().reshape(-1)
    count = max(1, int(k * flat.numel()))
    idx = torch.topk(flat.abs(), count, sorted=False).indices
    idx, _ = torch.sort(idx)
    return SparseGradient(flat[idx].clone(), idx, tensor.shape)


def densify(update: Sequence) -> List:
    """Dense tensors for an upload that may hold :class:`SparseGradient` entries."""
    return [t.to_dense() if isinstance(t, SparseGradient) else t for t in update]


class SparseGradientClientManager(BaseManager):
    """``SparseGradientClientManager(k=0.3).attach(FedAVGClient)``: upload only the top-k fraction
    of each tensor's pseudo-gradient entries (by magnitude) as :class:`SparseGradient` objects.

    Args:
        k: fraction of entries sent per tensor, in (0, 1] (at least one entry per tensor).

    The client keeps ``uploaded_nbytes`` and ``dense_nbytes`` (one entry per upload). Received
    aggregates may be dense tensors or SparseGradients; both are applied.
    """

    def __init__(self, k: float = 0.3):
        super().__init__(k=k)
        self.k = check_in_range("k", k, 0.0, 1.0, low_open=True)

    def extend(self, cls):
        manager = self

        class SparseGradientClient(cls):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.k = manager.k
                self.uploaded_nbytes: List[int] = []
                self.dense_nbytes: List[int] = []

            def upload_gradients(self):
                dense = super().upload_gradients()
                sparse = [topk_sparsify(g, self.k) for g in dense]
                self.uploaded_nbytes.append(sum(s.nbytes for s in sparse))
                self.dense_nbytes.append(sum(g.numel() * g.element_size() for g in dense))
                return sparse

            def upload_parameters(self):
                raise TypeError("sparse gradients are uploaded as gradients: run FedAVGAPI with use_gradients=True")

            def apply_global_gradient(self, gradients):
                return super().apply_global_gradient(densify(gradients))

        return SparseGradientClient


class SparseGradientServerManager(BaseManager):
    """``SparseGradientServerManager().attach(FedAVGServer)``: turn each client's sparse upload back
    into dense tensors, checked against the global model's shapes, then aggregate as usual.

    ``uploaded_gradients`` keeps what was received (so byte counts are of the sparse uploads).
    """

    def extend(self, cls):
        class SparseGradientServer(cls):
            def aggregate(self, updates, weights):
                shapes = [p.shape for p in self.server_model.parameters()]
                dense_updates = []
                for i, update in enumerate(updates):
                    if len(update) != len(shapes):
                        raise ValueError(f"{self._client_name(i)} sent {len(update)} tensors; the model has {len(shapes)}")
                    dense = densify(update)
                    for j, (t, s) in enumerate(zip(dense, shapes)):
                        if not torch.is_tensor(t) or t.shape != s:
                            got = tuple(t.shape) if torch.is_tensor(t) else type(t).__name__
                            raise ValueError(f"{self._client_name(i)}: update tensor {j} is {got}, expected {tuple(s)}")
                    dense_updates.append(dense)
                return super().aggregate(dense_updates, weights)

        return SparseGradientServer
