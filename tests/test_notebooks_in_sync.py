"""Each committed notebook equals what tools/write_notebook.py builds from notebooks/src/ (no outputs)."""
import json
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from write_notebook import build  # noqa: E402

SOURCES = sorted((ROOT / "notebooks" / "src").glob("*.py"))


@pytest.mark.parametrize("src", SOURCES, ids=[s.stem for s in SOURCES])
def test_notebook_matches_source(src):
    nb_path = ROOT / "notebooks" / f"{src.stem}.ipynb"
    assert nb_path.exists(), f"{nb_path.name} missing: run tools/write_notebook.py {src} {nb_path}"
    committed = json.loads(nb_path.read_text())
    built = json.loads(json.dumps(build(str(src))))
    def sources(nb):
        return [(c["cell_type"], "".join(c["source"])) for c in nb["cells"]]

    assert sources(committed) == sources(built), (
        f"{nb_path.name} differs from its source: rebuild it with tools/write_notebook.py"
    )
    for cell in committed["cells"]:
        assert not cell.get("outputs"), f"{nb_path.name} was committed with outputs"


def test_every_notebook_has_a_source():
    notebooks = {p.stem for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert notebooks == {s.stem for s in SOURCES}


@pytest.mark.parametrize("src", SOURCES, ids=[s.stem for s in SOURCES])
def test_notebook_teaches_what_you_will_learn_and_ends_with_exercises(src):
    nb = build(str(src))
    first, last = nb.cells[0], nb.cells[-1]
    assert first.cell_type == "markdown" and "what you will learn" in first.source.lower()
    assert last.cell_type == "markdown" and "exercises" in last.source.lower()
    assert sum(c.cell_type == "code" and "assert" in c.source for c in nb.cells) >= 1
