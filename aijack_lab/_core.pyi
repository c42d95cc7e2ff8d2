"""Type stub of the compiled core; each feature adds its submodule below."""
from typing import List

__version__: str
submodules: List[str]

def gmp_version() -> str: ...
def hardware_threads() -> int: ...
