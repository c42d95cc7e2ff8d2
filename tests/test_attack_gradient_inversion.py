"""Gradient inversion (DLG, iDLG, GS, CPL, GradInversion), the malicious FedAVG server, and bad input."""
import pytest
import torch
from torch import nn

from aijack_lab.attack import GradientInversion_Attack, GradientInversionAttackServerManager
from aijack_lab.attack.inversion.gradientinversion import estimate_labels
from aijack_lab.attack.inversion.metrics import psnr, reconstruction_mse
from aijack_lab.collaborative import FedAVGAPI, FedAVGClient, FedAVGServer
from aijack_lab.models import train_classifier
from aijack_lab.models.lenet import make_lenet_digits

CRITERION = nn.CrossEntropyLoss()


def batch_gradient(model, x, y):
    loss = CRITERION(model(x), y)
    return [g.detach() for g in torch.autograd.grad(loss, list(model.parameters()))]


def distinct_label_batch(x, y, n, start=0):
    seen, idx = set(), []
    for i in range(start, len(y)):
        if int(y[i]) not in seen:
            seen.add(int(y[i]))
            idx.append(i)
        if len(idx) == n:
            break
    return x[idx], y[idx]


def start_mse(shape, seed, x_true):
    """MSE of the attacker's first dummy (same generator stream) against the truth."""
    init = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    return reconstruction_mse(init, x_true)


@pytest.fixture(scope="module")
def net():
    return make_lenet_digits(seed=0)


@pytest.fixture(scope="module")
def one_digit(digits):
    x, y, _, _ = digits
    return x[:1], y[:1]


def test_dlg_error_falls_below_a_tenth_and_label_recovered(net, one_digit):
    x, y = one_digit
    g = batch_gradient(net, x, y)
    attacker = GradientInversion_Attack(net, (1, 8, 8), distancename="l2", num_iteration=15, seed=0)
    x_rec, y_rec = attacker.attack(g)
    assert x_rec.shape == (1, 1, 8, 8)
    assert reconstruction_mse(x_rec, x) < 0.1 * start_mse((1, 1, 8, 8), 0, x)
    assert reconstruction_mse(x_rec, x) < 1e-3
    assert y_rec.tolist() == y.tolist()  # the optimised soft label's arg-max
    assert attacker.log_loss[-1] < 1e-3 * attacker.log_loss[0]
    assert psnr(x_rec, x) > 30


def test_idlg_label_is_exact_analytically_then_image(net, digits):
    x, y, _, _ = digits
    for i in range(20):  # every label read off the gradient, before any optimisation
        g = batch_gradient(net, x[i : i + 1], y[i : i + 1])
        assert estimate_labels(g, 1).tolist() == [int(y[i])]
    g = batch_gradient(net, x[3:4], y[3:4])
    attacker = GradientInversion_Attack(net, (1, 8, 8), optimize_label=False, num_iteration=30, seed=0)
    x_rec, y_rec = attacker.attack(g)
    assert y_rec.tolist() == [int(y[3])]
    assert reconstruction_mse(x_rec, x[3:4]) < 0.1 * start_mse((1, 1, 8, 8), 0, x[3:4])


def test_idlg_label_also_from_the_weight_gradient_without_bias(digits):
    x, y, _, _ = digits
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.Sigmoid(), nn.Linear(16, 10, bias=False))
    for i in range(10):
        g = batch_gradient(model, x[i : i + 1], y[i : i + 1])
        assert estimate_labels(g, 1, pos_of_final_fc_layer=-1).tolist() == [int(y[i])]


def test_gs_cosine_distance_reconstructs_a_batch_of_two(net, digits):
    x, y, _, _ = digits
    xb, yb = distinct_label_batch(x, y, 2)
    g = batch_gradient(net, xb, yb)
    attacker = GradientInversion_Attack(
        net, (1, 8, 8), distancename="cossim", tv_reg_coef=1e-4, optimize_label=False,
        optimizer_class=torch.optim.Adam, lr=0.1, num_iteration=150, seed=0,
    )
    x_rec, y_rec = attacker.attack(g, batch_size=2)
    assert sorted(y_rec.tolist()) == sorted(yb.tolist())
    start = start_mse((2, 1, 8, 8), 0, xb)
    assert reconstruction_mse(x_rec, xb) < 0.1 * start
    assert attacker.log_loss[-1] < 0.1 * attacker.log_loss[0]


def test_cpl_label_matching_term_is_applied_and_reconstructs(net, one_digit):
    x, y = one_digit
    g = batch_gradient(net, x, y)
    common = dict(optimize_label=False, num_iteration=30, seed=0)
    plain = GradientInversion_Attack(net, (1, 8, 8), **common)
    plain.attack(g)
    cpl = GradientInversion_Attack(net, (1, 8, 8), lm_reg_coef=0.01, **common)
    x_rec, y_rec = cpl.attack(g)
    # same dummy, same gradient: only the label-matching term makes the first losses differ
    assert cpl.log_loss[0] > plain.log_loss[0]
    assert y_rec.tolist() == y.tolist()
    assert reconstruction_mse(x_rec, x) < 0.1 * start_mse((1, 1, 8, 8), 0, x)


