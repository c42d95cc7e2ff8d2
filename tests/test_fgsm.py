"""FGSM at eps 0.3 removes at least 40 points of accuracy; the perturbation respects its budget."""
import pytest
import torch
from torch import nn

from aijack_lab.attack import FGSMAttacker
from aijack_lab.attack.evasion import FGSMAttacker as FromEvasion
from aijack_lab.models import train_digits_model
from aijack_lab.utils import evaluate_accuracy


@pytest.fixture(scope="module")
def model():
    return train_digits_model("cnn", epochs=10, seed=0)


def test_paper_import_paths_agree():
    assert FGSMAttacker is FromEvasion


def test_fgsm_drops_accuracy_by_40_points(model, digits):
    _, _, x, y = digits
    clean = evaluate_accuracy(model, (x, y))
    x_adv = FGSMAttacker(model, nn.CrossEntropyLoss(), eps=0.3).attack((x, y))
    adv = evaluate_accuracy(model, (x_adv, y))
    assert clean >= 0.9
    assert clean - adv >= 0.40
    assert (x_adv - x).abs().max().item() <= 0.3 + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0


def test_fgsm_beats_random_sign_noise_of_the_same_size(model, digits):
    _, _, x, y = digits
    x_adv = FGSMAttacker(model, nn.CrossEntropyLoss(), eps=0.1).attack((x, y))
    gen = torch.Generator().manual_seed(0)
    noise = (torch.randint(0, 2, x.shape, generator=gen) * 2 - 1).float() * 0.1
    x_rand = (x + noise).clamp(0, 1)
    assert evaluate_accuracy(model, (x_adv, y)) < evaluate_accuracy(model, (x_rand, y)) - 0.2


def test_eps_zero_is_identity_and_model_mode_is_restored(model, digits):
    _, _, x, y = digits
    model.train()
    x_adv = FGSMAttacker(model, nn.CrossEntropyLoss(), eps=0.0).attack((x[:5], y[:5]))
    assert torch.equal(x_adv, x[:5])
    assert model.training
    model.eval()


def test_bad_input(model):
    crit = nn.CrossEntropyLoss()
    with pytest.raises(ValueError, match="eps"):
        FGSMAttacker(model, crit, eps=-0.1)
    with pytest.raises(ValueError, match="eps"):
        FGSMAttacker(model, crit, eps=float("nan"))
    with pytest.raises(ValueError, match="output_lower_bound"):
        FGSMAttacker(model, crit, output_lower_bound=1.0, output_upper_bound=0.0)
    with pytest.raises(TypeError, match="target_model"):
        FGSMAttacker(lambda x: x, crit)
    attacker = FGSMAttacker(model, crit)
    with pytest.raises(ValueError, match="rows"):
        attacker.attack((torch.zeros(3, 1, 8, 8), torch.zeros(2, dtype=torch.long)))
    with pytest.raises(TypeError, match="pair"):
        attacker.attack(torch.zeros(3, 1, 8, 8))
