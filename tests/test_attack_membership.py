"""Shadow-model membership inference (Shokri et al. 2017): AUC >= 0.6 against an overfit target."""
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from aijack_lab.attack import ShadowMembershipInferenceAttack
from aijack_lab.attack.membership import ShadowMembershipInferenceAttack as FromMembership
from aijack_lab.attack.membership import TorchClassifier
from aijack_lab.models import make_digits_model


@pytest.fixture(scope="module")
def split():
    d = load_digits()
    X, y = (d.data / 16.0).astype(np.float32), d.target
    idx = np.random.RandomState(0).permutation(len(X))
    n = 250
    mem, non, shadow = idx[:n], idx[n:2 * n], idx[2 * n:]
    x_eval = np.vstack([X[mem], X[non]])
    y_eval = np.concatenate([y[mem], y[non]])
    is_member = np.r_[np.ones(n), np.zeros(n)]
    return X[mem], y[mem], X[shadow], y[shadow], x_eval, y_eval, is_member


def _forest():
    return RandomForestClassifier(n_estimators=50, random_state=0)


def test_paper_import_paths_agree():
    assert ShadowMembershipInferenceAttack is FromMembership


def test_overfit_sklearn_target_leaks_membership(split):
    X_train, y_train, X_shadow, y_shadow, x_eval, y_eval, is_member = split
    clf = _forest().fit(X_train, y_train)
    shadow_models = [_forest() for _ in range(2)]
    attack_models = [LogisticRegression(max_iter=1000) for _ in range(10)]
    attacker = ShadowMembershipInferenceAttack(clf, shadow_models, attack_models)
    attacker.fit(X_shadow, y_shadow)
    score = attacker.attack(x_eval, y_eval, proba=True)
    auc = roc_auc_score(is_member, score)
    assert auc >= 0.6
    guess = attacker.attack(x_eval, y_eval)
    assert set(np.unique(guess)) <= {0, 1}
    assert (guess == is_member).mean() > 0.6
    # predict/predict_proba on outputs the attacker already has agree with attack()
    pred = clf.predict_proba(x_eval)
    np.testing.assert_allclose(attacker.predict_proba(pred, y_eval), score)
    np.testing.assert_array_equal(attacker.predict(pred, y_eval), guess)


def test_one_shared_attack_model(split):
    X_train, y_train, X_shadow, y_shadow, x_eval, y_eval, is_member = split
    clf = _forest().fit(X_train, y_train)
    attacker = ShadowMembershipInferenceAttack(clf, [_forest(), _forest()], [_forest()])
    attacker.fit(X_shadow, y_shadow)
    assert roc_auc_score(is_member, attacker.attack(x_eval, y_eval, proba=True)) >= 0.6


def _dp_sgd_mlp(X_train, y_train, sigma):
    """The digits MLP trained with DP-SGD as in the paper's Code S-9; returns (model, epsilon at δ=1e-5)."""
    import torch
    from torch import nn, optim
    from torch.utils.data import TensorDataset

    from aijack_lab.defense import DPSGDManager, GeneralMomentAccountant

    model = make_digits_model("mlp", seed=0, hidden=64)
    accountant = GeneralMomentAccountant(noise_type="Gaussian", backend="cpp")
    dataset = TensorDataset(torch.from_numpy(X_train), torch.from_numpy(y_train))
    manager = DPSGDManager(accountant, optim.SGD, l2_norm_clip=1.0, dataset=dataset, lot_size=50, seed=0)
    accountant.reset_step_info()
    dpoptimizer_cls, lot_loader, batch_loader = manager.privatize(noise_multiplier=sigma)
    optimizer = dpoptimizer_cls(model.parameters(), lr=0.5)
    criterion = nn.CrossEntropyLoss()
    for _ in range(30):
        for X_lot, y_lot in lot_loader(optimizer):
            for X_batch, y_batch in batch_loader(TensorDataset(X_lot, y_lot)):
                optimizer.zero_grad()
                criterion(model(X_batch), y_batch).backward()
                optimizer.step()
    return model, accountant.get_epsilon(1e-5)