@pytest.fixture(scope="module")
def bn_setup(digits):
    x, y, _, _ = digits
    model = make_lenet_digits(seed=0, batch_norm=True)
    train_classifier(model, x, y, epochs=3, seed=0)
    model.train()  # the victim computes its gradient in training mode (batch statistics)
    xb, yb = distinct_label_batch(x, y, 4)
    return model, xb, yb, batch_gradient(model, xb, yb)


def test_gradinversion_bn_regularizer_recovers_a_batch(bn_setup):
    model, xb, yb, g = bn_setup
    before = {k: v.clone() for k, v in model.state_dict().items()}
    common = dict(optimize_label=False, num_iteration=20, seed=0)
    without = GradientInversion_Attack(model, (1, 8, 8), **common)
    x_plain, _ = without.attack(g, batch_size=4)
    with_bn = GradientInversion_Attack(model, (1, 8, 8), bn_reg_coef=0.01, bn_reg_layers=model.bn_layers, **common)
    x_bn, y_bn = with_bn.attack(g, batch_size=4)
    assert sorted(y_bn.tolist()) == sorted(yb.tolist())
    # batch norm hides the input's scale and offset; its running statistics pin them down
    assert reconstruction_mse(x_bn, xb) < 0.01
    assert reconstruction_mse(x_bn, xb) < 0.1 * reconstruction_mse(x_plain, xb)
    # the target model's running statistics and parameters are untouched
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_gradinversion_group_consistency_over_restarts(bn_setup):
    model, xb, yb, g = bn_setup
    attacker = GradientInversion_Attack(
        model, (1, 8, 8), optimize_label=False, bn_reg_coef=0.01, bn_reg_layers=model.bn_layers,
        group_num=2, gc_reg_coef=0.01, num_iteration=8, seed=0,
    )
    x_rec, _ = attacker.attack(g, batch_size=4)
    assert len(attacker.group_x) == 2
    assert torch.allclose(x_rec, attacker.group_mean(attacker.group_x, yb))  # labels are distinct: order fixed
    assert reconstruction_mse(x_rec, xb) < 0.1 * start_mse((4, 1, 8, 8), 0, xb)


@pytest.mark.parametrize("kwargs", [dict(), dict(distancename="cossim", optimizer_class=torch.optim.Adam, lr=0.1)])
def test_same_seed_same_tensors_and_logs(net, one_digit, kwargs):
    x, y = one_digit
    g = batch_gradient(net, x, y)
    runs = []
    for seed in (5, 5, 6):
        a = GradientInversion_Attack(net, (1, 8, 8), num_iteration=8, seed=seed, **kwargs)
        runs.append((*a.attack(g), list(a.log_loss)))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    assert runs[0][2] == runs[1][2]
    assert not torch.equal(runs[0][0], runs[2][0])
    # reset_seed restarts the stream
    a = GradientInversion_Attack(net, (1, 8, 8), num_iteration=8, seed=0, **kwargs)
    a.reset_seed(5)
    assert torch.equal(a.attack(g)[0], runs[0][0])


def test_attack_leaves_model_gradients_alone_and_reports_progress(net, one_digit):
    x, y = one_digit
    g = batch_gradient(net, x, y)
    for p in net.parameters():
        p.grad = None
    steps = []
    a = GradientInversion_Attack(net, (1, 8, 8), num_iteration=5, saving_interval=2,
                                 progress=lambda s, t: steps.append((s, t)))
    a.attack(g)
    assert all(p.grad is None for p in net.parameters())
    assert steps == [(i, 5) for i in range(1, 6)]
    assert [s for s, _ in a.snapshots] == [2, 4]

    def stop(step, total):
        if step == 3:
            raise KeyboardInterrupt("stop")

    with pytest.raises(KeyboardInterrupt):
        GradientInversion_Attack(net, (1, 8, 8), num_iteration=10, progress=stop).attack(g)


# -- bad input ------------------------------------------------------------------------------------


