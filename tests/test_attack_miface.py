"""MI-FACE: each class's reconstruction is closer to that class's mean digit than to any other class's mean."""
import pytest
import torch

from aijack_lab.attack import MI_FACE
from aijack_lab.attack.inversion import MI_FACE as FromInversion
from aijack_lab.attack.inversion.miface import l2_prior, smooth_process
from aijack_lab.models import train_digits_model


@pytest.fixture(scope="module")
def model():
    return train_digits_model("mlp", epochs=10, seed=0)


@pytest.fixture(scope="module")
def class_means(digits):
    x, y = digits[0], digits[1]
    return torch.stack([x[y == c].mean(0) for c in range(10)])


def test_paper_import_paths_agree():
    assert MI_FACE is FromInversion


def test_every_class_reconstruction_is_nearest_to_its_class_mean(model, class_means):
    final_costs = []
    for c in range(10):
        x_result, log = MI_FACE(model, (1, 1, 8, 8), target_label=c, lam=0.1, num_itr=150).attack()
        mse = ((class_means - x_result[0]) ** 2).flatten(1).mean(1)
        assert mse.argmin().item() == c, (c, mse)
        assert log[-1] < log[0] - 0.1
        assert x_result.min() >= 0 and x_result.max() <= 1
        final_costs.append(log[-1])
    assert sum(final_costs) / 10 < 0.4  # the model is confident in most reconstructions


def test_paper_listing_and_priors(model, class_means, digits):
    input_shape = (1, 1, 8, 8)
    mi = MI_FACE(model, input_shape)
    x_result_1, log = mi.attack()
    assert x_result_1.shape == input_shape and min(log) < log[0] - 0.3
    aux = l2_prior(0.1, digits[0].mean(0, keepdim=True))
    x_aux, log_aux = MI_FACE(model, input_shape, target_label=3, num_itr=150, auxterm_func=aux,
                             process_func=smooth_process(0.05)).attack()
    mse = ((class_means - x_aux[0]) ** 2).flatten(1).mean(1)
    assert mse.argmin().item() == 3


def test_early_stopping(model):
    mi = MI_FACE(model, (1, 1, 8, 8), target_label=1, num_itr=500, gamma=0.5)
    _, log = mi.attack()
    assert len(log) < 500 and log[-1] <= 0.5


def test_bad_input(model):
    with pytest.raises(ValueError, match="target_label"):
        MI_FACE(model, (1, 1, 8, 8), target_label=10).attack()
    with pytest.raises(ValueError, match="target_label"):
        MI_FACE(model, (1, 1, 8, 8), target_label=-1)
    with pytest.raises(ValueError, match="input_shape"):
        MI_FACE(model, (64,))
    with pytest.raises(ValueError, match="input_shape"):
        MI_FACE(model, (1, 0, 8, 8))
    with pytest.raises(ValueError, match="lam"):
        MI_FACE(model, (1, 1, 8, 8), lam=0)
    with pytest.raises(TypeError, match="target_model"):
        MI_FACE(lambda x: x, (1, 1, 8, 8))
    with pytest.raises(ValueError, match="init_x"):
        MI_FACE(model, (1, 1, 8, 8)).attack(init_x=torch.zeros(1, 64))
