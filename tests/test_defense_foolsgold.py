"""FoolsGold (issue 12): sybils sending alike poisoned updates get weight ~0, honest clients keep
theirs, and the global accuracy stays near the clean run while plain FedAVG's collapses.

Setting: 5 IID clients on digits, the small CNN, 4 rounds; the last 2 clients are MPAF sybils
(same base model, so their updates point the same way)."""
import numpy as np
import pytest
import torch
from torch import nn

from aijack_lab.attack import MAPFClientWrapper
from aijack_lab.attack.fl_utils import make_fl_clients
from aijack_lab.collaborative import FedAVGAPI, FedAVGClient, FedAVGServer
from aijack_lab.datasets import make_client_dataloaders, partition_iid
from aijack_lab.defense import FoolsGoldServerManager
from aijack_lab.defense.foolsgold import foolsgold_weights
from aijack_lab.models import make_digits_model

N, SYBILS, ROUNDS = 5, 2, 4


def NN():
    return make_digits_model("cnn", seed=0)


def run(data, server_cls, num_sybils):
    x, y, x_test, y_test = data
    parts = partition_iid(len(x), N, seed=0)
    loaders = make_client_dataloaders(x, y, parts, batch_size=32, seed=0)
    clients = make_fl_clients(FedAVGClient, MAPFClientWrapper(lam=3.0).attach(FedAVGClient), NN, N, num_sybils)
    server = server_cls(clients, NN())
    optimizers = [torch.optim.SGD(c.parameters(), lr=0.1, momentum=0.9) for c in clients]
    api = FedAVGAPI(server, clients, nn.CrossEntropyLoss(), optimizers, loaders, num_communication=ROUNDS,
                    validation_dataloader=(x_test, y_test))
    return [h["global_accuracy"] for h in api.run()], server


def test_foolsgold_zeroes_sybils_and_keeps_accuracy(digits):
    clean, _ = run(digits, FedAVGServer, 0)
    attacked, _ = run(digits, FedAVGServer, SYBILS)
    FoolsGoldFedAVGServer = FoolsGoldServerManager().attach(FedAVGServer)
    defended, server = run(digits, FoolsGoldFedAVGServer, SYBILS)
    assert clean[-1] >= 0.85
    assert attacked[-1] <= clean[-1] - 0.5, (attacked, clean)
    assert defended[-1] >= clean[-1] - 0.05, (defended, clean)
    weights = np.array(server.foolsgold_history)  # rounds x clients
    assert weights.shape == (ROUNDS, N)
    assert (weights[:, N - SYBILS:] <= 0.01).all()
    assert (weights[:, : N - SYBILS] >= 0.9).all()
    # the aggregation weights the server used: the honest clients share everything
    assert sum(server.last_weights[N - SYBILS:]) <= 1e-6
    assert abs(sum(server.last_weights) - 1) < 1e-9
    # the sybils' histories are the most alike pair
    assert server.cs[N - 2, N - 1] > 0.99
    assert server.cs[0, 1] < 0.9


def test_foolsgold_weights_on_synthetic_histories():
    g = torch.Generator().manual_seed(0)
    honest = torch.randn(4, 50, generator=g)
    poison = torch.randn(1, 50, generator=g)
    sybils = poison + 0.01 * torch.randn(3, 50, generator=g)
    w = foolsgold_weights(torch.cat([honest, sybils]))
    assert w.shape == (7,)
    assert (w[:4] == 1.0).all() and (w[4:] < 0.01).all()
    # all clients alike: nobody is trusted
    assert (foolsgold_weights(poison.repeat(3, 1)) == 0).all()
    # a larger kappa squashes harder toward 0/1
    mid = torch.tensor([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.0, 0.0, 1.0]])
    assert foolsgold_weights(mid, kappa=0.2)[0] < 1.0


def test_parameter_uploads_are_handled_and_all_alike_keeps_the_model(digits):
    x, y, _, _ = digits
    clients = [FedAVGClient(NN(), user_id=i) for i in range(2)]
    server = FoolsGoldServerManager().attach(FedAVGServer)(clients, NN())
    loaders = [[(x[:16], y[:16])], [(x[:16], y[:16])]]  # identical data: identical updates
    optimizers = [torch.optim.SGD(c.parameters(), lr=0.1) for c in clients]
    before = [p.clone() for p in server.server_model.parameters()]
    FedAVGAPI(server, clients, nn.CrossEntropyLoss(), optimizers, loaders, use_gradients=False).run()
    assert server.foolsgold_history == [[0.0, 0.0]]
    for p, q in zip(server.server_model.parameters(), before):
        assert torch.equal(p, q)


def test_bad_input_raises_clear_errors():
    Server = FoolsGoldServerManager().attach(FedAVGServer)
    with pytest.raises(ValueError, match="at least two clients, got 1"):
        Server([FedAVGClient(NN())], NN())
    with pytest.raises(ValueError, match="kappa"):
        FoolsGoldServerManager(kappa=0)
    with pytest.raises(ValueError, match="at least two clients"):
        foolsgold_weights(torch.randn(1, 5))
    with pytest.raises(TypeError, match="2-D tensor"):
        foolsgold_weights(torch.randn(5))
