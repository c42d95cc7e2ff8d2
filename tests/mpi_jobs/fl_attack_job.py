"""An MPI FedAVG job whose last client rank is malicious (issue 10; run under mpiexec, not collected).

--attack mapf|freerider: the manager attached to the last client rank's class, on top of the MPI manager.
"""
import argparse

import torch
from mpi4py import MPI
from torch import nn

from aijack_lab.attack import FreeRiderClientManager, MAPFClientWrapper
from aijack_lab.collaborative import (
    FedAVGClient, FedAVGServer, MPIFedAVGAPI, MPIFedAVGClientManager, MPIFedAVGServerManager,
)
from aijack_lab.datasets import load_digits, make_client_dataloaders, partition_iid
from aijack_lab.models import make_digits_model

parser = argparse.ArgumentParser()
parser.add_argument("--attack", choices=("mapf", "freerider"), required=True)
parser.add_argument("--rounds", type=int, default=2)
parser.add_argument("--out", required=True)
args = parser.parse_args()
torch.set_num_threads(1)

comm = MPI.COMM_WORLD
myid, size = comm.Get_rank(), comm.Get_size()
X_train, y_train, X_test, y_test = load_digits()
NN = lambda: make_digits_model("mlp", seed=0)  # noqa: E731
MANAGERS = {"mapf": lambda: MAPFClientWrapper(lam=3), "freerider": lambda: FreeRiderClientManager(mu=0, sigma=1.0)}

if myid == 0:
    server = MPIFedAVGServerManager().attach(FedAVGServer)(comm, list(range(1, size)), NN())
    api = MPIFedAVGAPI(comm, server, True, nn.CrossEntropyLoss(), num_communication=args.rounds, timeout=60.0,
                       validation_dataloader=(X_test, y_test))
else:
    MPIClient = MPIFedAVGClientManager().attach(FedAVGClient)
    if myid == size - 1:
        MPIClient = MANAGERS[args.attack]().attach(MPIClient)
    parts = partition_iid(len(X_train), size - 1, seed=0)
    loader = make_client_dataloaders(X_train, y_train, parts, batch_size=32, seed=0)[myid - 1]
    client = MPIClient(comm, NN(), user_id=myid)
    opt = torch.optim.SGD(client.parameters(), lr=0.1, momentum=0.9)
    api = MPIFedAVGAPI(comm, client, False, nn.CrossEntropyLoss(), opt, loader, num_communication=args.rounds,
                       timeout=60.0)
history = api.run()
if myid == 0:
    torch.save({"parameters": [p.detach().clone() for p in server.server_model.parameters()],
                "accuracy": [h["global_accuracy"] for h in history]}, args.out)
