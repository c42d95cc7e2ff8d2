"""k-anonymity: Mondrian (the partitioning runs in the C++ core)."""
from .mondrian import Mondrian, normalized_certainty_penalty

__all__ = ["Mondrian", "normalized_certainty_penalty"]
