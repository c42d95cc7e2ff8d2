"""SplitNN learns digits with only cut-layer tensors crossing; the norm attack leaks the labels."""
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from aijack_lab.attack import NormAttackSplitNNManager
from aijack_lab.attack.labelleakage import norm_leak_auc
from aijack_lab.collaborative import SplitNNAPI, SplitNNClient
from aijack_lab.collaborative.splitnn import SplitNNAPI as FromModule
from aijack_lab.models import split_digits_mlp
from aijack_lab.utils import make_generator


def make(digits, cut=1, num_classes=10, labels=None, lr=5e-3, epochs=5, api_cls=SplitNNAPI, **kw):
    x_tr, y_tr, x_te, y_te = digits
    if labels is not None:
        y_tr, y_te = labels
    bottom, top = split_digits_mlp(cut, num_classes, seed=0)
    clients = [SplitNNClient(bottom, user_id=0), SplitNNClient(top, user_id=1)]
    optimizers = [torch.optim.Adam(c.model.parameters(), lr=lr) for c in clients]
    loader = DataLoader(TensorDataset(x_tr, y_tr), batch_size=32, shuffle=True, generator=make_generator(0))
    return api_cls(clients, optimizers, loader, nn.CrossEntropyLoss(), epochs, validation_dataloader=(x_te, y_te), **kw)


def test_two_parties_reach_90_percent_and_only_cut_tensors_cross(digits):
    assert SplitNNAPI is FromModule
    crossings = []
    api = make(digits, on_transfer=lambda kind, s, r, t: crossings.append((kind, s, r, t.shape[1:], t.requires_grad)))
    history = api.run()
    assert history[-1]["accuracy"] >= 0.90
    assert {(k, s, r) for k, s, r, _, _ in crossings} == {("activation", 0, 1), ("gradient", 1, 0)}
    assert {shape for *_, shape, _ in crossings} == {torch.Size([32])}  # the cut layer, nothing else
    assert not any(g for *_, g in crossings)  # detached copies: no graph crosses


def test_cut_after_two_layers_also_learns(digits):
    crossings = []
    api = make(digits, cut=2, epochs=6, on_transfer=lambda kind, s, r, t: crossings.append(t.shape[1:]))
    assert api.run()[-1]["accuracy"] >= 0.85
    assert set(crossings) == {torch.Size([32])}


def test_norm_attack_leaks_imbalanced_binary_labels(digits):
    _, y_tr, _, y_te = digits
    labels = ((y_tr == 0).long(), (y_te == 0).long())  # one-vs-rest: 10% positives
    API = NormAttackSplitNNManager(nn.CrossEntropyLoss(), device="cpu").attach(SplitNNAPI)
    api = make(digits, num_classes=2, labels=labels, lr=1e-2, epochs=3, api_cls=API)
    history = api.run()
    assert history[-1]["accuracy"] > 0.95  # the model really learns the task
    assert len(api.leak_auc_history) == 3
    assert api.leak_auc_history[0] >= 0.9
    assert all(h["leak_auc"] == a for h, a in zip(history, api.leak_auc_history))
    scores, y = api.attack(DataLoader(TensorDataset(digits[2], labels[1]), batch_size=64))
    assert norm_leak_auc(scores, y == 1) >= 0.9


def test_norm_auc_is_chance_on_balanced_random_labels(digits):
    """Control: with random balanced labels there is nothing to leak."""
    gen = torch.Generator().manual_seed(0)
    rnd_tr = torch.randint(0, 2, (len(digits[0]),), generator=gen)
    rnd_te = torch.randint(0, 2, (len(digits[2]),), generator=gen)
    API = NormAttackSplitNNManager(nn.CrossEntropyLoss()).attach(SplitNNAPI)
    api = make(digits, num_classes=2, labels=(rnd_tr, rnd_te), lr=1e-2, epochs=1, api_cls=API)
    api.run()
    assert abs(api.leak_auc_history[0] - 0.5) < 0.1


def test_bad_input(digits):
    bottom, top = split_digits_mlp()
    clients = [SplitNNClient(bottom), SplitNNClient(top, user_id=1)]
    opt = [torch.optim.SGD(c.model.parameters(), lr=0.1) for c in clients]
    with pytest.raises(ValueError, match="two parties"):
        SplitNNAPI(clients[:1], opt[:1], [], nn.CrossEntropyLoss())
    with pytest.raises(ValueError, match="optimizers"):
        SplitNNAPI(clients, opt[:1], [], nn.CrossEntropyLoss())
    with pytest.raises(ValueError, match="num_epoch"):
        SplitNNAPI(clients, opt, [], nn.CrossEntropyLoss(), num_epoch=0)
    with pytest.raises(ValueError, match="cut"):
        split_digits_mlp(cut=3)
    clients[0].upload(digits[0][:4])
    with pytest.raises(ValueError, match="gradient of shape"):
        clients[0].download(torch.zeros(5, 32))
    with pytest.raises(ValueError, match="both labels"):
        norm_leak_auc([0.1, 0.2], [1, 1])
