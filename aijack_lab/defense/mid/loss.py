"""The variational information-bottleneck loss (Alemi et al., ICLR 2017) that MID minimises.

Reference: Wang, Kurz, Shen, Cheng, Zhang, Wang. Improving Robustness to Model Inversion Attacks
via Mutual Information Regularization (MID). AAAI 2021.

``loss = E[-log q(y | z)] + β · KL(p(z | x) || r(z))`` bounds ``-I(Z; Y) + β · I(Z; X)`` from above:
the first term keeps what the label needs, the second squeezes out the rest of the input.
"""
import torch
import torch.nn.functional as F


def KL_between_normals(mu_q: torch.Tensor, sigma_q: torch.Tensor, mu_p: torch.Tensor, sigma_p: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu_q, diag sigma_q²) || N(mu_p, diag sigma_p²))`` per row (shape: batch).

    All four are (batch, k) tensors (``mu_p``/``sigma_p`` may broadcast); sigmas are standard
    deviations and must be positive.
    """
    for name, t in (("mu_q", mu_q), ("sigma_q", sigma_q), ("mu_p", mu_p), ("sigma_p", sigma_p)):
        if not torch.is_tensor(t):
            raise TypeError(f"{name} must be a tensor, got {type(t).__name__}")
    if mu_q.dim() != 2:
        raise ValueError(f"mu_q must be 2-D (batch, k), got shape {tuple(mu_q.shape)}")
    if mu_q.shape != sigma_q.shape:
        raise ValueError(f"mu_q and sigma_q must have the same shape, got {tuple(mu_q.shape)} and {tuple(sigma_q.shape)}")
    var_q = sigma_q.clamp_min(1e-8) ** 2
    var_p = sigma_p.clamp_min(1e-8) ** 2
    k = mu_q.shape[1]
    trace = (var_q / var_p).sum(dim=1)
    mahalanobis = ((mu_p - mu_q) ** 2 / var_p).sum(dim=1)
    logdet = torch.log(var_p).expand_as(var_q).sum(dim=1) - torch.log(var_q).sum(dim=1)
    return 0.5 * (trace + mahalanobis - k + logdet)


def mib_loss(y, sampled_y_pred, p_z_given_x_mu, p_z_given_x_sigma, approximated_z_mean, approximated_z_sigma, beta=1e-3):
    """MID's loss on a batch; returns ``(loss, minus_I_ZY_bound, I_ZX_bound)``.

    Args:
        y: labels (batch,).
        sampled_y_pred: logits for each of S samples of z, shaped (batch, classes, S).
        p_z_given_x_mu, p_z_given_x_sigma: the encoder's Gaussian (batch, k).
        approximated_z_mean, approximated_z_sigma: the prior r(z) (usually N(0, I)).
        beta: weight of the information term ``I(Z; X)`` (β ≥ 0).
    """
    if not isinstance(beta, (int, float)) or isinstance(beta, bool) or beta < 0:
        raise ValueError(f"beta must be a number >= 0, got {beta!r}")
    if sampled_y_pred.dim() != 3 or sampled_y_pred.shape[0] != y.shape[0]:
        raise ValueError("sampled_y_pred must be shaped (batch, classes, num_samples) with the batch of y, "
                         f"got {tuple(sampled_y_pred.shape)} for {tuple(y.shape)} labels")
    i_zx = KL_between_normals(p_z_given_x_mu, p_z_given_x_sigma, approximated_z_mean, approximated_z_sigma).mean()
    targets = y[:, None].expand(-1, sampled_y_pred.shape[2])
    minus_i_zy = F.cross_entropy(sampled_y_pred, targets, reduction="none").mean()
    return minus_i_zy + beta * i_zx, minus_i_zy, i_zx
