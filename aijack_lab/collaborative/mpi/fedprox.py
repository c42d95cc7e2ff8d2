"""FedProx over MPI: ``MPIFedProxAPI`` runs FedProx clients (``FedProxClient``, whose local loss has
the proximal term ``mu/2 ||w - w_global||²``) on MPI ranks.

The transport is FedAVG's: attach ``MPIFedAVGClientManager`` to ``FedProxClient`` and
``MPIFedAVGServerManager`` to ``FedAVGServer``::

    MPIClient = MPIFedAVGClientManager().attach(FedProxClient)
    MPIServer = MPIFedAVGServerManager().attach(FedAVGServer)
    api = MPIFedProxAPI(comm, party, is_server, criterion, optimizer, dataloader, mu=0.01)
"""
from typing import Optional

from ...utils.validation import check_positive
from .fedavg import MPIFedAVGAPI


class MPIFedProxAPI(MPIFedAVGAPI):
    """``MPIFedAVGAPI`` for FedProx clients; ``mu``, if given, sets the client's proximal coefficient.

    Same arguments, timeouts and failure handling as :class:`MPIFedAVGAPI`.
    """

    def __init__(self, comm, party, is_server, criterion=None, local_optimizer=None, local_dataloader=None,
                 *args, mu: Optional[float] = None, **kwargs):
        super().__init__(comm, party, is_server, criterion, local_optimizer, local_dataloader, *args, **kwargs)
        if not is_server and not hasattr(party, "proximal_term"):
            raise TypeError(f"party is a {type(party).__name__}, not an MPI FedProxClient "
                            "(use MPIFedAVGClientManager().attach(FedProxClient))")
        if mu is not None:
            mu = check_positive("mu", mu, allow_zero=True)
            if not is_server:
                party.mu = float(mu)
