"""FedMD, FedGEMS, DSFL and their shared BaseFLKnowledgeDistillationAPI."""
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from aijack_lab.collaborative import (
    BaseFLKnowledgeDistillationAPI, DSFLAPI, DSFLClient, DSFLServer, FedGEMSAPI, FedGEMSClient, FedGEMSServer,
    FedMDAPI, FedMDClient, FedMDServer,
)
from aijack_lab.collaborative.distillation import PublicData
from aijack_lab.datasets import make_client_dataloaders, partition_dirichlet
from aijack_lab.models import make_digits_model

NPUB = 300


def _split(digits, n=3, alpha=0.3, seed=0):
    X, y, Xt, yt = digits
    Xp, yp, Xr, yr = X[:NPUB], y[:NPUB], X[NPUB:], y[NPUB:]
    loaders = make_client_dataloaders(Xr, yr, partition_dirichlet(yr, n, alpha=alpha, seed=seed), batch_size=32, seed=seed)
    return loaders, (Xp, yp), (Xt, yt)


def _models(seed=0):  # three different architectures
    return [make_digits_model("mlp", seed=seed, hidden=16), make_digits_model("mlp", seed=seed + 1, hidden=32),
            make_digits_model("cnn", seed=seed + 2, channels=4)]


def _fedmd(digits, digest=True):
    loaders, (Xp, yp), val = _split(digits, alpha=0.1, seed=1)
    pub = DataLoader(TensorDataset(Xp, yp), batch_size=32, shuffle=True)  # shuffling is harmless: order is fixed
    clients = [FedMDClient(m, pub, output_dim=10, batch_size=32, user_id=i) for i, m in enumerate(_models(seed=1))]
    if not digest:  # ablation: the clients ignore the consensus
        for c in clients:
            c.approach_consensus = lambda opt, epoch=1, seed=0: 0.0
    server = FedMDServer(clients, make_digits_model("cnn", seed=3))
    opts = [torch.optim.Adam(c.model.parameters(), lr=3e-3) for c in clients]
    api = FedMDAPI(server, clients, pub, loaders, client_optimizers=opts, validation_dataloader=val, num_communication=4,
                   transfer_epoch_public=5, transfer_epoch_private=2, consensus_epoch=2, server_training_epoch=3)
    return api, api.run()


def test_fedmd_heterogeneous_clients_improve_through_consensus(digits):
    api, hist = _fedmd(digits)
    _, hist_ablated = _fedmd(digits, digest=False)
    before = sum(api.transfer_scores["clients_score"]) / 3
    after = hist[-1]["mean_client_accuracy"]
    print("transfer", before, "fedmd", after, "without consensus", hist_ablated[-1]["mean_client_accuracy"])
    assert after >= before + 0.15
    assert after >= hist_ablated[-1]["mean_client_accuracy"] + 0.1
    # no parameters are exchanged: each client uploads exactly one (n_public, 10) logit matrix per round
    assert all(h["bytes_uploaded"] == 3 * NPUB * 10 * 4 for h in hist)
    uploads = [c.upload() for c in api.clients]
    assert all(u.shape == (NPUB, 10) for u in uploads)
    # the server model, trained only on the consensus, learns too
    assert hist[-1]["global_accuracy"] >= 0.6


def test_fedmd_paper_listing_runs_with_defaults(digits):
    # Code S-19: FedMDAPI(server, clients).run() with only a public dataloader
    X, y, _, _ = digits
    public_dataloader = DataLoader(TensorDataset(X[:128], y[:128]), batch_size=32)
    clients = [FedMDClient(make_digits_model("mlp", seed=0), public_dataloader, output_dim=10, user_id=0),
               FedMDClient(make_digits_model("cnn", seed=1), public_dataloader, output_dim=10, user_id=1)]
    server = FedMDServer(clients, make_digits_model("mlp", seed=2))
    api = FedMDAPI(server, clients)
    hist = api.run()
    assert len(hist) == 1 and hist[0]["bytes_uploaded"] == 2 * 128 * 10 * 4
    torch.testing.assert_close(server.consensus, (clients[0].upload() * 0 + server.uploaded_logits[0] + server.uploaded_logits[1]) / 2)


