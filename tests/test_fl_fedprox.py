"""FedProx: learns digits; its proximal term keeps client drift below FedAVG's on non-IID clients."""
import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from aijack_lab.collaborative import FedAVGAPI, FedAVGClient, FedAVGServer, FedProxAPI, FedProxClient
from aijack_lab.collaborative.fedprox import client_drift
from aijack_lab.datasets import make_client_dataloaders, partition_dirichlet
from aijack_lab.models import make_digits_model


def _run(digits, mu, rounds=3, alpha=0.3, n=4, lr=0.05, local_epoch=2):
    X, y, Xt, yt = digits
    parts = partition_dirichlet(y, n, alpha=alpha, seed=0)
    loaders = make_client_dataloaders(X, y, parts, batch_size=32, seed=0)
    clients = [FedProxClient(make_digits_model("mlp", seed=0), user_id=i, lr=lr, mu=mu) for i in range(n)]
    server = FedAVGServer(clients, make_digits_model("mlp", seed=0), lr=lr)
    opts = [torch.optim.SGD(c.parameters(), lr=lr, momentum=0.9) for c in clients]
    api = FedProxAPI(server, clients, nn.CrossEntropyLoss(), opts, loaders, num_communication=rounds,
                     local_epoch=local_epoch, validation_dataloader=(Xt, yt))
    return api.run()


def test_fedprox_learns_and_keeps_drift_below_fedavg(digits):
    prox = _run(digits, mu=0.1)
    avg = _run(digits, mu=0.0)  # FedProx with mu = 0 is FedAVG
    drift_prox = sum(h["mean_client_drift"] for h in prox) / len(prox)
    drift_avg = sum(h["mean_client_drift"] for h in avg) / len(avg)
    print("accuracy", [h["global_accuracy"] for h in prox], "drift", drift_prox, "fedavg drift", drift_avg)
    assert prox[-1]["global_accuracy"] >= 0.8
    assert drift_prox < 0.85 * drift_avg
    # every round, every client's drift is recorded and finite
    assert all(len(h["client_drift"]) == 4 and all(math.isfinite(d) for d in h["client_drift"]) for h in prox)
    # per-client accuracy of the local models before aggregation is recorded too
    assert all(len(h["client_accuracies"]) == 4 and all(0 <= a <= 1 for a in h["client_accuracies"]) for h in prox)


def test_mu_zero_is_fedavg(digits):
    X, y, Xt, yt = digits
    accs = []
    for cls in (FedAVGClient, FedProxClient):
        parts = partition_dirichlet(y, 3, alpha=0.5, seed=1)
        loaders = make_client_dataloaders(X, y, parts, batch_size=64, seed=0)
        kw = {"mu": 0.0} if cls is FedProxClient else {}
        clients = [cls(make_digits_model("mlp", seed=0), user_id=i, **kw) for i in range(3)]
        server = FedAVGServer(clients, make_digits_model("mlp", seed=0))
        opts = [torch.optim.SGD(c.parameters(), lr=0.1) for c in clients]
        api = FedAVGAPI(server, clients, nn.CrossEntropyLoss(), opts, loaders, num_communication=2,
                        validation_dataloader=(Xt, yt))
        accs.append([h["global_accuracy"] for h in api.run()])
    assert accs[0] == accs[1]


def test_proximal_term_value_and_gradient():
    model = make_digits_model("mlp", seed=0)
    client = FedProxClient(model, mu=0.5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1)
    n = sum(p.numel() for p in model.parameters())
    term = client.proximal_term()
    assert term.item() == pytest.approx(0.5 / 2 * n * 0.01, rel=1e-4)
    term.backward()
    for p in model.parameters():  # d/dw mu/2 ||w - w0||^2 = mu (w - w0)
        assert torch.allclose(p.grad, torch.full_like(p, 0.05), atol=1e-6)


def test_client_drift_helper():
    m = make_digits_model("mlp", seed=0)
    start = [p.detach().clone() for p in m.parameters()]
    with torch.no_grad():
        next(m.parameters()).add_(1.0)
    n0 = next(m.parameters()).numel()
    assert client_drift(start, [m]) == [pytest.approx(math.sqrt(n0))]


def test_bad_input(digits):
    X, y, _, _ = digits
    with pytest.raises(ValueError, match="mu"):
        FedProxClient(make_digits_model("mlp"), mu=-1.0)
    loaders = make_client_dataloaders(X, y, partition_dirichlet(y, 2, alpha=1.0, seed=0))
    clients = [FedProxClient(make_digits_model("mlp"), user_id=i) for i in range(2)]
    server = FedAVGServer(clients, make_digits_model("mlp"))
    opts = [torch.optim.SGD(c.parameters(), lr=0.1) for c in clients]
    with pytest.raises(ValueError, match="local_optimizers"):
        FedProxAPI(server, clients, nn.CrossEntropyLoss(), opts[:1], loaders)
    with pytest.raises(ValueError, match="local_dataloaders"):
        FedProxAPI(server, clients, nn.CrossEntropyLoss(), opts, loaders[:1])
    with pytest.raises(TypeError, match="FedProxClient"):
        plain = [FedAVGClient(make_digits_model("mlp"), user_id=i) for i in range(2)]
        FedProxAPI(FedAVGServer(plain, make_digits_model("mlp")), plain, nn.CrossEntropyLoss(), opts, loaders)
    with pytest.raises(ValueError, match="alpha"):
        partition_dirichlet(y, 2, alpha=0.0)
    # an empty client dataloader is named
    empty = DataLoader(TensorDataset(X[:0], y[:0]), batch_size=8)
    api = FedProxAPI(server, clients, nn.CrossEntropyLoss(), opts, [loaders[0], empty])
    with pytest.raises(ValueError, match="client 1 has an empty dataloader"):
        api.run()


def test_non_finite_update_stops_the_round_naming_the_client(digits):
    X, y, _, _ = digits
    bad_x = X[:64].clone()
    bad_x[0, 0, 0, 0] = float("nan")
    loaders = [DataLoader(TensorDataset(X[64:256], y[64:256]), batch_size=32),
               DataLoader(TensorDataset(bad_x, y[:64]), batch_size=32)]
    clients = [FedProxClient(make_digits_model("mlp"), user_id=i) for i in range(2)]
    server = FedAVGServer(clients, make_digits_model("mlp"))
    before = [p.detach().clone() for p in server.server_model.parameters()]
    opts = [torch.optim.SGD(c.parameters(), lr=0.1) for c in clients]
    api = FedProxAPI(server, clients, nn.CrossEntropyLoss(), opts, loaders)
    with pytest.raises(ValueError, match="client 1 sent a non-finite update"):
        api.run()
    # the global model was not touched by the rejected round
    assert all(torch.equal(a, b) for a, b in zip(before, server.server_model.parameters()))
