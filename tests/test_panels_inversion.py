"""GradientInversionPanel (five presets) and GANAttackPanel, driven headless: Run, read panel.result, check the Code view."""
import pytest

from aijack_lab.utils.progress import StopRequested
from aijack_lab.widgets.registry import get_entry
from aijack_lab.widgets.testing import assert_code_reproduces

METHODS = ["DLG", "iDLG", "GS", "CPL", "GradInversion"]


@pytest.mark.parametrize(
    "method", [m if m != "GradInversion" else pytest.param(m, marks=pytest.mark.slow) for m in METHODS]
)
def test_gradient_inversion_presets_reconstruct_and_code_reproduces(method):
    entry = get_entry("Attack", "Model Inversion", method)
    panel = entry.create()
    assert panel.values["method"] == method
    r = panel.run()
    assert r["mse"] < 0.1 * r["start_mse"]
    assert r["label_accuracy"] == 1.0
    assert sorted(r["recovered_labels"]) == sorted(r["true_labels"])
    assert len(r["loss_curve"]) <= panel.values["num_iteration"]
    assert panel.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"# {method}" in panel.code_text
    assert_code_reproduces(panel)


def test_gradient_inversion_stop_mid_run():
    panel = get_entry("Attack", "Model Inversion", "GS").create()
    original = panel._progress

    def progress(step, total):
        if step == 10:
            panel.stop()  # what the Stop button does, from the run's own thread here
        original(step, total)

    panel._progress = progress
    panel.live_interval_s = 0.0  # redraw at every snapshot
    with pytest.raises(StopRequested):
        panel.run()
    assert panel.status.value == "stopped"
    assert panel.result == {}
    assert panel.image.value[:8] == b"\x89PNG\r\n\x1a\n"  # the live view drew the dummy before Stop
    assert not panel.run_button.disabled


def test_gan_attack_panel():
    panel = get_entry("Attack", "Model Inversion", "GAN Attack").create()
    r = panel.run()
    assert not r["attacker_holds_target"]
    assert r["final_target_rate"] >= 0.9
    assert r["final_accuracy"] > 0.8
    assert_code_reproduces(panel)
