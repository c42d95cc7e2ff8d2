"""FedGEMS or DSFL with the MPI backend: rank 0 is the server, ranks 1..K are clients.

    mpiexec -n 3 python examples/mpi_distillation.py --protocol fedgems          # 2 clients, 2 rounds
    mpiexec -n 4 python examples/mpi_distillation.py --protocol dsfl --rounds 3 --out result.pt

Use the mpiexec of the environment that has mpi4py (``pip install mpi4py mpich`` puts it in the
venv's bin/). The bundled digits are split into public data (the first ``--public`` training
images, labeled for FedGEMS, used without labels by DSFL) and private data, shared among the
clients non-IID (Dirichlet, alpha 0.5); clients have different architectures. Only predictions
on the public data cross. With the same seeds ``run_inprocess`` (``FedGEMSAPI``/``DSFLAPI``)
gives the same models. ``--out`` saves every rank's final parameters and history (one file per
rank: ``<out>.rank<r>``, the server's at ``<out>``) with ``torch.save``.
"""
import argparse
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

from aijack_lab.collaborative import DSFLClient, DSFLServer, FedGEMSClient, FedGEMSServer
from aijack_lab.datasets import load_digits, make_client_dataloaders, partition_dirichlet
from aijack_lab.models import make_digits_model

PROTOCOLS = ("fedgems", "dsfl")


def client_model(i: int, seed: int = 0):
    """Client i's model: the clients differ in architecture, as these protocols allow."""
    kinds = [("mlp", dict(hidden=16)), ("mlp", dict(hidden=32)), ("cnn", dict(channels=4))]
    kind, kw = kinds[i % len(kinds)]
    return make_digits_model(kind, seed=seed + 1 + i, **kw)


def server_model(seed: int = 0):
    return make_digits_model("mlp", seed=seed + 100, hidden=64)


def make_setup(num_clients: int, n_public: int = 300, seed: int = 0):
    """(public dataloader, one private dataloader per client, validation (x, y)) from the bundled digits."""
    X, y, Xt, yt = load_digits()
    public = DataLoader(TensorDataset(X[:n_public], y[:n_public]), batch_size=32)
    Xr, yr = X[n_public:], y[n_public:]
    parts = partition_dirichlet(yr, num_clients, alpha=0.5, seed=seed)
    loaders = make_client_dataloaders(Xr, yr, parts, batch_size=32, seed=seed)
    return public, loaders, (Xt, yt)


def settings(protocol: str, rounds: int) -> dict:
    if protocol == "fedgems":
        return dict(num_communication=rounds, epoch_client_on_localdataset=3, epoch_client_on_publicdataset=1,
                    epoch_server_on_publicdataset=1)
    return dict(num_communication=rounds, epoch_local_training=3, epoch_global_distillation=2,
                epoch_local_distillation=1)


def make_client(protocol: str, i: int, public, seed: int = 0, cls=None):
    cls = cls or (FedGEMSClient if protocol == "fedgems" else DSFLClient)
    return cls(client_model(i, seed), public, output_dim=10, batch_size=32, user_id=i)


def make_server_args(protocol: str, public, seed: int = 0):
    if protocol == "fedgems":
        return (server_model(seed), public), dict(output_dim=10, epsilon=0.75, batch_size=32)
    return (server_model(seed), public), dict(aggregation="ERA", era_temperature=0.1, batch_size=32)


def optimizer(model):
    return torch.optim.Adam(model.parameters(), lr=3e-3)


def run_inprocess(protocol: str, num_clients: int, rounds: int, seed: int = 0):
    """The same run with ``FedGEMSAPI``/``DSFLAPI`` in this process: ``(server, clients, history)``."""
    from aijack_lab.collaborative import DSFLAPI, FedGEMSAPI

    public, loaders, val = make_setup(num_clients, seed=seed)
    clients = [make_client(protocol, i, public, seed) for i in range(num_clients)]
    args, kw = make_server_args(protocol, public, seed)
    server = (FedGEMSServer if protocol == "fedgems" else DSFLServer)(clients, *args, **kw)
    api_cls = FedGEMSAPI if protocol == "fedgems" else DSFLAPI
    history = api_cls(server, clients, public, loaders, client_optimizers=[optimizer(c.model) for c in clients],
                      server_optimizer=optimizer(server.server_model), validation_dataloader=val,
                      **settings(protocol, rounds)).run()
    return server, clients, history


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default="fedgems", choices=PROTOCOLS)
    parser.add_argument("--rounds", type=int, default=2, help="communication rounds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds to wait for a rank before stopping with an error naming it")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    parser.add_argument("--out", default=None, help="save each rank's final parameters and history")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from mpi4py import MPI

    from aijack_lab.collaborative import (
        MPIDSFLAPI, MPIDSFLClientManager, MPIDSFLServerManager, MPIFedGEMSAPI, MPIFedGEMSClientManager,
        MPIFedGEMSServerManager,
    )

    comm = MPI.COMM_WORLD
    myid, size = comm.Get_rank(), comm.Get_size()
    if size < 2:
        raise SystemExit("run with at least 2 ranks: mpiexec -n 3 python examples/mpi_distillation.py")
    num_clients = size - 1
    fedgems = args.protocol == "fedgems"
    api_cls = MPIFedGEMSAPI if fedgems else MPIDSFLAPI
    public, loaders, val = make_setup(num_clients, seed=args.seed)

    start = time.perf_counter()
    if myid == 0:
        MPIServer = (MPIFedGEMSServerManager() if fedgems else MPIDSFLServerManager()).attach(
            FedGEMSServer if fedgems else DSFLServer)
        sargs, skw = make_server_args(args.protocol, public, args.seed)
        party = MPIServer(comm, list(range(1, size)), *sargs, **skw)
        api = api_cls(comm, party, True, server_optimizer=optimizer(party.server_model), validation_dataloader=val,
                      timeout=args.timeout, **settings(args.protocol, args.rounds))
        model = party.server_model
    else:
        MPIClient = (MPIFedGEMSClientManager() if fedgems else MPIDSFLClientManager()).attach(
            FedGEMSClient if fedgems else DSFLClient)
        # client rank r is client r-1 of the in-process run (same model seed, data share and user_id)
        party = make_client(args.protocol, myid - 1, public, args.seed,
                            cls=lambda *a, **k: MPIClient(comm, *a, **k))
        api = api_cls(comm, party, False, local_dataloader=loaders[myid - 1], client_optimizer=optimizer(party.model),
                      validation_dataloader=val, timeout=args.timeout, **settings(args.protocol, args.rounds))
        model = party.model
    history = api.run()
    elapsed = time.perf_counter() - start

    if myid == 0:
        for h in history:
            print(f"round {h['round']}: global accuracy {h['global_accuracy']:.4f} "
                  f"({h['bytes_uploaded']} bytes uploaded)", flush=True)
        print(f"{args.protocol}: {num_clients} clients, {args.rounds} rounds in {elapsed:.2f} s", flush=True)
    if args.out:
        path = args.out if myid == 0 else f"{args.out}.rank{myid}"
        torch.save({"parameters": [p.detach().clone() for p in model.parameters()], "history": history}, path)


if __name__ == "__main__":
    main()
