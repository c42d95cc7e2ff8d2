"""Write a notebook from a percent-format script (``# %%`` code cells, ``# %% [markdown]`` markdown cells).

Usage: python tools/write_notebook.py notebooks/src/attack_evasion.py [notebooks/attack_evasion.ipynb]
(the output defaults to notebooks/<name>.ipynb next to src/).
The notebooks are committed without outputs; their sources live in notebooks/src/ so that
sections can be edited as plain text (tests/test_notebooks_in_sync.py checks both agree).
"""
import os
import re
import sys

import nbformat

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def parse(text: str):
    cells = []
    for block in re.split(r"^# %%", text, flags=re.M)[1:]:
        header, _, body = block.partition("\n")
        body = body.strip("\n")
        if header.strip().startswith("[markdown]"):
            lines = [l[2:] if l.startswith("# ") else l.lstrip("#") for l in body.splitlines()]
            cells.append(nbformat.v4.new_markdown_cell("\n".join(lines)))
        else:
            cells.append(nbformat.v4.new_code_cell(body))
    return cells


def build(src: str) -> nbformat.NotebookNode:
    with open(src, encoding="utf-8") as f:
        nb = nbformat.v4.new_notebook(cells=parse(f.read()))
    nb.metadata["kernelspec"] = KERNELSPEC
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i}"
    return nb


def main(src: str, dst: str) -> None:
    nbformat.write(build(src), dst)


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3) or sys.argv[1] in ("-h", "--help"):
        sys.exit(__doc__)
    src = sys.argv[1]
    default = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(src))), os.path.basename(src)[:-3] + ".ipynb")
    main(src, sys.argv[2] if len(sys.argv) == 3 else default)
