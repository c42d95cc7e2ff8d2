from aijack_lab.widgets import RobustTreePanel, SecureBoostPanel
from aijack_lab.widgets.testing import assert_code_reproduces


def test_secureboost_panel_equal_trees_and_timings():
    panel = SecureBoostPanel()
    r = panel.run()
    assert r["trees_equal"] and r["accuracy"] == r["plaintext_accuracy"] >= 0.9
    assert sum(r["splits_per_party"]) > 0 and sum(s > 0 for s in r["splits_per_party"]) >= 2
    assert r["encryption_s"] > 0 and r["decryptions"] < r["encrypted_bin_sums"]
    assert_code_reproduces(panel)


def test_robust_tree_panel_beats_plain_under_attack():
    panel = RobustTreePanel()
    r = panel.run()
    assert r["robust_attacked_accuracy"] >= r["plain_attacked_accuracy"] + 0.3
    assert r["robust_feature_share"][0] < r["plain_feature_share"][0]
    assert_code_reproduces(panel)
