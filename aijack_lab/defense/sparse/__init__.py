"""Sparse gradients (top-k sparsification of client uploads; paper Code S-20)."""
from .topk import SparseGradient, SparseGradientClientManager, SparseGradientServerManager, topk_sparsify

__all__ = ["SparseGradient", "SparseGradientClientManager", "SparseGradientServerManager", "topk_sparsify"]
