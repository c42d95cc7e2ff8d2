"""PRVAccountant: Opacus PRV references, exact q = 1 (Gaussian/GDP closed form), RDP comparison,
monotonicity, heterogeneous steps, bad input."""
import math
import time

import pytest

from aijack_lab.defense import GeneralMomentAccountant
from aijack_lab.defense.dp.gdp import delta_from_mu, epsilon_from_mu
from aijack_lab.defense.dp.prv import PRVAccountant

# Opacus 1.6.0, opacus.accountants.PRVAccountant with history [(σ, q, steps)] and its defaults
# (eps_error=0.01, delta_error=δ/1000; it returns the upper estimate), computed once on this machine
# (Opacus is a benchmark-only dependency). Columns: sigma, q, steps, delta, epsilon.
OPACUS_1_6_0_PRV = [
    (1.5, 0.04, 2250, 1e-05, 6.7791320762541165),
    (1.0, 0.01, 1000, 1e-05, 1.838371637017295),
    (0.8, 0.02, 500, 1e-06, 5.45063712135887),
    (2.0, 0.1, 100, 1e-05, 2.347555316412645),
    (1.1, 0.004, 10000, 1e-05, 1.8510798571674283),
    (3.0, 0.5, 50, 0.001, 4.044754626279207),
    (1.0, 1.0, 10, 1e-05, 17.86730414930238),
    (0.7, 0.05, 300, 1e-05, 12.755759090613711),
]
# Same, history [(1.5, 0.04, 1000), (1.0, 0.02, 500)], δ = 1e-5.
OPACUS_1_6_0_PRV_HETERO = 5.196118124301399


def prv(sigma=1.5, q=0.04, steps=2250, **kw):
    acc = PRVAccountant(**kw)
    acc.add_step_info({"sigma": sigma}, q, steps)
    return acc


@pytest.mark.parametrize("sigma,q,steps,delta,ref", OPACUS_1_6_0_PRV)
def test_matches_opacus_prv(sigma, q, steps, delta, ref):
    lo, est, up = prv(sigma, q, steps).get_epsilon_bounds(delta)
    assert lo <= est <= up and up - lo <= 4 * 0.01 + 1e-9
    # Opacus's value is the same kind of upper estimate (ε̂(δ - δ_err) + ε_err) from its own grid,
    # so the two agree far inside the error bound ε_err = 0.01
    assert up == pytest.approx(ref, abs=1e-3)
    assert lo - 1e-3 <= ref <= up + 1e-3


def test_reference_point_and_speed():
    acc = prv()
    start = time.perf_counter()
    eps = acc.get_epsilon(1e-5)
    elapsed = time.perf_counter() - start
    print(f"\nPRV eps(sigma=1.5, q=0.04, 2250 steps, delta=1e-5) = {eps:.5f} in {elapsed * 1e3:.0f} ms, grid {acc.last_grid}")
    assert eps == pytest.approx(6.779, abs=1e-3)


def test_heterogeneous_matches_opacus_and_is_order_free():
    a = PRVAccountant()
    a.add_step_info({"sigma": 1.5}, 0.04, 1000)
    a.add_step_info({"sigma": 1.0}, 0.02, 500)
    b = PRVAccountant()
    b.add_step_info({"sigma": 1.0}, 0.02, 200)
    b.add_step_info({"sigma": 1.5}, 0.04, 1000)
    b.add_step_info({"sigma": 1.0}, 0.02, 300)
    assert a.get_epsilon(1e-5) == pytest.approx(OPACUS_1_6_0_PRV_HETERO, abs=1e-3)
    assert b.get_epsilon(1e-5) == pytest.approx(a.get_epsilon(1e-5), abs=1e-9)
    # the composition costs more than each of its parts, less than 1500 steps of the worse (σ, q) of both
    mixed = a.get_epsilon(1e-5)
    assert prv(1.0, 0.04, 1500).get_epsilon(1e-5) > mixed > max(prv(1.5, 0.04, 1000).get_epsilon(1e-5),
                                                                prv(1.0, 0.02, 500).get_epsilon(1e-5))


