"""PixelDP: calibrated noise, Clopper-Pearson bounds, certified accuracy per radius, certificates that hold under FGSM."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from aijack_lab.attack import FGSMAttacker
from aijack_lab.defense import PixelDP
from aijack_lab.defense.pixeldp import certified_accuracy, clopper_pearson_bounds, gaussian_radius, laplace_radius
from aijack_lab.models import make_digits_model
from aijack_lab.models.training import train_classifier

RADII = [0.0, 0.05, 0.1, 0.2]


@pytest.fixture(scope="module")
def trained(digits):
    x_train, y_train, x_test, y_test = digits
    pdp = PixelDP(make_digits_model("mlp", seed=0), 10, L=0.1, eps=1.0, delta=1e-5, mode="gaussian",
                  n_population_mc=300, batch_size_mc=100, seed=0)
    train_classifier(pdp, x_train, y_train, epochs=12, lr=3e-3, batch_size=128, seed=0)
    pdp.eval()
    proba, counts = pdp(x_test)
    return pdp, proba, counts, pdp.certify(counts), x_test, y_test


def test_certified_accuracy_per_radius_on_digits(trained):
    pdp, proba, counts, cert, x_test, y_test = trained
    assert proba.shape == counts.shape == (len(x_test), 10)
    assert torch.allclose(counts.sum(1), torch.full((len(x_test),), 300.0))
    assert torch.allclose(proba.sum(1), torch.ones(len(x_test)), atol=1e-4)
    curve = certified_accuracy(cert, y_test, RADII)
    assert curve[0] >= 0.85  # noisy prediction still accurate
    assert all(a >= b for a, b in zip(curve, curve[1:]))  # certified accuracy falls with the radius
    assert curve[2] >= 0.4  # a good part certified at L2 radius 0.1 (one pixel moved by 0.1)
    assert cert.certified.mean() >= 0.8
    assert (cert.radius[~cert.certified] == 0).all()
    # the certificate's ceiling for 300 draws, p_lower <= 0.05**(1/300): nothing beyond it
    assert cert.radius.max() < 0.3


def test_fgsm_inside_the_certified_radius_never_changes_the_prediction(trained):
    pdp, _, _, cert, x_test, y_test = trained
    d = x_test[0].numel()
    criterion = nn.CrossEntropyLoss()
    checked = 0
    for r in (0.05, 0.1):
        sel = torch.from_numpy(cert.radius >= r)
        eps_inf = 0.99 * r / math.sqrt(d)  # the FGSM step's L2 norm is eps * sqrt(d) < r
        x_adv = FGSMAttacker(pdp.model, criterion, eps=eps_inf).attack((x_test[sel], y_test[sel]))
        assert ((x_adv - x_test[sel]).flatten(1).norm(dim=1) < r).all()
        _, counts_adv = pdp(x_adv)
        same = counts_adv.argmax(1).numpy() == cert.prediction[sel.numpy()]
        assert same.mean() >= 0.99, (r, same.mean())
        checked += int(sel.sum())
    assert checked > 300
    # not vacuous: far outside the radius the same attack does flip predictions
    x_big = FGSMAttacker(pdp.model, criterion, eps=0.3).attack((x_test, y_test))
    _, counts_big = pdp(x_big)
    assert (counts_big.argmax(1).numpy() != cert.prediction).mean() > 0.2


def test_clopper_pearson_matches_scipy_binomtest():
    from scipy.stats import binomtest

    for k, n in [(0, 50), (7, 50), (50, 50), (290, 300)]:
        lo, hi = clopper_pearson_bounds(np.array([k]), np.array([n]), 0.05)
        ci = binomtest(k, n).proportion_ci(confidence_level=0.9, method="exact")
        assert lo[0] == pytest.approx(ci.low, abs=1e-9)
        assert hi[0] == pytest.approx(ci.high, abs=1e-9)


def test_radius_formulas():
    # Laplace: L ln(lb/ub) / (2 eps), 0 when the bounds overlap
    assert laplace_radius(0.9, 0.05, 0.1, 1.0)[()] == pytest.approx(0.1 * math.log(18) / 2)
    assert laplace_radius(0.4, 0.5, 0.1, 1.0)[()] == 0.0
    # Gaussian: at the returned radius some (eps', delta') on the grid satisfies the stability bound
    L, eps, delta = 0.1, 1.0, 1e-5
    for lb, ub in [(0.95, 0.02), (0.7, 0.2), (0.99, 0.001)]:
        r = gaussian_radius(lb, ub, L, eps, delta)[()]
        assert r > 0
        g = lambda d: math.sqrt(2 * math.log(1.25 / d))  # noqa: E731
        ok = False
        for dp in np.geomspace(1e-8, 0.3, 60):
            e = r * eps * g(dp) / (L * g(delta))
            ok |= e <= 1 + 1e-9 and lb >= math.exp(2 * e) * ub + (1 + math.exp(e)) * dp - 1e-9
        assert ok
    assert gaussian_radius(0.45, 0.5, L, eps, delta)[()] == 0.0
    assert 0 < gaussian_radius(0.5, 0.45, L, eps, delta)[()] < 0.01  # barely separated: tiny radius
    # a wider margin certifies a larger radius
    assert gaussian_radius(0.99, 0.001, L, eps, delta)[()] > gaussian_radius(0.7, 0.2, L, eps, delta)[()]


def test_noise_is_calibrated():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    lap = PixelDP(model, 2, L=0.2, eps=0.5, mode="laplace", seed=0)
    assert lap.sigma == pytest.approx(0.2 / 0.5)
    z = lap.sample_noise(torch.zeros(200_000))
    assert z.std().item() == pytest.approx(math.sqrt(2) * 0.4, rel=0.02)  # Laplace(b): std = sqrt(2) b
    gau = PixelDP(model, 2, L=0.2, eps=0.5, delta=1e-5, mode="gaussian", seed=0)
    assert gau.sigma == pytest.approx(math.sqrt(2 * math.log(1.25 / 1e-5)) * 0.2 / 0.5)
    assert gau.sample_noise(torch.zeros(200_000)).std().item() == pytest.approx(gau.sigma, rel=0.02)


@pytest.mark.parametrize("mode", ["laplace", "gaussian"])
@pytest.mark.parametrize("layer", [nn.Linear(64, 16), nn.Conv2d(1, 4, 3, padding=1, stride=2)])
def test_first_layer_sensitivity_bounds_the_layer(mode, layer):
    torch.manual_seed(0)
    model = nn.Sequential(layer, nn.Flatten(), nn.LazyLinear(10)) if isinstance(layer, nn.Conv2d) else nn.Sequential(layer, nn.ReLU(), nn.Linear(16, 10))
    pdp = PixelDP(model, 10, mode=mode, noise_layer="first_layer", seed=0)
    sens = pdp.first_layer_sensitivity()
    p = 1 if mode == "laplace" else 2
    shape = (200, 64) if isinstance(layer, nn.Linear) else (200, 1, 8, 8)
    d = torch.randn(shape)
    with torch.no_grad():
        out = layer(d) - layer(torch.zeros(shape))
    ratio = out.flatten(1).norm(p=p, dim=1) / d.flatten(1).norm(p=p, dim=1)
    assert (ratio <= sens + 1e-5).all()
    if isinstance(layer, nn.Linear) and mode == "laplace":  # exact: a one-hot change in the worst column
        j = layer.weight.abs().sum(0).argmax()
        assert layer.weight[:, j].abs().sum().item() == pytest.approx(sens)
    # the noise goes after the first layer, and only inside PixelDP's own forward
    pdp.train()
    x = torch.zeros((3,) + shape[1:])
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
        assert not torch.equal(pdp(x), model(x))


def test_seeded_runs_repeat():
    model = make_digits_model("mlp", seed=0)
    x = torch.rand(5, 1, 8, 8)
    a = PixelDP(model, 10, n_population_mc=50, seed=3).eval()(x)[1]
    b = PixelDP(model, 10, n_population_mc=50, seed=3).eval()(x)[1]
    assert torch.equal(a, b)


def test_paper_listings_run():
    x_train = torch.rand(8, 1, 8, 8)
    num_classes = 10

    def NN():
        return make_digits_model("mlp", seed=0)

    data = x_train[:2]
    # Code 2
    pdp = PixelDP(NN(), num_classes)
    pdp.eval()
    pred_proba, counts = pdp(data)
    cert = pdp.certify(counts)
    assert cert.radius.shape == (2,) and counts.sum().item() == 2 * 1000
    # Code S-6
    pdp = PixelDP(NN(), num_classes, eps=0.3, delta=1e-5)
    pdp.eval()
    pred_proba, counts = pdp(data)
    single = pdp.certify(counts[0])
    assert isinstance(single.radius, float) and isinstance(single.certified, bool) and single.prediction == int(counts[0].argmax())


def test_bad_input():
    model = make_digits_model("mlp", seed=0)
    with pytest.raises(ValueError, match="eps"):
        PixelDP(model, 10, eps=0)
    with pytest.raises(ValueError, match="eps"):
        PixelDP(model, 10, eps=-1.0)
    with pytest.raises(ValueError, match="delta"):
        PixelDP(model, 10, delta=0.0)
    with pytest.raises(ValueError, match="delta"):
        PixelDP(model, 10, delta=1.0)
    with pytest.raises(ValueError, match="L"):
        PixelDP(model, 10, L=0.0)
    with pytest.raises(ValueError, match="eta"):
        PixelDP(model, 10, eta=1.5)
    with pytest.raises(ValueError, match="mode"):
        PixelDP(model, 10, mode="uniform")
    with pytest.raises(ValueError, match="eps <= 1"):
        PixelDP(model, 10, eps=2.0, mode="gaussian")
    with pytest.raises(ValueError, match="num_classes"):
        PixelDP(model, 1)
    with pytest.raises(TypeError, match="model"):
        PixelDP(lambda x: x, 10)
    with pytest.raises(TypeError, match="n_population_mc"):
        PixelDP(model, 10, n_population_mc=2.5)
    with pytest.raises(ValueError, match="noise_layer"):
        PixelDP(model, 10, noise_layer="middle")
    with pytest.raises(ValueError, match="first layer.*BatchNorm1d.*cannot take the PixelDP noise layer"):
        PixelDP(nn.Sequential(nn.BatchNorm1d(64), nn.Linear(64, 10)), 10, noise_layer="first_layer")
    with pytest.raises(ValueError, match="first layer.*Embedding"):
        PixelDP(nn.Sequential(nn.Embedding(100, 8), nn.Flatten(), nn.Linear(8, 10)), 10, noise_layer="first_layer")
    with pytest.raises(ValueError, match="no layer with parameters"):
        PixelDP(nn.Sequential(nn.Flatten()), 10, noise_layer="first_layer")
    with pytest.raises(ValueError, match="sensitivity"):
        PixelDP(model, 10, noise_layer="first_layer", sensitivity=2.0)
    pdp = PixelDP(model, 10, n_population_mc=10).eval()
    with pytest.raises(ValueError, match="counts must have shape"):
        pdp.certify(torch.ones(3, 4))
    with pytest.raises(ValueError, match="non-negative"):
        pdp.certify(-torch.ones(10))
    with pytest.raises(ValueError, match="at least one draw"):
        pdp.certify(torch.zeros(10))
    with pytest.raises(ValueError, match="num_classes=5"):
        PixelDP(model, 5, n_population_mc=10).eval()(torch.rand(2, 1, 8, 8))
    with pytest.raises(TypeError, match="tensor"):
        pdp(np.zeros((2, 64)))
    with pytest.raises(TypeError, match="floating-point"):
        pdp(torch.zeros(2, 64, dtype=torch.long))


def test_pixeldp_panel_runs_and_code_view_reproduces():
    from aijack_lab.widgets import PixelDPPanel
    from aijack_lab.widgets.testing import assert_code_reproduces

    panel = PixelDPPanel(epochs=6, n_population_mc=100)
    r = panel.run()
    assert r["pixeldp_accuracy"] > 0.75 and r["clean_accuracy"] > 0.85
    assert r["certified_accuracy"][0] == pytest.approx(r["pixeldp_accuracy"])
    assert all(a >= b for a, b in zip(r["certified_accuracy"], r["certified_accuracy"][1:]))
    assert r["certified_fraction"] > 0.5
    assert r["fgsm_plain_accuracy"][-1] < r["fgsm_plain_accuracy"][0] - 0.3  # FGSM hurts the plain model
    assert panel.image.value
    assert_code_reproduces(panel)
