"""Soteria (issue 12): the asked fraction of the representation layer's gradient is pruned, by the
Soteria score; gradient inversion against a Soteria client fails where it succeeds against a plain
one; FedAVG with Soteria clients (paper Code S-21) still learns."""
import pytest
import torch
from torch import nn

from aijack_lab.attack import GradientInversion_Attack
from aijack_lab.attack.inversion.metrics import reconstruction_mse
from aijack_lab.collaborative import FedAVGAPI, FedAVGClient, FedAVGServer
from aijack_lab.datasets import make_client_dataloaders, partition_iid
from aijack_lab.defense import SoteriaClientManager
from aijack_lab.defense.soteria import soteria_scores
from aijack_lab.models import DigitsCNN, make_digits_model
from aijack_lab.models.lenet import make_lenet_digits

CRITERION = nn.CrossEntropyLoss()


def one_step_upload(client_cls, x, y, **kwargs):
    """A client's upload after one SGD step at lr 1 on (x, y): the (pruned) batch gradient."""
    client = client_cls(make_lenet_digits(seed=0), lr=1.0, **kwargs)
    client.local_train(1, CRITERION, [(x, y)], torch.optim.SGD(client.parameters(), lr=1.0))
    return client, client.upload_gradients()


def test_pruned_fraction_is_what_was_asked_and_only_the_target_changes(digits):
    x, y, _, _ = digits
    xb, yb = x[:4], y[:4]
    _, plain = one_step_upload(FedAVGClient, xb, yb)
    for eps in (0.1, 0.3, 0.75):
        Soteria = SoteriaClientManager("conv", "lin", epsilon=eps, target_layer_name="lin.0.weight").attach(FedAVGClient)
        client, upload = one_step_upload(Soteria, xb, yb)
        features = 192  # 12 channels x 4 x 4 (sigmoid features: never zero by themselves)
        expected = int(eps * features)
        assert client.pruned_fractions == [expected / features]
        zero_cols = (upload[-2].abs().sum(0) == 0).nonzero().flatten()
        assert sorted(zero_cols.tolist()) == sorted(client.pruned_indices.tolist())
        assert len(zero_cols) == expected
        kept = torch.ones(features, dtype=torch.bool)
        kept[zero_cols] = False
        assert torch.allclose(upload[-2][:, kept], plain[-2][:, kept], atol=1e-6)
        for i in (0, 1, 2, 3, 5):  # conv layers and the bias go out unchanged
            assert torch.allclose(upload[i], plain[i], atol=1e-6)


def test_pruned_features_are_those_with_the_largest_soteria_score(digits):
    x, y, _, _ = digits
    model = make_lenet_digits(seed=0)
    xb = x[:3].clone().requires_grad_(True)
    r = model.conv(xb)
    scores = soteria_scores(r, xb)
    # reference: one backward per feature, |r_f| / ||dr_f/dx|| per sample, then the batch mean
    ref = torch.zeros(r.shape[1])
    for f in range(r.shape[1]):
        for n in range(3):
            (g,) = torch.autograd.grad(r[n, f], xb, retain_graph=True)
            ref[f] += r[n, f].abs().item() / g[n].norm().item() / 3
    assert torch.allclose(scores, ref, rtol=1e-4)
    # the forward-mode path (representation = conv(x)) gives the same scores
    assert torch.allclose(soteria_scores(r, xb, fn=model.conv), ref, rtol=1e-4)
    Soteria = SoteriaClientManager("conv", "lin", epsilon=0.25).attach(FedAVGClient)
    client, _ = one_step_upload(Soteria, x[:3], y[:3])
    assert client.target_layer_name == "lin.0.weight"  # the default: the perturbed layer's weight
    assert set(client.pruned_indices.tolist()) == set(torch.topk(ref, 48).indices.tolist())