@pytest.mark.parametrize("sigma,steps,delta", [(1.0, 10, 1e-5), (2.0, 100, 1e-5), (0.7, 3, 1e-3), (5.0, 1000, 1e-6)])
def test_q1_matches_exact_gaussian(sigma, steps, delta):
    # q = 1: T Gaussian steps are exactly one Gaussian mechanism with μ = sqrt(T)/σ (μ-GDP), whose
    # δ(ε) = Φ(-ε/μ + μ/2) - e^ε Φ(-ε/μ - μ/2) is exact, not an approximation
    mu = math.sqrt(steps) / sigma
    exact = epsilon_from_mu(mu, delta)
    assert delta_from_mu(exact, mu) == pytest.approx(delta, rel=1e-9)
    lo, est, up = prv(sigma, 1.0, steps).get_epsilon_bounds(delta)
    assert lo <= exact <= up
    assert est == pytest.approx(exact, abs=1e-3)
    # the upper estimate is ε̂(δ - δ_err) + ε_err: no looser than the exact ε there plus ε_err
    assert up <= epsilon_from_mu(mu, delta - delta / 1000) + 0.01 + 1e-3
    # and δ at ε: the bound holds and is tight to δ_err + the ε_err shift
    acc = prv(sigma, 1.0, steps)
    d_up = acc.get_delta(exact, delta_error=delta / 1000)
    assert delta <= d_up <= delta_from_mu(exact - 0.02, mu) + 2 * delta / 1000


def test_tighter_than_rdp_and_looser_than_nothing():
    for sigma, q, steps in [(1.5, 0.04, 2250), (0.8, 0.01, 1000), (4.0, 0.2, 300), (1.0, 1.0, 50)]:
        rdp = GeneralMomentAccountant()
        rdp.add_step_info({"sigma": sigma}, q, steps)
        e_rdp = rdp.get_epsilon(1e-5)
        e_prv = prv(sigma, q, steps).get_epsilon(1e-5)
        assert 0 < e_prv < e_rdp


def test_monotone_in_steps_and_sigma():
    # steps far enough apart that the true ε moves by much more than 2 ε_err
    by_steps = [prv(1.2, 0.02, n).get_epsilon(1e-5) for n in (50, 200, 800, 3200)]
    assert all(a < b for a, b in zip(by_steps, by_steps[1:])), by_steps
    by_sigma = [prv(s, 0.05, 500).get_epsilon(1e-5) for s in (0.8, 1.0, 1.5, 3.0)]
    assert all(a > b for a, b in zip(by_sigma, by_sigma[1:])), by_sigma
    by_delta = [prv(1.2, 0.02, 500).get_epsilon(d) for d in (1e-7, 1e-5, 1e-3)]
    assert all(a > b for a, b in zip(by_delta, by_delta[1:])), by_delta


def test_eps_error_sets_the_width_of_the_bounds():
    wide = prv().get_epsilon_bounds(1e-5, eps_error=0.1)
    narrow = prv().get_epsilon_bounds(1e-5, eps_error=0.01)
    assert wide[2] - wide[0] > narrow[2] - narrow[0]
    assert wide[0] <= narrow[1] <= wide[2]  # the finer estimate lies inside the coarse bounds
    assert narrow[0] <= wide[1] <= narrow[2] + 0.01


def test_add_or_remove_is_the_max_of_both():
    both = prv(neighboring="add_or_remove").get_epsilon(1e-5)
    remove = prv(neighboring="remove").get_epsilon(1e-5)
    add = prv(neighboring="add").get_epsilon(1e-5)
    assert both == max(remove, add)
    assert add < remove  # for Poisson-subsampled Gaussian DP-SGD the removal pair dominates here


def test_noise_multiplier_search_is_conservative_and_tighter_than_rdp():
    q, steps, delta = 0.04, 1000, 1e-5
    acc = PRVAccountant()
    acc.add_step_info({"sigma": 3.0}, 0.5, 7)  # recorded steps must not affect (or be changed by) the search
    rdp = GeneralMomentAccountant()
    for target in (1.0, 4.0):
        sigma = acc.get_noise_multiplier("sigma", target, delta, q, None, noise_multiplier_precision=0.01, num_steps=steps)
        assert prv(sigma, q, steps).get_epsilon(delta) <= target
        assert prv(sigma - 0.01, q, steps).get_epsilon(delta) > target  # within the precision of the smallest
        # PRV is tighter, so it needs less noise than RDP for the same target
        assert sigma < rdp.get_noise_multiplier("sigma", target, delta, q, None, num_steps=steps)
    assert acc.steps_info == [({"sigma": 3.0}, 0.5, 7)]
    with pytest.raises(ValueError, match="noise_multiplier_key"):
        acc.get_noise_multiplier("b", 1.0, delta, q, 1)


