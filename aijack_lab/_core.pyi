"""Type stub of the compiled core; each feature adds its submodule below."""
from typing import List

__version__: str
submodules: List[str]

def gmp_version() -> str: ...
def hardware_threads() -> int: ...

# -- mondrian (cpp/src/mondrian.cpp): strict multidimensional Mondrian k-anonymity ------------------
class mondrian:
    @staticmethod
    def partition(data: "numpy.ndarray", is_continuous: List[bool], n_categories: List[int], k: int) -> dict:
        """(n, d) float64 rows (categorical columns as codes) -> dict with partition_id (n,), sizes (P,),
        lows/highs (P, d), category_offsets / category_codes (one CSR pair per categorical column)."""
