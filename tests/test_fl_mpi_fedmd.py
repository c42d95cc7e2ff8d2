"""MPIFedMDAPI: FedMD with the server and each client on their own rank gives the in-process models."""
import threading

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from aijack_lab.collaborative import (
    FedMDAPI, FedMDClient, FedMDServer, MPIFedMDAPI, MPIFedMDClientManager, MPIFedMDServerManager, MPIRankError,
)
from aijack_lab.datasets import make_client_dataloaders, partition_dirichlet
from aijack_lab.models import make_digits_model
from test_fl_mpi import SilentComm, ThreadComm  # the in-memory communicators of the MPI tests

NPUB, ROUNDS = 300, 2
SETTINGS = dict(num_communication=ROUNDS, transfer_epoch_public=2, transfer_epoch_private=1, consensus_epoch=1,
                revisit_epoch=1, server_training_epoch=1)


def setup(digits):
    X, y, Xt, yt = digits
    Xp, yp, Xr, yr = X[:NPUB], y[:NPUB], X[NPUB:], y[NPUB:]
    parts = partition_dirichlet(yr, 3, alpha=0.3, seed=1)
    public = DataLoader(TensorDataset(Xp, yp), batch_size=32)
    models = lambda: [make_digits_model("mlp", seed=1, hidden=16), make_digits_model("mlp", seed=2, hidden=32),
                      make_digits_model("cnn", seed=3, channels=4)]
    loaders = lambda: make_client_dataloaders(Xr, yr, parts, batch_size=32, seed=1)
    return public, models, loaders, (Xt, yt)


def test_threaded_mpi_fedmd_equals_inprocess(digits):
    public, models, loaders, val = setup(digits)
    clients = [FedMDClient(m, public, output_dim=10, batch_size=32, user_id=i) for i, m in enumerate(models())]
    server = FedMDServer(clients, make_digits_model("cnn", seed=4))
    opts = [torch.optim.Adam(c.model.parameters(), lr=3e-3) for c in clients]
    FedMDAPI(server, clients, public, loaders(), client_optimizers=opts, validation_dataloader=val, **SETTINGS).run()

    boxes, size = {}, 4
    MPIClient = MPIFedMDClientManager().attach(FedMDClient)
    MPIServer = MPIFedMDServerManager().attach(FedMDServer)
    mpi_server = MPIServer(ThreadComm(boxes, 0, size), [1, 2, 3], make_digits_model("cnn", seed=4))
    apis = [MPIFedMDAPI(mpi_server.comm, mpi_server, True, public_dataloader=public, validation_dataloader=val,
                        timeout=60, **SETTINGS)]
    mpi_clients = []
    for rank, (model, loader) in enumerate(zip(models(), loaders()), start=1):
        client = MPIClient(ThreadComm(boxes, rank, size), model, public, output_dim=10, batch_size=32, user_id=rank - 1)
        mpi_clients.append(client)
        apis.append(MPIFedMDAPI(client.comm, client, False, local_dataloader=loader,
                                client_optimizer=torch.optim.Adam(model.parameters(), lr=3e-3), timeout=60, **SETTINGS))
    errors = []

    def run(api):
        try:
            api.run()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(api,), daemon=True) for api in apis]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and not any(t.is_alive() for t in threads), errors

    for ref, mine in zip(clients, mpi_clients):
        for a, b in zip(ref.model.parameters(), mine.model.parameters()):
            assert torch.allclose(a, b, atol=1e-5)
    for a, b in zip(server.server_model.parameters(), mpi_server.server_model.parameters()):
        assert torch.allclose(a, b, atol=1e-5)
    assert torch.allclose(server.consensus, mpi_server.consensus, atol=1e-5)
    # only logits crossed: the server history counts logits bytes, one (public x 10) tensor per client
    assert apis[0].history[-1]["bytes_uploaded"] == 3 * NPUB * 10 * 4


def test_silent_client_rank_is_named(digits):
    public, models, _, _ = setup(digits)
    server = MPIFedMDServerManager().attach(FedMDServer)(SilentComm(rank=0, size=3), [1, 2])
    api = MPIFedMDAPI(server.comm, server, True, timeout=0.3, abort_on_error=False)
    with pytest.raises(MPIRankError, match="ranks 1, 2 did not send its logits"):
        api.run()


def test_bad_arguments(digits):
    public, models, loaders, _ = setup(digits)
    client = MPIFedMDClientManager().attach(FedMDClient)(SilentComm(rank=1, size=3), models()[0], public, output_dim=10)
    with pytest.raises(ValueError, match="client_optimizer"):
        MPIFedMDAPI(client.comm, client, False, local_dataloader=loaders()[0])
    with pytest.raises(ValueError, match="is_server"):
        MPIFedMDAPI(client.comm, client, True)
    with pytest.raises(TypeError, match="MPIFedMDClientManager"):
        MPIFedMDAPI(client.comm, FedMDClient(models()[0], public, output_dim=10), False)
    server = MPIFedMDServerManager().attach(FedMDServer)(SilentComm(rank=0, size=3), [1, 2], make_digits_model("cnn"))
    with pytest.raises(ValueError, match="public_dataloader"):
        MPIFedMDAPI(server.comm, server, True)
    with pytest.raises(ValueError, match="server's rank"):
        MPIFedMDClientManager().attach(FedMDClient)(SilentComm(rank=0, size=3), models()[0], public, output_dim=10)
