"""MPI backend for federated learning (paper Code 6 / S-12): one party per rank, via mpi4py.

Run a script with ``mpiexec -n K+1 python script.py`` (rank 0 the server, ranks 1..K clients);
``mpi4py`` and the ``mpich`` wheel come from PyPI (``pip install "aijack_lab[mpi]"``).
This package never imports mpi4py itself: the script passes its communicator.
"""
from .dsfl import MPIDSFLAPI, MPIDSFLClientManager, MPIDSFLServerManager
from .fedavg import MPIFedAVGAPI, MPIFedAVGClientManager, MPIFedAVGServerManager
from .fedgems import MPIFedGEMSAPI, MPIFedGEMSClientManager, MPIFedGEMSServerManager
from .fedmd import MPIFedMDAPI, MPIFedMDClientManager, MPIFedMDServerManager
from .fedprox import MPIFedProxAPI
from .transport import DEFAULT_TIMEOUT, MPIRankError

__all__ = [
    "MPIFedAVGAPI",
    "MPIFedAVGClientManager",
    "MPIFedAVGServerManager",
    "MPIFedProxAPI",
    "MPIFedMDAPI",
    "MPIFedMDClientManager",
    "MPIFedMDServerManager",
    "MPIFedGEMSAPI",
    "MPIFedGEMSClientManager",
    "MPIFedGEMSServerManager",
    "MPIDSFLAPI",
    "MPIDSFLClientManager",
    "MPIDSFLServerManager",
    "MPIRankError",
    "DEFAULT_TIMEOUT",
]