def test_bad_gradients_raise_clear_errors(net, one_digit):
    x, y = one_digit
    g = batch_gradient(net, x, y)
    a = GradientInversion_Attack(net, (1, 8, 8), num_iteration=2)
    with pytest.raises(ValueError, match="received_gradients has 3 tensors"):
        a.attack(g[:3])
    wrong = list(g)
    wrong[0] = torch.zeros(5, 5)
    with pytest.raises(ValueError, match=r"received_gradients\[0\] has shape \(5, 5\)"):
        a.attack(wrong)
    nan = list(g)
    nan[1] = nan[1].clone()
    nan[1][0] = float("nan")
    with pytest.raises(ValueError, match=r"received_gradients\[1\] contains NaN"):
        a.attack(nan)
    with pytest.raises(TypeError, match="received_gradients must be a list"):
        a.attack(g[0])
    with pytest.raises(ValueError, match="init_x must have shape"):
        a.attack(g, init_x=torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match="batch_size"):
        a.attack(g, batch_size=0)


def test_idlg_batch_larger_than_the_classes_is_rejected(net, digits):
    x, y, _, _ = digits
    g = batch_gradient(net, x[:12], y[:12])
    a = GradientInversion_Attack(net, (1, 8, 8), optimize_label=False, num_iteration=2)
    with pytest.raises(ValueError, match="batch_size=12 is larger than the 10 classes"):
        a.attack(g, batch_size=12)


def test_bad_settings_raise_clear_errors(net):
    with pytest.raises(ValueError, match="unknown distancename 'l1'"):
        GradientInversion_Attack(net, (1, 8, 8), distancename="l1")
    with pytest.raises(ValueError, match="bn_reg_coef > 0 needs bn_reg_layers"):
        GradientInversion_Attack(net, (1, 8, 8), bn_reg_coef=0.1)
    with pytest.raises(ValueError, match="gc_reg_coef > 0 needs group_num"):
        GradientInversion_Attack(net, (1, 8, 8), gc_reg_coef=0.1)
    with pytest.raises(ValueError, match="num_iteration"):
        GradientInversion_Attack(net, (1, 8, 8), num_iteration=0)
    with pytest.raises(ValueError, match="tv_reg_coef"):
        GradientInversion_Attack(net, (1, 8, 8), tv_reg_coef=-1.0)
    with pytest.raises(ValueError, match="cannot take inputs of x_shape"):
        GradientInversion_Attack(net, (3, 5, 5))
    with pytest.raises(TypeError, match="target_model"):
        GradientInversion_Attack("net", (1, 8, 8))
    with pytest.raises(TypeError, match="bn_reg_layers"):
        GradientInversion_Attack(net, (1, 8, 8), bn_reg_coef=0.1, bn_reg_layers=[nn.Linear(2, 2)])


# -- the malicious server inside FedAVG -----------------------------------------------------------


def _fedavg(server_cls, x, y, rounds=2):
    clients = [FedAVGClient(make_lenet_digits(seed=0), user_id=i, lr=1.0) for i in range(2)]
    server = server_cls(clients, make_lenet_digits(seed=0), lr=1.0)
    loaders = [[(x[i : i + 1], y[i : i + 1])] for i in range(2)]  # one sample, one step each
    optimizers = [torch.optim.SGD(c.parameters(), lr=1.0) for c in clients]
    api = FedAVGAPI(server, clients, CRITERION, optimizers, loaders, num_communication=rounds)
    api.run()
    return server


def test_server_manager_reconstructs_each_client_each_round(digits):
    x, y, _, _ = digits
    manager = GradientInversionAttackServerManager((1, 8, 8), distancename="l2", num_iteration=30)
    DLGFedAVGServer = manager.attach(FedAVGServer)
    server = _fedavg(DLGFedAVGServer, x, y)
    assert len(server.attack_results) == 2  # rounds
    for results in server.attack_results:
        assert sorted(results) == [0, 1]  # clients
        for i, (x_rec, y_rec) in results.items():
            assert y_rec.tolist() == [int(y[i])]
            assert reconstruction_mse(x_rec, x[i : i + 1]) < 0.1 * start_mse((1, 1, 8, 8), 0, x[i : i + 1])
    # the attack only reads: the global model is what a plain server computes
    plain = _fedavg(FedAVGServer, x, y)
    for p, q in zip(server.server_model.parameters(), plain.server_model.parameters()):
        assert torch.allclose(p, q)


def test_server_manager_idlg_targets_one_client_and_validates(digits):
    x, y, _, _ = digits
    manager = GradientInversionAttackServerManager((1, 8, 8), distancename="l2", optimize_label=False,
                                                   lm_reg_coef=0.01, num_iteration=20, target_client_id=1)
    server = _fedavg(manager.attach(FedAVGServer), x, y, rounds=1)
    assert list(server.attack_results[0]) == [1]
    assert server.attack_results[0][1][1].tolist() == [int(y[1])]
    with pytest.raises(ValueError, match="unknown distancename"):
        GradientInversionAttackServerManager((1, 8, 8), distancename="manhattan")
    with pytest.raises(TypeError, match="input_shape"):
        GradientInversionAttackServerManager(64)


