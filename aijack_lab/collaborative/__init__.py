"""Collaborative learning: horizontal FL protocols (``fedavg``, ...), vertical ones (``splitnn``, ``tree``).

The paper's names are re-exported lazily; to add one, add ``"Name": ".module"`` to ``_EXPORTS``.
"""
from ..utils.lazy import lazy_exports

_EXPORTS = {
    "SplitNNClient": ".splitnn",
    "XGBoostClient": ".tree",
    "XGBoostClassifierAPI": ".tree",
    "SecureBoostClient": ".tree",
    "SecureBoostClassifierAPI": ".tree",
    "SplitNNAPI": ".splitnn",
    "BaseClient": ".core",
    "BaseServer": ".core",
    "BaseFedAPI": ".core",
    "FedAVGClient": ".fedavg",
    "FedAVGServer": ".fedavg",
    "FedAVGAPI": ".fedavg",
    "FedProxClient": ".fedprox",
    "FedProxAPI": ".fedprox",
    "FedKDClient": ".fedkd",
    "MOONClient": ".moon",
    "FedEXPServer": ".fedexp",
    "SGDFLOptimizer": ".optimizer",
    "AdamFLOptimizer": ".optimizer",
    "BaseFLKnowledgeDistillationAPI": ".distillation",
    "FedMDClient": ".fedmd",
    "FedMDServer": ".fedmd",
    "FedMDAPI": ".fedmd",
    "FedGEMSClient": ".fedgems",
    "FedGEMSServer": ".fedgems",
    "FedGEMSAPI": ".fedgems",
    "DSFLClient": ".dsfl",
    "DSFLServer": ".dsfl",
    "DSFLAPI": ".dsfl",
    "MPIFedAVGAPI": ".mpi",
    "MPIFedAVGClientManager": ".mpi",
    "MPIFedAVGServerManager": ".mpi",
    "MPIRankError": ".mpi",
    "MPIFedProxAPI": ".mpi",
    "MPIFedMDAPI": ".mpi",
    "MPIFedMDClientManager": ".mpi",
    "MPIFedMDServerManager": ".mpi",
    "MPIFedGEMSAPI": ".mpi",
    "MPIFedGEMSClientManager": ".mpi",
    "MPIFedGEMSServerManager": ".mpi",
    "MPIDSFLAPI": ".mpi",
    "MPIDSFLClientManager": ".mpi",
    "MPIDSFLServerManager": ".mpi",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
