"""FedAVG learns digits and its server model is the data-weighted mean of the client models."""
import numpy as np
import pytest
import torch
from torch import nn

from aijack_lab.collaborative import FedAVGAPI, FedAVGClient, FedAVGServer
from aijack_lab.datasets import make_client_dataloaders, partition_iid
from aijack_lab.models import make_digits_model


def build(digits, n_clients=4, kind="cnn", parts=None, use_gradients=True, seed=0, **api_kwargs):
    x_tr, y_tr, x_te, y_te = digits
    parts = parts if parts is not None else partition_iid(len(x_tr), n_clients, seed=seed)
    loaders = make_client_dataloaders(x_tr, y_tr, parts, batch_size=32, seed=seed)
    clients = [FedAVGClient(make_digits_model(kind, seed=seed), user_id=i) for i in range(len(parts))]
    server = FedAVGServer(clients, make_digits_model(kind, seed=seed))
    opts = [torch.optim.SGD(c.parameters(), lr=0.1, momentum=0.9) for c in clients]
    api = FedAVGAPI(server, clients, nn.CrossEntropyLoss(), opts, loaders, use_gradients=use_gradients,
                    validation_dataloader=(x_te, y_te), **api_kwargs)
    return api


def test_four_iid_clients_reach_90_percent(digits):
    api = build(digits, num_communication=5, local_epoch=1)
    history = api.run()
    accs = [h["global_accuracy"] for h in history]
    assert accs[-1] >= 0.90
    assert accs[-1] > accs[0]
    assert len(history) == 5 and all(h["bytes_uploaded"] > 0 for h in history)


@pytest.mark.parametrize("use_gradients", [True, False])
def test_server_model_is_weighted_mean_of_client_models(digits, use_gradients):
    x_tr = digits[0]
    # unequal client sizes so that weighting by n_k matters
    idx = np.random.default_rng(0).permutation(len(x_tr))
    parts = [np.sort(idx[:100]), np.sort(idx[100:400]), np.sort(idx[400:1000])]
    api = build(digits, parts=parts, use_gradients=use_gradients, kind="mlp")
    server, clients = api.server, api.clients
    server.distribute(force_send_model_state_dict=True)
    api.local_train(0)
    client_params = [[p.detach().clone() for p in c.parameters()] for c in clients]
    sizes = np.array([len(p) for p in parts], dtype=float)
    weights = sizes / sizes.sum()
    server.action(use_gradients=use_gradients)
    assert server.last_weights == pytest.approx(weights.tolist())
    for i, p in enumerate(server.server_model.parameters()):
        expected = sum(w * cp[i] for w, cp in zip(weights, client_params))
        assert torch.allclose(p, expected, atol=1e-6)
    # and every client now holds the global model
    for c in clients:
        for p, g in zip(c.parameters(), server.server_model.parameters()):
            assert torch.equal(p, g)


def test_runs_are_reproducible_with_the_same_seeds(digits):
    a = build(digits, num_communication=2).run()
    b = build(digits, num_communication=2).run()
    assert [h["global_accuracy"] for h in a] == [h["global_accuracy"] for h in b]


def test_round_hook_and_progress_see_every_round(digits):
    seen, steps = [], []
    api = build(digits, num_communication=3, on_round=lambda api, info: seen.append(
        (info["round"], len(info["client_updates"]))), progress=lambda s, t: steps.append((s, t)))
    api.run()
    assert seen == [(0, 4), (1, 4), (2, 4)]
    assert steps == [(1, 3), (2, 3), (3, 3)]
    assert "client_updates" not in api.history[0]


def test_progress_callback_can_stop_the_run(digits):
    class Stop(Exception):
        pass

    def progress(step, total):
        if step == 2:
            raise Stop

    api = build(digits, num_communication=5, progress=progress)
    with pytest.raises(Stop):
        api.run()
    assert len(api.history) == 2


def test_client_side_update_mode_matches_server_side(digits):
    """server_side_update=False: the server sends the aggregate and clients apply it themselves."""
    x_tr, y_tr, x_te, y_te = digits
    parts = partition_iid(len(x_tr), 3, seed=0)
    results = []
    for server_side in (True, False):
        loaders = make_client_dataloaders(x_tr, y_tr, parts, batch_size=32, seed=0)
        clients = [FedAVGClient(make_digits_model("mlp", seed=0), user_id=i, server_side_update=server_side)
                   for i in range(3)]
        server = FedAVGServer(clients, make_digits_model("mlp", seed=0), server_side_update=server_side)
        opts = [torch.optim.SGD(c.parameters(), lr=0.1) for c in clients]
        FedAVGAPI(server, clients, nn.CrossEntropyLoss(), opts, loaders, num_communication=2).run()
        results.append([p.detach().clone() for p in clients[0].parameters()])
    for a, b in zip(*results):
        assert torch.allclose(a, b, atol=1e-5)


def test_bad_input_is_rejected(digits):
    x_tr, y_tr, _, _ = digits
    clients = [FedAVGClient(make_digits_model("mlp"), user_id=i) for i in range(2)]
    server = FedAVGServer(clients, make_digits_model("mlp"))
    loaders = make_client_dataloaders(x_tr, y_tr, partition_iid(len(x_tr), 2), batch_size=32)
    opts = [torch.optim.SGD(c.parameters(), lr=0.1) for c in clients]
    crit = nn.CrossEntropyLoss()
    with pytest.raises(ValueError, match="local_optimizers"):
        FedAVGAPI(server, clients, crit, opts[:1], loaders)
    with pytest.raises(ValueError, match="local_dataloaders"):
        FedAVGAPI(server, clients, crit, opts, loaders[:1])
    with pytest.raises(ValueError, match="num_communication"):
        FedAVGAPI(server, clients, crit, opts, loaders, num_communication=0)
    with pytest.raises(ValueError, match="lr"):
        FedAVGClient(make_digits_model("mlp"), lr=-1)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        FedAVGClient("not a model")
    with pytest.raises(ValueError, match="weights"):
        FedAVGServer(clients, make_digits_model("mlp"), weight=[1.0])
    with pytest.raises(ValueError, match="unknown engine"):
        FedAVGAPI(server, clients, crit, opts, loaders, engine="nonexistent")


def test_non_finite_update_names_the_client(digits):
    api = build(digits, n_clients=2, kind="mlp", num_communication=1)
    bad = api.clients[1]
    original = bad.upload_gradients
    bad.upload_gradients = lambda: [t * float("nan") for t in original()]
    with pytest.raises(ValueError, match="client 1 sent a non-finite update"):
        api.run()