def test_runs_of_equal_steps_are_merged():
    acc = PRVAccountant()
    for _ in range(300):
        acc.add_step_info({"sigma": 1.2}, 0.02, 1)  # DP-SGD: one step per lot
    assert acc.steps_info == [({"sigma": 1.2}, 0.02, 300)] and acc.noise_type == "Gaussian"
    assert acc.get_epsilon(1e-5) == prv(1.2, 0.02, 300).get_epsilon(1e-5)


def test_no_steps_and_reset():
    acc = PRVAccountant()
    assert acc.get_epsilon(1e-5) == 0.0
    acc.add_step_info({"sigma": 1.0}, 0.1, 0)
    assert acc.get_epsilon(1e-5) == 0.0
    acc.add_step_info({"sigma": 1.0}, 0.1, 100)
    assert acc.get_epsilon(1e-5) > 0
    acc.reset_step_info()
    assert acc.num_steps == 0 and acc.get_epsilon(1e-5) == 0.0


@pytest.mark.parametrize("call,name", [
    (lambda a: a.add_step_info({"sigma": 0.0}, 0.1, 10), "sigma"),
    (lambda a: a.add_step_info({"sigma": -1.0}, 0.1, 10), "sigma"),
    (lambda a: a.add_step_info({"noise": 1.0}, 0.1, 10), "noise_params"),
    (lambda a: a.add_step_info({"sigma": 1.0}, 0.0, 10), "sampling_rate"),
    (lambda a: a.add_step_info({"sigma": 1.0}, 1.5, 10), "sampling_rate"),
    (lambda a: a.add_step_info({"sigma": 1.0}, 0.1, -1), "num_steps"),
    (lambda a: a.get_epsilon(0.0), "delta"),
    (lambda a: a.get_epsilon(1.0), "delta"),
    (lambda a: a.get_epsilon(1e-5, eps_error=0.0), "eps_error"),
    (lambda a: a.get_epsilon(1e-5, eps_error=-0.1), "eps_error"),
    (lambda a: a.get_epsilon(1e-5, delta_error=1e-5), "delta_error"),
    (lambda a: PRVAccountant(eps_error=0), "eps_error"),
    (lambda a: PRVAccountant(neighboring="both"), "neighboring"),
])
def test_bad_input(call, name):
    acc = PRVAccountant()
    acc.add_step_info({"sigma": 1.0}, 0.1, 10)
    with pytest.raises(ValueError, match=name):
        call(acc)


def test_tiny_sigma_raises_instead_of_a_huge_grid():
    with pytest.raises(ValueError, match="sigma|max_points"):
        prv(0.5, 0.5, 1000).get_epsilon(1e-5)


def test_dpsgd_counts_its_lots_into_a_prv_accountant(digits):
    import torch
    from torch import nn, optim
    from torch.utils.data import TensorDataset

    from aijack_lab.defense import DPSGDManager
    from aijack_lab.models import make_digits_model

    x, y, _, _ = digits
    model = make_digits_model("mlp", seed=0)
    accountant = PRVAccountant()
    manager = DPSGDManager(accountant, optim.SGD, l2_norm_clip=1.0, dataset=TensorDataset(x, y), lot_size=64,
                           iterations=20, seed=0)
    opt_cls, lot_loader, batch_loader = manager.privatize(noise_multiplier=1.2)
    opt = opt_cls(model.parameters(), lr=0.5)
    for x_lot, y_lot in lot_loader(opt):
        for xb, yb in batch_loader(TensorDataset(x_lot, y_lot)):
            opt.zero_grad()
            nn.CrossEntropyLoss()(model(xb), yb).backward()
            opt.step()
    q = 64 / len(x)
    reference = prv(sigma=1.2, q=q, steps=20).get_epsilon(1e-5)
    assert accountant.get_epsilon(1e-5) == pytest.approx(reference, rel=1e-12)
    rdp = GeneralMomentAccountant()
    rdp.add_step_info({"sigma": 1.2}, q, 20)
    assert accountant.get_epsilon(1e-5) < rdp.get_epsilon(1e-5)
    with pytest.raises(TypeError, match="PRVAccountant"):
        DPSGDManager(object(), optim.SGD, dataset=TensorDataset(x, y))
