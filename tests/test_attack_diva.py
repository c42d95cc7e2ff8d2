"""DIVA: the edge (int8 + pruned) model errs while the original stays right, far more often than under FGSM."""
import pytest
import torch
from torch import nn

from aijack_lab.attack import DIVAWhiteBoxAttacker, FGSMAttacker
from aijack_lab.attack.evasion import DIVAWhiteBoxAttacker as FromEvasion
from aijack_lab.attack.evasion import evasion_rates, make_edge_model
from aijack_lab.models import train_digits_model


@pytest.fixture(scope="module")
def models():
    model = train_digits_model("cnn", epochs=10, seed=0)
    return model, make_edge_model(model, bits=8, prune_ratio=0.5)


def test_paper_import_paths_agree():
    assert DIVAWhiteBoxAttacker is FromEvasion


def test_diva_edge_only_errors_well_above_fgsm(models, digits):
    model, edge = models
    _, _, x, y = digits
    before = evasion_rates(model, edge, x, y)
    attacker = DIVAWhiteBoxAttacker(model, edge, c=1.0, num_itr=50, eps=0.2, lam=0.01)
    x_adv = attacker.attack((x, y))
    diva = evasion_rates(model, edge, x_adv, y)
    fgsm = evasion_rates(model, edge, FGSMAttacker(model, nn.CrossEntropyLoss(), eps=0.2).attack((x, y)), y)
    assert diva["edge_only"] >= 0.3
    assert diva["edge_only"] >= fgsm["edge_only"] + 0.2
    assert diva["edge_only"] >= before["edge_only"] + 0.2
    assert diva["original_accuracy"] >= before["original_accuracy"] - 0.02  # the original still answers right
    assert (x_adv - x).abs().max().item() <= 0.2 + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert attacker.log[-1] > attacker.log[0]


def test_make_edge_model_quantizes_and_prunes_a_copy(models):
    model, edge = models
    orig = {k: v.clone() for k, v in model.state_dict().items()}
    for name, p in edge.named_parameters():
        if name.endswith("weight"):
            assert torch.unique(p).numel() <= 256
            assert (p == 0).float().mean().item() >= 0.49
    for k, v in model.state_dict().items():
        assert torch.equal(v, orig[k])
    assert any(p.requires_grad for p in model.parameters())


def test_simulated_int8_edge_equals_torch_dynamic_quantization(digits):
    import warnings

    from aijack_lab.utils import predict

    _, _, x, y = digits
    mlp = train_digits_model("mlp", epochs=10, seed=0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            real = torch.ao.quantization.quantize_dynamic(mlp, {nn.Linear}, dtype=torch.qint8)
        real_out = predict(real, x)
    except (RuntimeError, AttributeError) as exc:  # no quantized engine on this platform
        pytest.skip(f"torch dynamic quantization unavailable: {exc}")
    if torch.backends.quantized.engine not in ("x86", "fbgemm"):
        pytest.skip("reduce_range=True matches the x86/fbgemm engine only")
    simulated = make_edge_model(mlp, bits=8)
    gap_sim = (predict(simulated, x) - real_out).abs().max().item()
    gap_float = (predict(mlp, x) - real_out).abs().max().item()
    assert gap_sim < 1e-3 and gap_sim < 0.1 * gap_float
    assert torch.equal(predict(simulated, x).argmax(1), real_out.argmax(1))
    # and unlike the real quantized model, the simulation passes gradients
    xg = x[:4].clone().requires_grad_(True)
    simulated(xg).sum().backward()
    assert xg.grad.abs().sum() > 0


class _NoGrad(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        with torch.no_grad():
            return self.m(x)


def test_bad_input(models, digits):
    model, edge = models
    _, _, x, y = digits
    with pytest.raises(TypeError, match="target_model_on_edge"):
        DIVAWhiteBoxAttacker(model, lambda z: z)
    with pytest.raises(TypeError, match="target_model"):
        DIVAWhiteBoxAttacker(None, edge)
    with pytest.raises(ValueError, match="eps"):
        DIVAWhiteBoxAttacker(model, edge, eps=-1)
    with pytest.raises(ValueError, match="num_itr"):
        DIVAWhiteBoxAttacker(model, edge, num_itr=0)
    with pytest.raises(ValueError, match="prune_ratio"):
        make_edge_model(model, prune_ratio=1.0)
    with pytest.raises(ValueError, match="bits"):
        make_edge_model(model, bits=1)
    with pytest.raises(TypeError, match="differentiable"):
        DIVAWhiteBoxAttacker(model, _NoGrad(edge), num_itr=1).attack((x[:2], y[:2]))
    with pytest.raises(ValueError, match="rows"):
        DIVAWhiteBoxAttacker(model, edge, num_itr=1).attack((x[:3], y[:2]))
    with pytest.raises(ValueError, match="labels"):
        DIVAWhiteBoxAttacker(model, edge, num_itr=1).attack((x[:2], torch.tensor([0, 12])))
