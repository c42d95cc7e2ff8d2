"""The gallery lists every Table 1 algorithm; the README's table is generated from the registry."""
import pathlib

import ipywidgets as W
import pytest

from aijack_lab.widgets import gallery, register
from aijack_lab.widgets.catalog import CATALOG, readme_table, replace_readme_table
from aijack_lab.widgets.registry import entries

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_registered_panels_match_catalog_entries():
    registered = entries()
    keys = {a.key for a in CATALOG}
    assert set(registered) <= keys
    assert ("Attack", "Evasion", "FGSM") in registered
    assert ("FL", "Horizontal", "FedAVG") in registered


def test_register_rejects_names_outside_the_catalog():
    with pytest.raises(ValueError, match="catalog"):
        register("Attack", "Evasion", "NotAnAlgorithm")


def test_gallery_has_one_entry_per_algorithm():
    g = gallery()
    assert [g.get_title(i) for i in range(len(g.children))] == ["FL", "Attack", "Defense"]
    n_entries = sum(len(section.children) for acc in g.children for section in acc.children)
    assert n_entries == len(CATALOG)
    registered = entries()
    unavailable = [
        item for acc in g.children for section in acc.children for item in section.children
        if isinstance(item, W.HTML) and "not available yet" in item.value
    ]
    assert len(unavailable) == len(CATALOG) - len(registered)


def test_readme_table_matches_registry():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert replace_readme_table(text) == text, "README table is stale: run `make readme`"
    assert readme_table().count("\n") == len(CATALOG) + 1