def test_gradient_inversion_against_soteria_reconstructs_much_worse(digits):
    x, y, _, _ = digits
    xb, yb = x[:1], y[:1]
    Soteria = SoteriaClientManager("conv", "lin", epsilon=0.3, target_layer_name="lin.0.weight").attach(FedAVGClient)
    errors = {}
    for name, cls in (("plain", FedAVGClient), ("soteria", Soteria)):
        _, upload = one_step_upload(cls, xb, yb)
        attacker = GradientInversion_Attack(make_lenet_digits(seed=0), (1, 8, 8), distancename="l2",
                                            num_iteration=20, seed=0)
        x_rec, _ = attacker.attack(upload)
        errors[name] = reconstruction_mse(x_rec, xb)
    assert errors["plain"] < 1e-3
    assert errors["soteria"] > 0.05  # worse than a blank guess of this digit's scale
    assert errors["soteria"] > 100 * errors["plain"], errors


def _fedavg_accuracy(client_cls, data, rounds=4):
    x, y, x_test, y_test = data
    x, y = x[:600], y[:600]  # a subset keeps the run short
    parts = partition_iid(len(x), 2, seed=0)
    dataloaders = make_client_dataloaders(x, y, parts, batch_size=32, seed=0)
    clients = [client_cls(make_digits_model("cnn", seed=0), user_id=i) for i in range(2)]
    global_model = make_digits_model("cnn", seed=0)  # seeded: the accuracy asserts must not depend on global RNG state
    server = FedAVGServer(clients, global_model)
    optimizers = [torch.optim.SGD(c.parameters(), lr=0.1, momentum=0.9) for c in clients]
    api = FedAVGAPI(server, clients, CRITERION, optimizers, dataloaders, num_communication=rounds,
                    validation_dataloader=(x_test, y_test))
    return [h["global_accuracy"] for h in api.run()], clients, dataloaders


def test_fedavg_with_soteria_clients_code_s21_still_learns(digits):
    manager = SoteriaClientManager("conv", "lin", target_layer_name="lin.0.weight")
    SoteriaFedAVGClient = manager.attach(FedAVGClient)
    acc, clients, dataloaders = _fedavg_accuracy(SoteriaFedAVGClient, digits)
    plain, _, _ = _fedavg_accuracy(FedAVGClient, digits)
    assert acc[-1] >= 0.85 and acc[-1] >= plain[-1] - 0.05, (acc, plain)
    assert acc[-1] > acc[0] + 0.3
    assert all(f == int(0.2 * 256) / 256 for c in clients for f in c.pruned_fractions)
    assert len(clients[0].pruned_fractions) == 4 * len(dataloaders[0])


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="input_layer='encoder' is not a submodule"):
        SoteriaClientManager("encoder", "lin").attach(FedAVGClient)(DigitsCNN())
    with pytest.raises(ValueError, match="perturbed_layer='head'"):
        SoteriaClientManager("conv", "head").attach(FedAVGClient)(DigitsCNN())
    with pytest.raises(ValueError, match="target_layer_name='lin.9.weight' is not a parameter"):
        SoteriaClientManager("conv", "lin", target_layer_name="lin.9.weight").attach(FedAVGClient)(DigitsCNN())
    with pytest.raises(ValueError, match="must be a 2-D"):
        SoteriaClientManager("conv", "lin", target_layer_name="conv.0.weight").attach(FedAVGClient)(DigitsCNN())
    for eps in (-0.1, 1.5):
        with pytest.raises(ValueError, match="epsilon"):
            SoteriaClientManager("conv", "lin", epsilon=eps)
    with pytest.raises(TypeError, match="input_layer"):
        SoteriaClientManager(3, "lin")
    # a target weight whose columns do not match the representation: caught at the first batch
    model = nn.Sequential()
    model.add_module("conv", nn.Flatten())
    model.add_module("lin", nn.Sequential(nn.Linear(64, 8), nn.Linear(8, 10)))
    client = SoteriaClientManager("conv", "lin", target_layer_name="lin.1.weight").attach(FedAVGClient)(model)
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match="has 8 columns but the representation"):
        client.local_train(1, CRITERION, [(x, torch.tensor([0, 1]))], torch.optim.SGD(model.parameters(), lr=0.1))
