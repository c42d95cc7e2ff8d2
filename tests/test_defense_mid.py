"""MID (issue 12): VIB, mib_loss and KL_between_normals. The VIB model still learns digits, and a
decoder trained to invert its bottleneck reconstructs the private inputs worse than from a plain
model's representation of the same size."""
import pytest
import torch
from torch import nn

from aijack_lab.defense import KL_between_normals, VIB, mib_loss
from aijack_lab.defense.mid import invert_representations, train_inversion_decoder
from aijack_lab.utils import seeded

DIM_Z = 16


def train(model, x, y, epochs=12, vib=False):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 64):
            idx = perm[i : i + 64]
            optimizer.zero_grad()
            if vib:
                outputs, result = model(x[idx])
                loss = model.loss(y[idx], result)
            else:
                loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
    model.eval()


def accuracy(model, x, y):
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def test_vib_learns_and_its_bottleneck_resists_inversion(digits):
    x, y, x_test, y_test = digits
    with seeded(0):
        encoder = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, DIM_Z))
        plain = nn.Sequential(encoder, nn.Linear(DIM_Z, 10))
        vib = VIB(nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2 * DIM_Z)),
                  nn.Linear(DIM_Z, 10), dim_z=DIM_Z, num_samples=5, beta=1e-2,
                  generator=torch.Generator().manual_seed(0))
    train(plain, x, y)
    train(vib, x, y, vib=True)
    acc_plain, acc_vib = accuracy(plain, x_test, y_test), accuracy(vib, x_test, y_test)
    assert acc_vib >= 0.93 and acc_plain >= 0.93, (acc_vib, acc_plain)
    # the attacker queries the model on its own data (half the test split), inverts the private training data
    aux, private = x_test[:225], x[:300]
    dec_plain = train_inversion_decoder(encoder, aux, epochs=150, seed=0)
    _, mse_plain = invert_representations(dec_plain, encoder, private)
    dec_vib = train_inversion_decoder(vib.encode, aux, epochs=150, seed=0)
    _, mse_vib = invert_representations(dec_vib, vib.encode, private)
    assert mse_vib > 2 * mse_plain, (mse_vib, mse_plain)


def test_kl_between_normals_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu_q, mu_p = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    s_q, s_p = torch.rand(4, 3, generator=g) + 0.1, torch.rand(4, 3, generator=g) + 0.1
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu_q, s_q), torch.distributions.Normal(mu_p, s_p)).sum(1)
    assert torch.allclose(KL_between_normals(mu_q, s_q, mu_p, s_p), ref, atol=1e-5)
    assert torch.allclose(KL_between_normals(mu_q, s_q, mu_q, s_q), torch.zeros(4), atol=1e-6)


def test_mib_loss_is_cross_entropy_plus_beta_kl():
    g = torch.Generator().manual_seed(0)
    y = torch.tensor([0, 2, 1])
    logits = torch.randn(3, 4, 5, generator=g)  # batch, classes, samples
    mu, sigma = torch.randn(3, 6, generator=g), torch.rand(3, 6, generator=g) + 0.5
    loss, minus_izy, izx = mib_loss(y, logits, mu, sigma, torch.zeros_like(mu), torch.ones_like(sigma), beta=0.1)
    ce = torch.stack([nn.functional.cross_entropy(logits[:, :, s], y) for s in range(5)]).mean()
    assert torch.allclose(minus_izy, ce, atol=1e-6)
    assert torch.allclose(izx, KL_between_normals(mu, sigma, torch.zeros_like(mu), torch.ones_like(sigma)).mean())
    assert torch.allclose(loss, ce + 0.1 * izx)


def test_vib_forward_modes_and_seeded_sampling():
    def make():
        with seeded(1):
            return VIB(nn.Linear(5, 8), nn.Linear(4, 3), dim_z=4, num_samples=6, generator=torch.Generator().manual_seed(3))

    a, b = make(), make()
    x = torch.randn(2, 5)
    out, d = a(x)
    assert out.shape == (2, 3) and d["sampled_decoded_outputs"].shape == (2, 3, 6)
    assert d["sampled_encoded_features"].shape == (6, 2, 4)
    assert torch.equal(out, b(x)[0])
    a.eval()
    assert a(x).shape == (2, 3)
    assert torch.equal(a.encode(x, sample=False), d["p_z_given_x_mu"])


def test_bad_input_raises_clear_errors():
    vib = VIB(nn.Linear(5, 6), nn.Linear(4, 3), dim_z=4)
    with pytest.raises(ValueError, match=r"2 \* dim_z = 8 features"):
        vib(torch.randn(2, 5))
    with pytest.raises(ValueError, match="dim_z"):
        VIB(nn.Linear(5, 8), nn.Linear(4, 3), dim_z=0)
    with pytest.raises(ValueError, match="beta"):
        VIB(nn.Linear(5, 8), nn.Linear(4, 3), dim_z=4, beta=-1)
    with pytest.raises(TypeError, match="encoder and decoder"):
        VIB("enc", nn.Linear(4, 3), dim_z=4)
    with pytest.raises(ValueError, match="beta"):
        mib_loss(torch.tensor([0]), torch.zeros(1, 2, 1), torch.zeros(1, 2), torch.ones(1, 2),
                 torch.zeros(1, 2), torch.ones(1, 2), beta=-0.1)
    with pytest.raises(ValueError, match="mu_q and sigma_q"):
        KL_between_normals(torch.zeros(2, 3), torch.ones(2, 4), torch.zeros(2, 3), torch.ones(2, 3))
    with pytest.raises(ValueError, match="x_aux"):
        train_inversion_decoder(lambda a: a, torch.zeros(0, 3))
