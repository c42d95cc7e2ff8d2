"""``VIB``: a classifier with a stochastic Gaussian bottleneck ``z ~ N(μ(x), σ(x)²)`` (MID)."""
from typing import Optional

import torch
from torch import nn
import torch.nn.functional as F

from ...utils.validation import check_positive, check_positive_int
from .loss import mib_loss


class VIB(nn.Module):
    """``VIB(encoder, decoder, dim_z=256, num_samples=10, beta=1e-3)``.

    ``encoder(x)`` must output ``2 · dim_z`` numbers per sample: the mean and (through softplus)
    the standard deviation of ``z``. ``decoder`` maps ``z`` to logits. In training mode
    ``forward`` returns ``(outputs, result_dict)`` (outputs averaged over ``num_samples`` draws of
    z; the dict holds the draws and the Gaussian's parameters for :meth:`loss`); in eval mode it
    returns the outputs only. ``generator`` (optional) makes the draws reproducible.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, dim_z: int = 256, num_samples: int = 10,
                 beta: float = 1e-3, generator: Optional[torch.Generator] = None):
        super().__init__()
        if not isinstance(encoder, nn.Module) or not isinstance(decoder, nn.Module):
            raise TypeError("encoder and decoder must be torch.nn.Module instances")
        self.encoder = encoder
        self.decoder = decoder
        self.dim_z = check_positive_int("dim_z", dim_z)
        self.num_samples = check_positive_int("num_samples", num_samples)
        self.beta = check_positive("beta", beta, allow_zero=True)
        self.generator = generator

    def get_params_of_p_z_given_x(self, x):
        out = self.encoder(x)
        if out.dim() != 2 or out.shape[1] != 2 * self.dim_z:
            raise ValueError(f"the encoder must output 2 * dim_z = {2 * self.dim_z} features per sample, "
                             f"got shape {tuple(out.shape)}")
        mu = out[:, : self.dim_z]
        sigma = F.softplus(out[:, self.dim_z:])
        return mu, sigma

    def sampling_from_encoder(self, mu, sigma, batch_size):
        eps = torch.randn((self.num_samples, batch_size, self.dim_z), generator=self.generator, dtype=mu.dtype)
        return mu + sigma * eps

    def encode(self, x, sample: bool = True):
        """The representation an observer of the bottleneck sees: one draw of z (or μ)."""
        mu, sigma = self.get_params_of_p_z_given_x(x)
        if not sample:
            return mu
        eps = torch.randn(mu.shape, generator=self.generator, dtype=mu.dtype)
        return mu + sigma * eps

    def forward(self, x):
        mu, sigma = self.get_params_of_p_z_given_x(x)
        z = self.sampling_from_encoder(mu, sigma, x.shape[0])
        decoded = self.decoder(z.reshape(-1, self.dim_z)).reshape(self.num_samples, x.shape[0], -1)
        outputs = decoded.mean(dim=0)
        if self.training:
            return outputs, {
                "sampled_decoded_outputs": decoded.permute(1, 2, 0),
                "sampled_encoded_features": z,
                "p_z_given_x_mu": mu,
                "p_z_given_x_sigma": sigma,
            }
        return outputs

    def loss(self, y, result_dict):
        """MID's loss (``mib_loss`` with the prior N(0, I) and this model's ``beta``)."""
        mu = result_dict["p_z_given_x_mu"]
        sigma = result_dict["p_z_given_x_sigma"]
        loss, _, _ = mib_loss(y, result_dict["sampled_decoded_outputs"], mu, sigma,
                              torch.zeros_like(mu), torch.ones_like(sigma), beta=self.beta)
        return loss
