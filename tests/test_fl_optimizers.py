"""SGDFLOptimizer / AdamFLOptimizer: server-side optimizers of aggregated gradients (FedOpt)."""
import pytest
import torch
from torch import nn

from aijack_lab.collaborative import AdamFLOptimizer, FedAVGAPI, FedAVGClient, FedAVGServer, SGDFLOptimizer
from aijack_lab.datasets import make_client_dataloaders, partition_iid
from aijack_lab.models import make_digits_model


def _grads(seed, like):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(p.shape, generator=g) for p in like]


def test_sgd_matches_formula():
    p = nn.Parameter(torch.ones(3))
    opt = SGDFLOptimizer([p], lr=0.5, weight_decay=0.1)
    opt.step([torch.tensor([1.0, 2.0, 3.0])])
    assert torch.allclose(p.detach(), 1 - 0.5 * (torch.tensor([1.0, 2.0, 3.0]) + 0.1))


def test_adam_matches_torch_adam():
    a = make_digits_model("mlp", seed=0)
    b = make_digits_model("mlp", seed=0)
    ours = AdamFLOptimizer(a.parameters(), lr=0.01, beta1=0.9, beta2=0.99, epsilon=1e-8)
    ref = torch.optim.Adam(b.parameters(), lr=0.01, betas=(0.9, 0.99), eps=1e-8)
    for step in range(5):
        grads = _grads(step, list(a.parameters()))
        ours.step(grads)
        ref.zero_grad()
        for p, g in zip(b.parameters(), grads):
            p.grad = g.clone()
        ref.step()
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.allclose(p, q, atol=1e-6)


def test_adam_as_fedavg_server_optimizer_learns(digits):
    # FedAdam: the server applies the aggregated pseudo-gradient with Adam (Reddi et al., 2021)
    X, y, Xt, yt = digits
    loaders = make_client_dataloaders(X, y, partition_iid(len(X), 4, seed=0), batch_size=32, seed=0)
    clients = [FedAVGClient(make_digits_model("mlp", seed=0), user_id=i) for i in range(4)]
    server = FedAVGServer(clients, make_digits_model("mlp", seed=0))
    server.optimizer = AdamFLOptimizer(server.server_model.parameters(), lr=0.03)
    opts = [torch.optim.SGD(c.parameters(), lr=0.1) for c in clients]
    hist = FedAVGAPI(server, clients, nn.CrossEntropyLoss(), opts, loaders, num_communication=4,
                     validation_dataloader=(Xt, yt)).run()
    assert server.optimizer.t == 4
    assert hist[-1]["global_accuracy"] >= 0.75


def test_bad_input():
    p = nn.Parameter(torch.ones(3))
    with pytest.raises(ValueError, match="lr"):
        SGDFLOptimizer([p], lr=0.0)
    with pytest.raises(ValueError, match="beta1"):
        AdamFLOptimizer([p], beta1=1.0)
    with pytest.raises(ValueError, match="parameters is empty"):
        SGDFLOptimizer([])
    opt = SGDFLOptimizer([p])
    with pytest.raises(ValueError, match=r"grads\[0\] has 4 elements"):
        opt.step([torch.ones(4)])
    with pytest.raises(ValueError, match="2 gradients"):
        opt.step([torch.ones(3), torch.ones(3)])
    with pytest.raises(ValueError, match="NaN"):
        opt.step([torch.tensor([1.0, float("nan"), 0.0])])
