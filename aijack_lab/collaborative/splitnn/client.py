"""A party of split learning: holds one segment of the network."""
import torch

from ..core import BaseClient


class SplitNNClient(BaseClient):
    """One segment of a split network.

    ``upload(x)`` runs the segment and returns what crosses to the next party (a detached copy of
    the cut-layer activation); ``download(grad)`` receives the gradient of that activation and
    back-propagates it through the segment. A party that receives an activation wraps it with
    ``receive_activation`` so that the gradient w.r.t. it can be sent back.
    """

    def __init__(self, model: torch.nn.Module, user_id: int = 0):
        super().__init__(model, user_id=user_id)
        self.own_intermediate = None   # output of this segment, with its graph
        self.received = None           # the activation received from the previous party (a leaf)

    def receive_activation(self, activation: torch.Tensor) -> torch.Tensor:
        self.received = activation.detach().requires_grad_(True)
        return self.received

    def upload(self, x: torch.Tensor) -> torch.Tensor:
        self.own_intermediate = self.model(x)
        return self.own_intermediate.detach().clone()

    def download(self, grad: torch.Tensor) -> None:
        if self.own_intermediate is None:
            raise RuntimeError(f"party {self.user_id} received a gradient before sending an activation")
        if grad.shape != self.own_intermediate.shape:
            raise ValueError(f"party {self.user_id}: gradient of shape {tuple(grad.shape)} for an activation "
                             f"of shape {tuple(self.own_intermediate.shape)}")
        self.own_intermediate.backward(grad)

    def grad_to_send(self) -> torch.Tensor:
        """Gradient of the loss w.r.t. the activation this party received (what goes back)."""
        if self.received is None or self.received.grad is None:
            raise RuntimeError(f"party {self.user_id} has no gradient to send back")
        return self.received.grad.detach().clone()
