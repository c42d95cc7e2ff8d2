"""Panels of the issue-8 attacks: default runs show the attack working, and each Code view reproduces the numbers."""
import pytest

from aijack_lab.widgets.registry import get_entry
from aijack_lab.widgets.testing import assert_code_reproduces


def _panel(type_, sub, name, **values):
    return get_entry(type_, sub, name).panel_cls(**values)


def test_evasion_svm_panel():
    p = _panel("Attack", "Evasion", "Gradient-Descent")
    r = p.run()
    assert r["mean_initial_decision"] > 0 > r["mean_final_decision"]
    assert r["evaded_fraction"] >= 0.75
    assert p.image.value  # a figure was drawn
    assert_code_reproduces(p)


def test_svm_poisoning_panel():
    p = _panel("Attack", "Poisoning", "SVM Poisoning", num_iterations=30)
    r = p.run()
    assert r["poisoned_accuracy"] < r["random_flip_accuracy"] - 0.02
    assert r["hinge_loss_best"] > r["hinge_loss_start"]
    assert_code_reproduces(p)


def test_diva_panel():
    p = _panel("Attack", "Evasion", "DIVA", num_samples=100, num_itr=40)
    r = p.run()
    assert r["diva_edge_only_rate"] >= r["fgsm_edge_only_rate"] + 0.2
    assert r["diva_original_accuracy"] >= 0.9
    assert_code_reproduces(p)


def test_miface_panel():
    p = _panel("Attack", "Model Inversion", "MI-FACE", num_itr=100)
    r = p.run()
    assert r["nearest_mean_correct"] >= 9
    assert len(r["final_costs"]) == 10
    assert_code_reproduces(p)


def test_shadow_mia_panel():
    p = _panel("Attack", "Membership Inference", "Shadow")
    r = p.run()
    assert r["attack_auc"] >= 0.6 and r["target_train_accuracy"] == 1.0
    assert_code_reproduces(p)


def test_panel_rejects_out_of_range_values():
    p = _panel("Attack", "Evasion", "Gradient-Descent")
    with pytest.raises(ValueError, match="lam"):
        p.set(lam=-1.0)
    with pytest.raises(ValueError, match="bits"):
        _panel("Attack", "Evasion", "DIVA", bits=3)
