"""An MPI FedAVG job for the tests (run under mpiexec; not collected by pytest).

--pid-dir: every rank writes its pid to rank<r>.pid; the server writes the last finished round
to round.txt (the tests use them to kill or stop a rank mid-run).
"""
import argparse
import os

import torch
from mpi4py import MPI
from torch import nn

from aijack_lab.collaborative import (
    FedAVGClient, FedAVGServer, MPIFedAVGAPI, MPIFedAVGClientManager, MPIFedAVGServerManager,
)
from aijack_lab.datasets import load_digits, make_client_dataloaders, partition_iid
from aijack_lab.models import make_digits_model

parser = argparse.ArgumentParser()
parser.add_argument("--rounds", type=int, default=3)
parser.add_argument("--model", default="mlp")
parser.add_argument("--timeout", type=float, default=60.0)
parser.add_argument("--pid-dir", default=None)
parser.add_argument("--out", default=None)
args = parser.parse_args()
torch.set_num_threads(1)

comm = MPI.COMM_WORLD
myid, size = comm.Get_rank(), comm.Get_size()
if args.pid_dir:
    with open(os.path.join(args.pid_dir, f"rank{myid}.pid"), "w") as f:
        f.write(str(os.getpid()))

X_train, y_train, X_test, y_test = load_digits()
NN = lambda: make_digits_model(args.model, seed=0)  # noqa: E731

ServerClass = MPIFedAVGServerManager().attach(FedAVGServer)
MPIClient = MPIFedAVGClientManager().attach(FedAVGClient)


def note_round(api, info):
    if args.pid_dir:
        with open(os.path.join(args.pid_dir, "round.txt"), "w") as f:
            f.write(str(info["round"]))


if myid == 0:
    server = ServerClass(comm, list(range(1, size)), NN())
    api = MPIFedAVGAPI(comm, server, True, nn.CrossEntropyLoss(), num_communication=args.rounds,
                       timeout=args.timeout, on_round=note_round)
else:
    parts = partition_iid(len(X_train), size - 1, seed=0)
    loader = make_client_dataloaders(X_train, y_train, parts, batch_size=32, seed=0)[myid - 1]
    client = MPIClient(comm, NN(), user_id=myid)
    opt = torch.optim.SGD(client.parameters(), lr=0.1, momentum=0.9)
    api = MPIFedAVGAPI(comm, client, False, nn.CrossEntropyLoss(), opt, loader,
                       num_communication=args.rounds, timeout=args.timeout)
api.run()
if myid == 0 and args.out:
    torch.save({"parameters": [p.detach().clone() for p in server.server_model.parameters()]}, args.out)
print(f"rank {myid} done", flush=True)
