"""The Paillier panels driven headless: set controls, run, read panel.result; the Code view reproduces it."""
import pytest

from aijack_lab.widgets import PaillierPanel
from aijack_lab.widgets.defense_paillier import PaillierFedAVGPanel
from aijack_lab.widgets.registry import get_entry
from aijack_lab.widgets.testing import assert_code_reproduces


def test_paillier_panel_decrypts_the_homomorphic_ops_and_code_reproduces():
    assert get_entry("Defense", "Homomorphic Encryption", "Paillier").panel_cls is PaillierPanel
    panel = PaillierPanel()
    panel.set(bits=512, a=-3.5, b=2.25, k=-0.5, vector_length=8)
    r = panel.run()
    assert r["n_bits"] == 512 and r["ciphertext_bytes"] == 128 and r["expansion_vs_float64"] == 16
    assert r["dec_a"] == pytest.approx(-3.5, abs=1e-9)
    assert r["dec_a_plus_b"] == pytest.approx(-1.25, abs=1e-9)
    assert r["dec_a_minus_b"] == pytest.approx(-5.75, abs=1e-9)
    assert r["dec_a_times_k"] == pytest.approx(1.75, abs=1e-9)
    assert r["dec_neg_a"] == pytest.approx(3.5, abs=1e-9)
    assert r["max_abs_error"] < 1e-6 and r["vector_max_abs_error"] < 1e-6
    assert panel.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert "pk.encrypt(-3.5)" in panel.code_text
    assert_code_reproduces(panel)


def test_paillier_fedavg_panel_matches_plaintext_and_costs_bytes():
    panel = PaillierFedAVGPanel(num_communication=2)
    r = panel.run()
    assert r["accuracy_encrypted"] == pytest.approx(r["accuracy_plain"], abs=2e-3)
    assert r["max_parameter_difference"] < 1e-4
    assert r["accuracy_plain"][-1] > r["accuracy_plain"][0] - 1e-9
    # 512-bit key: each ciphertext takes 128 bytes against 4 bytes per float32 entry
    assert r["bytes_per_round_encrypted"] == 32 * r["bytes_per_round_plain"]
    assert len(r["seconds_per_round_encrypted"]) == 2
    assert_code_reproduces(panel)


def test_paillier_panels_packing_option():
    panel = PaillierPanel()
    panel.set(bits=512, a=-3.5, b=2.25, k=-0.5, vector_length=8, packing=True)
    r = panel.run()
    assert r["vector_ciphertexts"] == 3 and r["values_per_ciphertext"] == pytest.approx(8 / 3)  # 3 slots at 512 bits
    assert r["vector_max_abs_error"] < 1e-6
    assert "pack=True" in panel.code_text
    assert_code_reproduces(panel)
    fed = PaillierFedAVGPanel(num_communication=1, packing=True)
    r = fed.run()
    assert r["max_parameter_difference"] < 1e-4
    assert r["accuracy_encrypted"] == pytest.approx(r["accuracy_plain"], abs=2e-3)
    # 3 values per 128-byte ciphertext: about a tenth of the unpacked upload (32x the plaintext)
    assert r["bytes_per_round_encrypted"] < 12 * r["bytes_per_round_plain"]
    assert "packing=True" in fed.code_text
    assert_code_reproduces(fed)
