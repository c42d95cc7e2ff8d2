"""FedKD (distillation term used) and MOON (model-contrastive term present and finite) learn digits."""
import math

import pytest
import torch
from torch import nn

from aijack_lab.collaborative import FedAVGAPI, FedAVGClient, FedAVGServer, FedKDClient, MOONClient
from aijack_lab.datasets import make_client_dataloaders, partition_dirichlet, partition_iid
from aijack_lab.models import make_digits_model


def _api(digits, clients, kind, rounds=3, lr=0.1, iid=True, on_round=None):
    X, y, Xt, yt = digits
    parts = partition_iid(len(X), len(clients), seed=0) if iid else partition_dirichlet(y, len(clients), alpha=0.5, seed=0)
    loaders = make_client_dataloaders(X, y, parts, batch_size=32, seed=0)
    server = FedAVGServer(clients, make_digits_model(kind, seed=0), lr=lr)
    opts = [torch.optim.SGD(c.parameters(), lr=lr, momentum=0.9) for c in clients]
    return FedAVGAPI(server, clients, nn.CrossEntropyLoss(), opts, loaders, num_communication=rounds,
                     validation_dataloader=(Xt, yt), on_round=on_round)


def test_fedkd_learns_and_uses_distillation(digits):
    kd_losses = []
    clients = [FedKDClient(make_digits_model("mlp", seed=0), teacher_model=make_digits_model("cnn", seed=1 + i), user_id=i)
               for i in range(4)]
    hist = _api(digits, clients, "mlp", rounds=4,
                on_round=lambda api, info: kd_losses.append([c.last_distillation_loss for c in clients])).run()
    plain = [FedAVGClient(make_digits_model("mlp", seed=0), user_id=i) for i in range(4)]
    hist_avg = _api(digits, plain, "mlp", rounds=4).run()
    print([h["global_accuracy"] for h in hist], kd_losses)
    assert hist[-1]["global_accuracy"] >= 0.85
    # the distillation term is present (positive and finite) and changes training: losses differ from FedAVG's
    assert all(0 < v < math.inf for row in kd_losses for v in row)
    assert hist[0]["client_losses"] != pytest.approx(hist_avg[0]["client_losses"], rel=1e-3)
    # only the mentee crosses: bytes are those of the MLP, not of the CNN mentor
    mlp_bytes = sum(p.numel() * 4 for p in make_digits_model("mlp").parameters())
    assert hist[-1]["bytes_uploaded"] == 4 * mlp_bytes
    # the private mentor learned too
    X, y, Xt, yt = digits
    with torch.no_grad():
        assert (clients[0].teacher_model(Xt).argmax(1) == yt).float().mean() > 0.5


def test_fedkd_adaptive_weight_and_svd_compression():
    torch.manual_seed(0)
    student, teacher = make_digits_model("mlp", seed=0), make_digits_model("mlp", seed=1)
    c = FedKDClient(student, teacher_model=teacher, adaptive_distillation_losses=True)
    x, y = torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))
    ls, lt, kd = c.loss(x, y)
    c2 = FedKDClient(student, teacher_model=teacher, adaptive_distillation_losses=False)
    ls2, lt2, kd2 = c2.loss(x, y)
    ce = nn.CrossEntropyLoss()
    scale = (ce(student(x), y) + ce(teacher(x), y)).item()
    assert kd.item() == pytest.approx(kd2.item() / scale, rel=1e-4)
    # SVD compression keeps the requested energy of each weight matrix and reports fewer bytes
    comp = FedKDClient(make_digits_model("mlp", seed=0), svd_energy=0.9)
    with torch.no_grad():  # a near-low-rank local update, as SGD steps produce
        for p in comp.model.parameters():
            if p.dim() == 2:
                p.add_(torch.outer(torch.randn(p.shape[0]), torch.randn(p.shape[1])) * 0.01 + torch.randn_like(p) * 1e-4)
    grads = comp.upload_gradients()
    full = FedAVGClient.upload_gradients(comp)
    for g, f in zip(grads, full):
        if f.dim() == 2:
            assert (g ** 2).sum() >= 0.9 * (f ** 2).sum() * (1 - 1e-4)
            assert torch.linalg.matrix_rank(g) < min(f.shape)
    assert comp.last_upload_compressed_nbytes < sum(f.numel() * 4 for f in full)
    with pytest.raises(ValueError, match="svd_energy"):
        FedKDClient(make_digits_model("mlp"), svd_energy=1.5)
    with pytest.raises(TypeError, match="teacher_model"):
        FedKDClient(make_digits_model("mlp"), teacher_model="cnn")


def test_moon_learns_with_finite_contrastive_term(digits):
    con = []
    clients = [MOONClient(make_digits_model("cnn", seed=0), user_id=i, mu=1.0, tau=0.5, rep_layer="conv") for i in range(4)]
    hist = _api(digits, clients, "cnn", rounds=4, iid=False,
                on_round=lambda api, info: con.append([c.last_contrastive_loss for c in clients])).run()
    print([h["global_accuracy"] for h in hist], con)
    assert hist[-1]["global_accuracy"] >= 0.85
    # round 1: previous model = initial global model, so l_con = log 2 exactly; later it is finite and moves
    assert all(v == pytest.approx(math.log(2), abs=1e-5) for v in con[0])
    assert all(math.isfinite(v) and v >= 0 for row in con[1:] for v in row)
    assert any(abs(v - math.log(2)) > 1e-2 for row in con[1:] for v in row)


def test_moon_contrastive_loss_formula():
    c = MOONClient(make_digits_model("mlp"), tau=0.5)
    z = torch.tensor([[1.0, 0.0]])
    same, opposite = torch.tensor([[2.0, 0.0]]), torch.tensor([[-1.0, 0.0]])
    # sim(z, glob) = 1, sim(z, prev) = -1: -log(e^2 / (e^2 + e^-2))
    assert c.contrastive_loss(z, same, opposite).item() == pytest.approx(-math.log(math.exp(2) / (math.exp(2) + math.exp(-2))), rel=1e-5)
    with pytest.raises(ValueError, match="tau"):
        MOONClient(make_digits_model("mlp"), tau=0.0)
    with pytest.raises(ValueError, match="rep_layer"):
        MOONClient(make_digits_model("mlp"), rep_layer="nope")