@pytest.mark.slow
def test_overfit_torch_target_leaks_and_dp_sgd_closes_the_leak(split):
    X_train, y_train, X_shadow, y_shadow, x_eval, y_eval, is_member = split
    train = dict(epochs=400, lr=1e-2, batch_size=len(X_train), seed=0)
    target = TorchClassifier(make_digits_model("mlp", seed=0, hidden=64), **train).fit(X_train, y_train)
    assert (target.predict_proba(X_train).argmax(1) == y_train).mean() == 1.0  # overfit
    shadows = [make_digits_model("mlp", seed=s, hidden=64) for s in (1, 2)]
    attack_models = [RandomForestClassifier(50, min_samples_leaf=5, random_state=0) for _ in range(10)]
    attacker = ShadowMembershipInferenceAttack(target.model, shadows, attack_models, shadow_train_kwargs=train)
    attacker.fit(X_shadow[:1000], y_shadow[:1000])
    auc_plain = roc_auc_score(is_member, attacker.attack(x_eval, y_eval, proba=True))
    assert auc_plain >= 0.6

    dp_model, epsilon = _dp_sgd_mlp(X_train, y_train, sigma=2.0)
    dp_target = TorchClassifier(dp_model)
    assert epsilon < 10
    assert (dp_target.predict_proba(x_eval[len(X_train):]).argmax(1) == y_eval[len(X_train):]).mean() > 0.6  # still useful
    auc_dp = roc_auc_score(is_member, attacker.predict_proba(dp_target.predict_proba(x_eval), y_eval))
    assert auc_dp < auc_plain - 0.08
    assert abs(auc_dp - 0.5) < 0.08


def test_torch_classifier_adapter():
    import torch

    from aijack_lab.datasets import load_digits as load

    x, y, _, _ = load()
    clf = TorchClassifier(make_digits_model("mlp", seed=0), epochs=3, seed=0).fit(x.reshape(len(x), -1).numpy()[:300], y.numpy()[:300])
    p = clf.predict_proba(x.reshape(len(x), -1).numpy()[:5])
    assert p.shape == (5, 10) and np.allclose(p.sum(1), 1)
    cnn = TorchClassifier(make_digits_model("cnn", seed=0), input_shape=(1, 8, 8), epochs=1)
    assert cnn.fit(x.reshape(len(x), -1).numpy()[:100], y.numpy()[:100]).predict_proba(x[:2].reshape(2, -1).numpy()).shape == (2, 10)
    with pytest.raises(TypeError, match="model"):
        TorchClassifier(torch.zeros(3))


def test_bad_input(split):
    X_train, y_train, X_shadow, y_shadow, x_eval, y_eval, _ = split
    clf = _forest().fit(X_train, y_train)
    lr10 = [LogisticRegression() for _ in range(10)]
    with pytest.raises(ValueError, match="not fitted"):
        ShadowMembershipInferenceAttack(_forest(), [_forest()], lr10)
    with pytest.raises(TypeError, match="shadow_models\\[0\\]"):
        ShadowMembershipInferenceAttack(clf, [object()], lr10)
    with pytest.raises(TypeError, match="attack_models\\[0\\]"):
        ShadowMembershipInferenceAttack(clf, [_forest()], [object()])
    with pytest.raises(ValueError, match="shadow_models"):
        ShadowMembershipInferenceAttack(clf, [], lr10)
    att = ShadowMembershipInferenceAttack(clf, [_forest()], lr10[:3])
    with pytest.raises(ValueError, match="attack_models"):
        att.fit(X_shadow, y_shadow)
    att = ShadowMembershipInferenceAttack(clf, [_forest()], lr10)
    with pytest.raises(ValueError, match="not fitted"):
        att.attack(x_eval, y_eval)
    with pytest.raises(ValueError, match="y_shadow"):
        att.fit(X_shadow, y_shadow[:-1])
    att.fit(X_shadow, y_shadow)
    with pytest.raises(ValueError, match="label"):
        att.attack(x_eval[:3], np.array([0, 1, 11]))
    with pytest.raises(ValueError, match="pred"):
        att.predict(np.ones((3, 4)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="label"):
        att.predict_proba(clf.predict_proba(x_eval[:3]), np.array([0, 1]))
