"""The FGSM and FedAVG panels, driven headless as a user would: set controls, Run, read panel.result."""
import pytest

from aijack_lab.utils.progress import StopRequested
from aijack_lab.widgets import FedAVGPanel, FGSMPanel
from aijack_lab.widgets.testing import assert_code_reproduces


def test_fgsm_panel_result_and_code_view():
    panel = FGSMPanel()
    panel.set(eps=0.3)
    panel.run_button.click()  # what a user does: runs in a thread
    panel.wait(timeout=120)
    assert panel.error is None, panel.status.value
    r = panel.result
    assert r["clean_accuracy"] - r["adversarial_accuracy"] >= 0.40
    assert r["accuracy_curve"][0] == pytest.approx(r["clean_accuracy"])
    assert r["accuracy_curve"] == sorted(r["accuracy_curve"], reverse=True)  # more ε, less accuracy
    assert panel.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert "adversarial_accuracy" in panel.result_html.value
    assert "FGSMAttacker(model, criterion, eps=0.3)" in panel.code_text
    assert_code_reproduces(panel)


def test_fedavg_panel_iid_and_non_iid():
    panel = FedAVGPanel(num_communication=5)
    r = panel.run()
    assert r["final_accuracy"] >= 0.9
    assert len(r["accuracy_per_round"]) == 5
    assert_code_reproduces(panel)
    panel.set(partition="dirichlet", alpha=0.05, num_communication=3)
    skewed = panel.run()
    assert skewed["final_accuracy"] < r["final_accuracy"]
    assert_code_reproduces(panel)


def test_code_view_follows_the_controls():
    panel = FGSMPanel()
    panel.set(eps=0.12, model="mlp")
    import html

    shown = html.unescape(panel.code_html.value)
    assert "eps=0.12" in shown and "'mlp'" in shown


def test_stop_interrupts_a_run():
    panel = FedAVGPanel(num_communication=30)
    panel.stop()  # a Stop before the first progress report ends the run at round 1
    original = panel._progress

    def progress(step, total):
        panel._stop.set()
        original(step, total)

    panel._progress = progress
    with pytest.raises(StopRequested):
        panel.run()
    assert panel.status.value == "stopped"
    assert not panel.run_button.disabled


def test_bad_control_values_are_rejected():
    panel = FGSMPanel()
    with pytest.raises(ValueError, match="eps"):
        panel.set(eps=5.0)
    with pytest.raises(ValueError, match="no parameter"):
        panel.set(epsilon=0.1)
    with pytest.raises(ValueError, match="model"):
        panel.set(model="resnet")