def test_server_manager_records_none_for_unreadable_uploads(digits):
    x, y, _, _ = digits
    server = GradientInversionAttackServerManager((1, 8, 8), num_iteration=2).attach(FedAVGServer)(
        [FedAVGClient(make_lenet_digits(seed=0))], make_lenet_digits(seed=0)
    )
    server.uploaded_gradients = [[object()] * 6]  # e.g. Paillier ciphertexts: the server cannot read them
    assert server.attack() == {0: None}
    assert server.attack_results == [{0: None}]


def test_known_labels_and_init_x_are_used(net, digits):
    x, y, _, _ = digits
    xb, yb = distinct_label_batch(x, y, 2)
    g = batch_gradient(net, xb, yb)
    a = GradientInversion_Attack(net, (1, 8, 8), num_iteration=3, seed=0)
    _, y_rec = a.attack(g, batch_size=2, labels=yb)
    assert y_rec.tolist() == yb.tolist()  # known labels are kept, even with optimize_label=True
    a.attack(g, batch_size=2, init_x=xb, labels=yb)
    assert a.log_loss[0] < 1e-10  # starting at the private batch, the gradients already match
    with pytest.raises(ValueError, match="labels must be 2 integer class indices"):
        a.attack(g, batch_size=2, labels=torch.tensor([1.0, 2.0]))


# -- GradInversion's registration of restarts ---------------------------------------------------
def test_registration_undoes_batch_order_and_shifts(digits):
    from aijack_lab.attack.inversion.gradientinversion import register_to, registered_mean, shift_images

    x, y, _, _ = digits
    idx = torch.cat([(y == 3).nonzero().flatten()[:2], (y == 5).nonzero().flatten()[:2]])
    xb, yb = x[idx], y[idx]
    swapped = xb[[1, 0, 3, 2]]
    shifted = shift_images(xb, 1, 0)  # every image one pixel down
    noisy = xb + 0.05 * torch.randn(xb.shape, generator=torch.Generator().manual_seed(0))
    reg = register_to(xb, swapped, yb)
    assert reg.order == [1, 0, 3, 2] and reg.shifts == [(0, 0)] * 4
    assert torch.equal(reg.to_reference(swapped), xb) and torch.equal(reg.from_reference(xb), swapped)
    assert register_to(xb, shifted, yb).shifts == [(-1, 0)] * 4
    assert register_to(xb, shifted, yb, max_shift=0).shifts == [(0, 0)] * 4
    mean, regs = registered_mean([xb, swapped, shifted, noisy], yb)
    plain = torch.stack([xb, swapped, shifted, noisy]).mean(0)
    # only the rows the shift pushed off the image are lost; a plain mean blends different digits
    assert reconstruction_mse(mean, xb) < 0.1 * reconstruction_mse(plain, xb)
    # items are only matched within a label: a 3 is never averaged with a 5
    reg = register_to(xb, xb[[2, 3, 0, 1]], yb)
    assert all(int(yb[j]) == int(yb[i]) for i, j in enumerate(reg.order))
    with pytest.raises(ValueError, match="same shape"):
        register_to(xb, xb[:2])


def test_gradinversion_registered_mean_beats_the_plain_mean_of_its_restarts(digits):
    x, y, _, _ = digits
    model = make_lenet_digits(seed=0, batch_norm=True)
    train_classifier(model, x, y, epochs=3, seed=0)
    model.train()
    # two 3s and two 5s: restarts may recover the two 3s (or 5s) in either order
    idx = torch.cat([(y == 3).nonzero().flatten()[:2], (y == 5).nonzero().flatten()[:2]])
    xb, yb = x[idx], y[idx]
    g = batch_gradient(model, xb, yb)

    def matched_mse(xr):
        return min(reconstruction_mse(xr[p], xb) for p in ([0, 1, 2, 3], [1, 0, 2, 3], [0, 1, 3, 2], [1, 0, 3, 2]))

    attacker = GradientInversion_Attack(model, (1, 8, 8), optimize_label=False, bn_reg_coef=0.01,
                                        bn_reg_layers=model.bn_layers, group_num=4, gc_reg_coef=0.01,
                                        num_iteration=15, seed=0)
    x_rec, y_rec = attacker.attack(g, batch_size=4, labels=yb)
    assert torch.equal(y_rec, yb)
    assert torch.allclose(x_rec, attacker.group_mean(attacker.group_x, yb))
    plain = torch.stack(attacker.group_x).mean(0)
    print(f"registered {matched_mse(x_rec):.4f} vs plain mean {matched_mse(plain):.4f}")
    assert matched_mse(x_rec) < 0.8 * matched_mse(plain)
    with pytest.raises(TypeError, match="group_registration"):
        GradientInversion_Attack(model, (1, 8, 8), group_registration="yes")
    with pytest.raises(ValueError, match="registration_max_shift"):
        GradientInversion_Attack(model, (1, 8, 8), registration_max_shift=-1)
