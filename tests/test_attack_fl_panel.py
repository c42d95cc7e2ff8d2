"""FLAttackPanel (issue 10): one gallery entry per malicious-client attack, Code view reproduces the run."""
import pytest

from aijack_lab.widgets.registry import get_entry
from aijack_lab.widgets.testing import assert_code_reproduces

ENTRIES = [
    (("Attack", "Poisoning", "History Attack"), "history"),
    (("Attack", "Poisoning", "Label Flip"), "label_flip"),
    (("Attack", "Poisoning", "MAPF"), "mapf"),
    (("Attack", "Backdoor", "DBA"), "dba"),
    (("Attack", "Backdoor", "Model Replacement"), "model_replacement"),
    (("Attack", "Free-Rider", "Delta-Weight"), "free_rider"),
]


@pytest.mark.parametrize("key, attack", ENTRIES, ids=[a for _, a in ENTRIES])
def test_each_attack_has_a_preset_entry_and_its_code_view_reproduces(key, attack):
    entry = get_entry(*key)
    assert entry.panel_cls.__name__ == "FLAttackPanel"
    panel = entry.create()
    assert panel.values["attack"] == attack
    assert "attach(FedAVGClient)" in panel.code_text
    panel.set(num_communication=2)
    result = panel.run()
    assert len(result["accuracy_per_round"]) == len(result["clean_accuracy_per_round"]) == 2
    assert panel.image.value  # a figure was drawn
    assert_code_reproduces(panel)


def test_model_replacement_default_run_plants_the_backdoor():
    panel = get_entry("Attack", "Backdoor", "Model Replacement").create()
    result = panel.run()
    assert result["backdoor_success"] >= 0.8
    assert result["clean_backdoor_success"] <= 0.05
    assert result["final_accuracy"] >= 0.8


def test_more_malicious_clients_than_clients_is_a_clear_error():
    panel = get_entry("Attack", "Poisoning", "MAPF").create()
    panel.set(num_clients=3, num_malicious=4)
    with pytest.raises(ValueError, match="num_malicious"):
        panel.run()
    assert isinstance(panel.error, ValueError)
