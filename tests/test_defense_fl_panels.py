"""Panels of issue 12: each runs with its defaults, shows the defense working against its attack,
and its Code view reproduces the numbers."""
import pytest

from aijack_lab.widgets.registry import get_entry
from aijack_lab.widgets.testing import assert_code_reproduces


def make(name, **values):
    panel = get_entry("Defense", "Others", name).create()
    panel.set(**values)
    return panel


def test_soteria_panel_defaults(digits):
    panel = make("Soteria", num_iteration=15)
    r = panel.run()
    assert r["plain_mse"] < 1e-3 and r["soteria_mse"] > 0.05  # in the pixel range [0, 1]
    assert r["pruned_fraction"] == int(0.3 * 192) / 192
    assert 0 < r["gradient_change"] < 1
    assert panel.image.value  # the figure was drawn
    assert_code_reproduces(panel)


def test_foolsgold_panel(digits):
    panel = make("FoolsGold", num_communication=2)
    r = panel.run()
    assert r["final_sybil_weight"] <= 0.01 and r["final_honest_weight"] >= 0.9
    assert r["foolsgold_accuracy_per_round"][-1] > r["fedavg_accuracy_per_round"][-1] + 0.3
    assert_code_reproduces(panel)
    with pytest.raises(ValueError, match="num_sybils"):
        make("FoolsGold", num_clients=3, num_sybils=3).run()


def test_mid_panel(digits):
    panel = make("MID", epochs=4)
    r = panel.run()
    assert r["vib_accuracy"] >= 0.85 and r["plain_accuracy"] >= 0.85
    assert r["vib_inversion_mse"] > 1.5 * r["plain_inversion_mse"]
    assert_code_reproduces(panel)


def test_sparse_panel(digits):
    panel = make("Sparse Gradient", num_communication=2, num_clients=2)
    r = panel.run()
    assert r["bytes_ratio"] == pytest.approx(2 * 0.3, abs=0.01)
    assert r["sparse_accuracy_per_round"][-1] >= 0.7
    assert_code_reproduces(panel)
