"""Panels for the accountant and DP-SGD/AdaDPS/DPlis: numbers, presets, and Code views that reproduce them."""
import pytest

from aijack_lab.widgets.defense_dp import AccountantPanel, DPSGDPanel
from aijack_lab.widgets.registry import get_entry
from aijack_lab.widgets.testing import assert_code_reproduces


def test_accountant_panel_reference_point_and_code():
    panel = AccountantPanel(backend="python")
    assert panel.values["backend"] == "python"
    panel.set(backend="cpp")
    r = panel.run()
    assert r["epsilon"] == pytest.approx(7.32988, abs=1e-5)  # σ=1.5, q=0.04, 2250 lots, δ=1e-5
    assert r["epsilon_closedformula"] > r["epsilon"]
    assert r["epsilon_curve_tight"] == sorted(r["epsilon_curve_tight"])  # ε grows with the lots
    assert r["sigma_for_target"] > 1.5  # a smaller ε needs more noise
    assert r["epsilon_prv"] == pytest.approx(6.77913, abs=1e-4)  # Opacus 1.6.0's PRV: 6.77913
    prv = [e for e in r["epsilon_curve_prv"] if e is not None]
    assert len(prv) == len(r["epsilon_curve_prv"]) >= 5 and prv == sorted(prv)
    assert_code_reproduces(panel, rtol=1e-9)
    assert "lot" in panel.description.lower() and "batch" in panel.description.lower()


def test_catalog_entries_open_the_dp_panel_with_presets():
    for algorithm, method in (("DPSGD", "dpsgd"), ("AdaDPS", "adadps"), ("DPlis", "dplis")):
        panel = get_entry("Defense", "Differential Privacy", algorithm).create()
        assert isinstance(panel, DPSGDPanel)
        assert panel.values["method"] == method
        assert "manager" in panel.code_text.lower()


@pytest.mark.parametrize("method", ["dpsgd", "dplis"])
def test_dpsgd_panel_trains_at_target_epsilon(method):
    panel = DPSGDPanel(method=method, curve=False, target_epsilon=4.0, epochs=6)
    r = panel.run()
    assert r["epsilon"] <= 4.0
    assert r["accuracy"] >= 0.8
    assert r["non_private_accuracy"] >= r["accuracy"] - 0.05
    assert 0.3 < r["mi_auc_private"] < 0.7
    assert_code_reproduces(panel, rtol=1e-6, atol=1e-6)


def test_adadps_panel_beats_dpsgd_on_the_default_task():
    panel = DPSGDPanel(method="adadps", curve=False)  # digits MLP, ε=4, 8 epochs: the panel's defaults
    r = panel.run()
    assert r["epsilon"] <= 4.0
    assert r["dpsgd_accuracy"] is not None and r["accuracy"] > r["dpsgd_accuracy"]
    assert_code_reproduces(panel, rtol=1e-6, atol=1e-6)


def test_stop_ends_a_training_run():
    from aijack_lab.utils.progress import StopRequested

    panel = DPSGDPanel(curve=False, epochs=30)
    panel.stop()
    panel._stop.set()  # as the Stop button does while a run is going
    with pytest.raises(StopRequested):
        panel.compute(panel.values, panel._progress)


def test_accountant_panel_prv_gives_way_to_rdp_when_sigma_is_too_small():
    r = AccountantPanel().set(sigma=0.3, sampling_rate=1.0, steps=2000).run()
    assert r["epsilon"] > 0 and r["epsilon_prv"] is None  # the RDP ε is still reported
