"""The C++ core is built and linked to GMP; the library imports no notebook stack."""
import subprocess
import sys

import aijack_lab


def test_core_is_built_and_links_gmp():
    core = aijack_lab.core()
    major = int(core.gmp_version().split(".")[0])
    assert major >= 6
    assert core.hardware_threads() >= 1
    assert core.__version__ == aijack_lab.__version__


def test_library_imports_no_notebook_stack():
    code = (
        "import sys, aijack_lab, aijack_lab.attack, aijack_lab.defense, aijack_lab.collaborative, "
        "aijack_lab.datasets, aijack_lab.models, aijack_lab.engines\n"
        "from aijack_lab.attack import *\nfrom aijack_lab.defense import *\nfrom aijack_lab.collaborative import *\n"
        "bad = [m for m in ('ipywidgets', 'matplotlib', 'IPython') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
