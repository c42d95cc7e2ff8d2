from aijack_lab.widgets import NormAttackPanel, SplitNNPanel
from aijack_lab.widgets.testing import assert_code_reproduces


def test_splitnn_panel_learns_and_reports_traffic():
    panel = SplitNNPanel()
    r = panel.run()
    assert r["final_accuracy"] >= 0.9
    assert r["activation_bytes_sent"] == r["gradient_bytes_sent"] > 0
    assert_code_reproduces(panel)


def test_norm_attack_panel_leaks_labels():
    panel = NormAttackPanel()
    r = panel.run()
    assert r["leak_auc_per_epoch"][0] >= 0.9 and r["test_leak_auc"] >= 0.9
    assert_code_reproduces(panel)
