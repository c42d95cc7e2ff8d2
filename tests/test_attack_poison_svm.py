"""SVM poisoning (Biggio et al. 2012): one optimised point hurts validation accuracy more than a random flipped one."""
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC

from aijack_lab.attack import Poison_attack_sklearn
from aijack_lab.attack.poison import Poison_attack_sklearn as FromPoison


@pytest.fixture(scope="module")
def data():
    d = load_digits()
    m = (d.target == 3) | (d.target == 8)
    X, y = d.data[m] / 16.0, (d.target[m] == 8).astype(int)
    idx = np.random.RandomState(0).permutation(len(X))
    X, y = X[idx], y[idx]
    return X[:50], y[:50], X[50:200], y[50:200]


def test_paper_import_paths_agree():
    assert Poison_attack_sklearn is FromPoison


def test_optimised_point_beats_random_flipped_points(data):
    X_train, y_train, X_valid, y_valid = data
    clf = SVC(kernel="linear", C=1.0)
    attacker = Poison_attack_sklearn(clf, X_train, y_train, t=0.5, bounds=(0.0, 1.0))
    flipped = X_valid[y_valid == 1]  # class-1 digits, labelled 0
    random_acc = np.mean([attacker.fit_poisoned(x, 0).score(X_valid, y_valid) for x in flipped])
    initial_data = flipped[0]
    malicious_data, log = attacker.attack(initial_data, 0, X_valid, y_valid, num_iterations=40)
    poisoned_acc = attacker.fit_poisoned(attacker.best_xc, 0).score(X_valid, y_valid)
    clean_acc = SVC(kernel="linear").fit(X_train, y_train).score(X_valid, y_valid)
    assert poisoned_acc < random_acc - 0.02
    assert poisoned_acc < log[0] and poisoned_acc < clean_acc
    assert max(attacker.loss_log) > attacker.loss_log[0]  # gradient ascent raised the validation loss
    assert malicious_data.shape == initial_data.shape
    assert malicious_data.min() >= 0 and malicious_data.max() <= 1
    assert len(log) == len(attacker.loss_log) == len(attacker.path)
    np.testing.assert_array_equal(clf.get_params(), SVC(kernel="linear", C=1.0).get_params())  # clf untouched


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_kkt_gradient_matches_finite_differences(data, kernel):
    X_train, y_train, X_valid, y_valid = data
    # a tight solver tolerance, so that the finite differences see the exact SVM solution
    att = Poison_attack_sklearn(SVC(kernel=kernel, tol=1e-10), X_train, y_train)
    yv = np.where(y_valid == 1, 1.0, -1.0)
    xc = X_valid[y_valid == 1][0]
    model = att.fit_poisoned(xc, 0)
    grad = att._gradient(model, xc, -1.0, X_valid, yv)
    e = 1e-3
    fd = np.array([
        (att._hinge(att.fit_poisoned(xc + e * np.eye(64)[j], 0), X_valid, yv)
         - att._hinge(att.fit_poisoned(xc - e * np.eye(64)[j], 0), X_valid, yv)) / (2 * e)
        for j in range(64)
    ])
    cos = grad @ fd / (np.linalg.norm(grad) * np.linalg.norm(fd))
    assert cos > 0.999


def test_bad_input(data):
    X_train, y_train, X_valid, y_valid = data
    with pytest.raises(TypeError, match="clf"):
        Poison_attack_sklearn(LogisticRegression(), X_train, y_train)
    with pytest.raises(ValueError, match="kernel"):
        Poison_attack_sklearn(SVC(kernel="precomputed"), X_train, y_train)
    with pytest.raises(ValueError, match="two classes"):
        Poison_attack_sklearn(SVC(), X_train, np.arange(len(y_train)) % 3)
    with pytest.raises(ValueError, match="y_train"):
        Poison_attack_sklearn(SVC(), X_train, y_train[:-1])
    with pytest.raises(ValueError, match="t must"):
        Poison_attack_sklearn(SVC(), X_train, y_train, t=0)
    att = Poison_attack_sklearn(SVC(kernel="linear"), X_train, y_train)
    with pytest.raises(ValueError, match="yc"):
        att.attack(X_valid[0], 5, X_valid, y_valid, num_iterations=1)
    with pytest.raises(ValueError, match="y_valid"):
        att.attack(X_valid[0], 0, X_valid, y_valid + 2, num_iterations=1)
    with pytest.raises(ValueError, match="xc"):
        att.attack(X_valid[0, :10], 0, X_valid, y_valid, num_iterations=1)
    with pytest.raises(ValueError, match="X_valid"):
        att.attack(X_valid[0], 0, X_valid[:, :10], y_valid, num_iterations=1)
    with pytest.raises(ValueError, match="num_iterations"):
        att.attack(X_valid[0], 0, X_valid, y_valid, num_iterations=-1)
