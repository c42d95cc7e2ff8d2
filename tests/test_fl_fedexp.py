"""FedEXP: the server step is >= 1 and it reaches FedAVG's accuracy in no more rounds."""
import pytest
import torch
from torch import nn

from aijack_lab.collaborative import FedAVGAPI, FedAVGClient, FedAVGServer, FedEXPServer
from aijack_lab.datasets import make_client_dataloaders, partition_dirichlet
from aijack_lab.models import make_digits_model


def _run(digits, server_cls, rounds=6, n=8, lr=0.05):
    X, y, Xt, yt = digits
    loaders = make_client_dataloaders(X, y, partition_dirichlet(y, n, alpha=0.5, seed=0), batch_size=32, seed=0)
    clients = [FedAVGClient(make_digits_model("mlp", seed=0), user_id=i, lr=lr) for i in range(n)]
    server = server_cls(clients, make_digits_model("mlp", seed=0), lr=lr)
    opts = [torch.optim.SGD(c.parameters(), lr=lr) for c in clients]
    api = FedAVGAPI(server, clients, nn.CrossEntropyLoss(), opts, loaders, num_communication=rounds,
                    validation_dataloader=(Xt, yt))
    return [h["global_accuracy"] for h in api.run()], server


def test_fedexp_steps_at_least_one_and_is_not_slower(digits):
    exp, server = _run(digits, FedEXPServer)
    avg, _ = _run(digits, FedAVGServer)
    print(exp, avg, server.eta_history)
    assert len(server.eta_history) == 6
    assert all(eta >= 1.0 for eta in server.eta_history)
    assert max(server.eta_history) > 1.0  # it does extrapolate on non-IID clients
    target = avg[-1]
    rounds_exp = next(i for i, a in enumerate(exp) if a >= target)
    rounds_avg = next(i for i, a in enumerate(avg) if a >= target)
    assert rounds_exp <= rounds_avg


def _deltas():
    return [[torch.tensor([1.0, 0.0])], [torch.tensor([-1.0, 0.0])], [torch.tensor([0.0, 2.0])]]


def test_step_formula_matches_the_paper():
    clients = [FedAVGClient(torch.nn.Linear(2, 1, bias=False), user_id=i) for i in range(3)]
    server = FedEXPServer(clients, torch.nn.Linear(2, 1, bias=False), epsilon=0.0)
    w = [1 / 3] * 3
    deltas = _deltas()
    mean_sq = (2 / 3) ** 2  # mean delta = (0, 2/3)
    expected = (1 + 1 + 4) / 3 / (2 * mean_sq)
    assert server.extrapolation_step(deltas, w) == pytest.approx(expected)
    # identical updates: the ratio is 1/2, clipped to 1 (FedAVG)
    same = [[torch.tensor([1.0, 1.0])]] * 3
    assert server.extrapolation_step(same, w) == 1.0


def test_server_applies_eta_times_mean_update():
    lr = 0.1
    clients = [FedAVGClient(torch.nn.Linear(2, 1, bias=False), user_id=i, lr=lr) for i in range(3)]
    server = FedEXPServer(clients, torch.nn.Linear(2, 1, bias=False), lr=lr, epsilon=0.0)
    w0 = server.server_model.weight.detach().clone()
    server.uploaded_gradients = [[d[0].reshape(1, 2) / lr] for d in _deltas()]
    server.update(use_gradients=True)
    eta = server.eta_history[-1]
    assert torch.allclose(server.server_model.weight, w0 - eta * torch.tensor([[0.0, 2 / 3]]), atol=1e-6)


def test_bad_input():
    clients = [FedAVGClient(torch.nn.Linear(2, 1), user_id=i) for i in range(2)]
    with pytest.raises(ValueError, match="epsilon"):
        FedEXPServer(clients, torch.nn.Linear(2, 1), epsilon=-1.0)
    with pytest.raises(ValueError, match="server_side_update"):
        FedEXPServer(clients, torch.nn.Linear(2, 1), server_side_update=False)
    with pytest.raises(ValueError, match="weights"):
        FedEXPServer(clients, torch.nn.Linear(2, 1), weight=[1.0])


def test_evaluation_model_is_the_mean_of_the_last_two_iterates(digits):
    _, server = _run(digits, FedEXPServer, rounds=2)
    w_t = [p.detach().clone() for p in server.server_model.parameters()]
    w_prev = server.previous_parameters
    assert w_prev is not None and any(not torch.equal(a, b) for a, b in zip(w_t, w_prev))
    averaged = server.evaluation_model()
    assert averaged is not server.server_model
    for p, a, b in zip(averaged.parameters(), w_t, w_prev):
        torch.testing.assert_close(p.detach(), (a + b) / 2, rtol=0, atol=1e-7)
    # training continues from w_t, untouched by the evaluation copy
    assert all(torch.equal(p.detach(), a) for p, a in zip(server.server_model.parameters(), w_t))
    _, last = _run(digits, lambda *a, **k: FedEXPServer(*a, average_last_two=False, **k), rounds=2)
    assert last.evaluation_model() is last.server_model


def test_validation_accuracy_uses_the_evaluation_model(digits):
    from aijack_lab.utils.metrics import evaluate_accuracy

    X, y, Xt, yt = digits
    accs, server = _run(digits, FedEXPServer, rounds=3)
    assert accs[-1] == evaluate_accuracy(server.evaluation_model(), (Xt, yt))