def test_fedgems_server_model_beats_average_client(digits):
    loaders, (Xp, yp), val = _split(digits)
    pub = DataLoader(TensorDataset(Xp, yp), batch_size=32)
    clients = [FedGEMSClient(m, pub, output_dim=10, user_id=i) for i, m in enumerate(_models())]
    server = FedGEMSServer(clients, make_digits_model("cnn", seed=3, channels=32), output_dim=10, epsilon=0.75)
    opts = [torch.optim.Adam(c.model.parameters(), lr=3e-3) for c in clients]
    api = FedGEMSAPI(server, clients, pub, loaders, client_optimizers=opts,
                     server_optimizer=torch.optim.Adam(server.server_model.parameters(), lr=3e-3),
                     validation_dataloader=val, num_communication=4, epoch_server_on_publicdataset=2)
    hist = api.run()
    print([(h["global_accuracy"], h["mean_client_accuracy"], h["fusion_stats"]) for h in hist])
    assert hist[-1]["global_accuracy"] >= 0.85
    assert hist[-1]["global_accuracy"] > hist[-1]["mean_client_accuracy"] + 0.1
    # the server did learn from client logits: fused knowledge was used
    assert sum(h["fusion_stats"]["fused"] for h in hist) > 0
    assert all(sum(h["fusion_stats"].values()) == NPUB for h in hist)
    assert all(h["bytes_uploaded"] == 3 * NPUB * 10 * 4 for h in hist)


def test_fedgems_selective_fusion_weights_only_correct_clients():
    x = torch.zeros(2, 1, 8, 8)
    y = torch.tensor([0, 1])
    pub = DataLoader(TensorDataset(x, y), batch_size=2)
    clients = [FedGEMSClient(make_digits_model("mlp"), pub, output_dim=2, user_id=i) for i in range(2)]
    server = FedGEMSServer(clients, make_digits_model("mlp", num_classes=2), output_dim=2)
    # client 0 is right on sample 0 only, client 1 on sample 1 only
    server.uploaded_logits = [torch.tensor([[3.0, 0.0], [3.0, 0.0]]), torch.tensor([[0.0, 2.0], [0.0, 2.0]])]
    fused = server.fuse()
    torch.testing.assert_close(fused[0], torch.softmax(torch.tensor([3.0, 0.0]), 0))
    torch.testing.assert_close(fused[1], torch.softmax(torch.tensor([0.0, 2.0]), 0))


def test_dsfl_learns_on_unlabeled_public_data_with_era(digits):
    loaders, (Xp, _), val = _split(digits)
    pub = DataLoader(TensorDataset(Xp), batch_size=32)  # no labels
    clients = [DSFLClient(m, pub, output_dim=10, user_id=i) for i, m in enumerate(_models())]
    server = DSFLServer(clients, make_digits_model("cnn", seed=3), pub, aggregation="ERA", era_temperature=0.1)
    opts = [torch.optim.Adam(c.model.parameters(), lr=3e-3) for c in clients]
    api = DSFLAPI(server, clients, pub, loaders, num_communication=5, client_optimizers=opts,
                  server_optimizer=torch.optim.Adam(server.server_model.parameters(), lr=3e-3),
                  validation_dataloader=val, epoch_local_training=2, epoch_global_distillation=3)
    hist = api.run()
    print([(h["global_accuracy"], h["entropy_before"], h["entropy_after"]) for h in hist])
    assert hist[-1]["global_accuracy"] >= 0.75
    assert all(h["entropy_after"] < h["entropy_before"] for h in hist)  # ERA reduces entropy
    assert all(h["bytes_uploaded"] == 3 * NPUB * 10 * 4 for h in hist)


