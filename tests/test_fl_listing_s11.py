"""Paper Code S-11 runs as written with each commented alternative (FedKD, MOON, FedProx, FedEXP)."""
import pytest
import torch
from torch import nn

from aijack_lab.collaborative import (
    FedAVGAPI, FedAVGClient, FedAVGServer, FedEXPServer, FedKDClient, FedProxAPI, FedProxClient, MOONClient,
)
from aijack_lab.datasets import make_client_dataloaders, partition_iid
from aijack_lab.models import make_digits_model


@pytest.mark.parametrize("client_cls", [FedAVGClient, FedKDClient, MOONClient, FedProxClient])
@pytest.mark.parametrize("server_cls", [FedAVGServer, FedEXPServer])
def test_code_s11(digits, client_cls, server_cls):
    X, y, Xt, yt = digits
    NN = lambda: make_digits_model("mlp", seed=0)  # noqa: E731
    criterion = nn.CrossEntropyLoss()
    dataloaders = make_client_dataloaders(X[:400], y[:400], partition_iid(400, 2, seed=0), batch_size=20)

    clients = [client_cls(NN()), client_cls(NN())]
    optimizers = [torch.optim.SGD(c.parameters(), lr=0.1, momentum=0.9) for c in clients]
    server = server_cls(clients, NN())
    API = FedProxAPI if client_cls is FedProxClient else FedAVGAPI
    api = API(server, clients, criterion, optimizers, dataloaders, num_communication=2, validation_dataloader=(Xt, yt))
    history = api.run()
    assert len(history) == 2 and history[-1]["global_accuracy"] > 0.2
    # every client holds the global model after the round
    for c in clients:
        assert all(torch.equal(a, b) for a, b in zip(c.model.parameters(), server.server_model.parameters()))
