"""FedAVG with the MPI backend (paper Code 6): rank 0 is the server, ranks 1..K are clients.

    mpiexec -n 3 python examples/mpi_fedavg.py            # 2 clients, 3 rounds
    mpiexec -n 5 python examples/mpi_fedavg.py --rounds 5 --local-epoch 2 --out result.pt

Use the mpiexec of the environment that has mpi4py (``pip install mpi4py mpich`` puts it in the
venv's bin/). Client k trains on the k-th IID share of the bundled digits, with the same seeds as
the in-process ``FedAVGAPI`` run, so both give the same global model. ``--out`` saves the server's
final parameters and its history with ``torch.save``.
"""
import argparse
import time

import torch
from mpi4py import MPI
from torch import nn

from aijack_lab.collaborative import (
    FedAVGClient, FedAVGServer, MPIFedAVGAPI,
    MPIFedAVGClientManager,
    MPIFedAVGServerManager,
)
from aijack_lab.datasets import load_digits, make_client_dataloaders, partition_iid
from aijack_lab.models import make_digits_model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="communication rounds")
    parser.add_argument("--local-epoch", type=int, default=1, help="local epochs per round")
    parser.add_argument("--model", default="cnn", choices=("cnn", "mlp"))
    parser.add_argument("--lr", type=float, default=0.1, help="client SGD learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds to wait for a rank before stopping with an error naming it")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    parser.add_argument("--out", default=None, help="server: save final parameters and history here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    comm = MPI.COMM_WORLD
    myid, size = comm.Get_rank(), comm.Get_size()
    if size < 2:
        raise SystemExit("run with at least 2 ranks: mpiexec -n 3 python examples/mpi_fedavg.py")
    num_clients = size - 1

    X_train, y_train, X_test, y_test = load_digits()
    NN = lambda: make_digits_model(args.model, seed=args.seed)  # noqa: E731
    criterion = nn.CrossEntropyLoss()

    mcm = MPIFedAVGClientManager()
    msm = MPIFedAVGServerManager()
    MPIClient = mcm.attach(FedAVGClient)
    MPIServer = msm.attach(FedAVGServer)

    start = time.perf_counter()
    if myid == 0:
        ids = list(range(1, size))
        server = MPIServer(comm, ids, NN())
        api = MPIFedAVGAPI(comm, server, True, criterion, num_communication=args.rounds,
                           local_epoch=args.local_epoch, timeout=args.timeout,
                           validation_dataloader=(X_test, y_test))
    else:
        parts = partition_iid(len(X_train), num_clients, seed=args.seed)
        dataloader = make_client_dataloaders(X_train, y_train, parts, batch_size=32, seed=args.seed)[myid - 1]
        client = MPIClient(comm, NN(), myid)
        optimizer = torch.optim.SGD(client.parameters(), lr=args.lr, momentum=0.9)
        api = MPIFedAVGAPI(comm, client, False, criterion, optimizer, dataloader,
                           num_communication=args.rounds, local_epoch=args.local_epoch, timeout=args.timeout)

    history = api.run()
    elapsed = time.perf_counter() - start

    if myid == 0:
        for h in history:
            print(f"round {h['round']}: global accuracy {h['global_accuracy']:.4f} "
                  f"({h['seconds'] * 1000:.0f} ms, {h['bytes_uploaded']} bytes uploaded)", flush=True)
        print(f"{num_clients} clients, {args.rounds} rounds in {elapsed:.2f} s", flush=True)
        if args.out:
            torch.save({"parameters": [p.detach().clone() for p in server.server_model.parameters()],
                        "history": history, "seconds": elapsed}, args.out)


if __name__ == "__main__":
    main()