def test_era_formula():
    pub = DataLoader(TensorDataset(torch.zeros(1, 1, 8, 8)), batch_size=1)
    clients = [DSFLClient(make_digits_model("mlp", num_classes=3), pub, output_dim=3, user_id=i) for i in range(2)]
    server = DSFLServer(clients, make_digits_model("mlp", num_classes=3), pub, era_temperature=0.5)
    server.uploaded_probs = [torch.tensor([[0.6, 0.3, 0.1]]), torch.tensor([[0.4, 0.5, 0.1]])]
    torch.testing.assert_close(server.update(), torch.softmax(torch.tensor([[0.5, 0.4, 0.1]]) / 0.5, dim=1))
    server.aggregation = "SA"
    torch.testing.assert_close(server.update(), torch.tensor([[0.5, 0.4, 0.1]]))


def test_the_three_share_the_base_api():
    for api in (FedMDAPI, FedGEMSAPI, DSFLAPI):
        assert issubclass(api, BaseFLKnowledgeDistillationAPI)


def test_public_data_order_is_fixed_even_if_the_loader_shuffles():
    x = torch.arange(10.0).reshape(10, 1)
    loader = DataLoader(TensorDataset(x, torch.zeros(10, dtype=torch.long)), batch_size=3, shuffle=True)
    a, b = PublicData(loader), PublicData(loader)
    assert torch.equal(a.x, x) and torch.equal(b.x, x)


def test_bad_input(digits):
    loaders, (Xp, yp), val = _split(digits)
    pub = DataLoader(TensorDataset(Xp, yp), batch_size=32)
    models = _models()
    clients = [FedMDClient(m, pub, output_dim=10, user_id=i) for i, m in enumerate(models)]
    server = FedMDServer(clients)
    with pytest.raises(ValueError, match="local_dataloaders"):
        FedMDAPI(server, clients, pub, loaders[:2])
    with pytest.raises(ValueError, match="client_optimizers"):
        FedMDAPI(server, clients, pub, loaders, client_optimizers=[torch.optim.Adam(models[0].parameters())])
    with pytest.raises(ValueError, match="at least one client"):
        FedMDAPI(server, [], pub, None)
    with pytest.raises(ValueError, match="num_communication"):
        FedMDAPI(server, clients, pub, loaders, num_communication=0)
    with pytest.raises(ValueError, match="output_dim"):
        FedMDClient(models[0], pub, output_dim=3).upload()
    with pytest.raises(ValueError, match="public dataset is empty"):
        FedMDClient(models[0], DataLoader(TensorDataset(Xp[:0], yp[:0])), output_dim=10)
    with pytest.raises(ValueError, match="labeled public data"):
        FedGEMSClient(models[0], DataLoader(TensorDataset(Xp)), output_dim=10)
    with pytest.raises(ValueError, match="aggregation"):
        DSFLServer(clients, models[0], pub, aggregation="median")
    with pytest.raises(ValueError, match="era_temperature"):
        DSFLServer(clients, models[0], pub, era_temperature=0.0)
    with pytest.raises(ValueError, match="epsilon"):
        FedGEMSServer(clients, models[0], pub, output_dim=10, epsilon=1.5)
    # empty private data is named
    empty = DataLoader(TensorDataset(Xp[:0], yp[:0]), batch_size=8)
    api = FedMDAPI(server, clients, pub, [loaders[0], loaders[1], empty], transfer_epoch_public=0)
    with pytest.raises(ValueError, match="client 2 has an empty dataloader"):
        api.run()


def test_non_finite_logits_are_rejected_naming_the_client(digits):
    X, y, _, _ = digits
    pub = DataLoader(TensorDataset(X[:64], y[:64]), batch_size=32)
    bad = make_digits_model("mlp", seed=1)
    with torch.no_grad():
        bad.net[1].bias[0] = float("nan")
    for C, S in ((FedMDClient, FedMDServer), (DSFLClient, None), (FedGEMSClient, None)):
        clients = [C(make_digits_model("mlp", seed=0), pub, output_dim=10, user_id=0), C(bad, pub, output_dim=10, user_id=1)]
        if S is None:
            server = (DSFLServer(clients, make_digits_model("mlp"), pub) if C is DSFLClient
                      else FedGEMSServer(clients, make_digits_model("mlp"), pub, output_dim=10))
        else:
            server = S(clients)
        with pytest.raises(ValueError, match="client 1 sent a non-finite update"):
            server.receive()
