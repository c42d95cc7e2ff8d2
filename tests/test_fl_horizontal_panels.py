"""The issue-5 panels: registered under FL/Horizontal, runs show the protocol's effect, Code views reproduce."""
import math

import pytest

from aijack_lab.widgets.registry import get_entry
from aijack_lab.widgets.testing import assert_code_reproduces


def _panel(algorithm, **values):
    panel = get_entry("FL", "Horizontal", algorithm).create()
    return panel.set(**values)


def test_registered_and_cheap_to_build():
    for name in ("FedProx", "FedKD", "MOON", "FedEXP", "FedMD", "FedGEMS", "DSFL"):
        panel = get_entry("FL", "Horizontal", name).create()
        assert panel.result == {} and name.lower() in panel.title.lower() and "run_" in panel.code_text


def test_fedprox_panel():
    p = _panel("FedProx", num_communication=2, num_clients=3, model="mlp")
    r = p.run()
    assert r["mean_client_drift"] < r["fedavg_mean_client_drift"]
    assert r["final_accuracy"] > 0.3
    assert_code_reproduces(p)


def test_fedkd_panel():
    p = _panel("FedKD", num_communication=2)
    r = p.run()
    assert r["final_accuracy"] > 0.5 and all(v > 0 for v in r["distillation_loss_per_round"])
    assert_code_reproduces(p)


def test_moon_panel():
    p = _panel("MOON", num_communication=2)
    r = p.run()
    assert r["contrastive_loss_per_round"][0] == pytest.approx(math.log(2), abs=1e-5)
    assert math.isfinite(r["contrastive_loss_per_round"][1]) and r["final_accuracy"] > 0.5
    assert_code_reproduces(p)


def test_fedexp_panel():
    p = _panel("FedEXP", num_communication=3)
    r = p.run()
    assert min(r["eta_per_round"]) >= 1.0
    assert r["rounds_to_fedavg_final"] <= r["fedavg_rounds_to_final"]
    assert_code_reproduces(p)


def test_fedmd_panel():
    p = _panel("FedMD", num_communication=2)
    r = p.run()
    assert r["bytes_uploaded_per_round"] == 3 * 300 * 10 * 4  # logits only
    assert r["mean_gain"] > 0
    assert_code_reproduces(p)


def test_fedgems_panel():
    p = _panel("FedGEMS", num_communication=2)
    r = p.run()
    assert r["server_accuracy"] > r["mean_client_accuracy"]
    assert_code_reproduces(p)


def test_dsfl_panel():
    p = _panel("DSFL", num_communication=2)
    r = p.run()
    assert all(a < b for a, b in zip(r["entropy_after_per_round"], r["entropy_before_per_round"]))
    assert r["final_accuracy"] > 0.3
    assert_code_reproduces(p)


def test_compare_panel():
    from aijack_lab.widgets.fl_compare import FLComparePanel

    p = FLComparePanel().set(protocols=("FedAVG", "FedEXP", "DSFL"), num_communication=2, num_clients=3)
    r = p.run()
    assert set(r["final_accuracy"]) == {"FedAVG", "FedEXP", "DSFL"}
    assert all(len(v) == 2 for v in r["accuracy_per_round"].values())
    assert r["bytes_uploaded_per_round"]["DSFL"] < r["bytes_uploaded_per_round"]["FedAVG"]
    assert_code_reproduces(p)
    with pytest.raises(ValueError, match="protocols"):
        p.set(protocols=())
    with pytest.raises(ValueError, match="protocols"):
        p.set(protocols=("FedFoo",))
    with pytest.raises(ValueError, match="alpha"):
        p.set(alpha=0.0)
