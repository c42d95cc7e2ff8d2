"""The three debugging panels, headless: set controls, Run, read panel.result; the Code view reproduces it."""
from aijack_lab.widgets import ModelAssertionsPanel, NeuronCoveragePanel, RainPanel
from aijack_lab.widgets.testing import assert_code_reproduces


def test_model_assertions_panel_finds_every_injected_fault():
    panel = ModelAssertionsPanel()
    r = panel.run()
    assert r["flagged_multibox"] == r["injected_multibox"] and r["injected_multibox"]
    assert r["flagged_flicker"] == r["injected_flicker"] and r["injected_flicker"]
    assert r["recall"] == 1.0 and r["precision"] == 1.0
    assert_code_reproduces(panel)
    panel.set(multibox_rate=0.0, flicker_rate=0.0)
    clean = panel.run()
    assert clean["flagged_multibox"] == [] and clean["flagged_flicker"] == []


def test_rain_panel_resolves_the_complaint():
    panel = RainPanel()
    r = panel.run()
    assert r["count_before"] > r["complaint_value"]
    assert r["resolved"] and r["count_after"] <= r["complaint_value"]
    assert r["precision_at_flipped"] >= 0.8 > r["loss_ranking_precision"]
    assert_code_reproduces(panel)


def test_neuron_coverage_panel():
    panel = NeuronCoveragePanel()
    r = panel.run()
    assert 0 <= r["clean_coverage"] < r["clean_plus_adversarial_coverage"] <= 1
    assert r["newly_covered_by_adversarial"] >= 1
    assert_code_reproduces(panel)
