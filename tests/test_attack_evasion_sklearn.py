"""Gradient-descent evasion (Biggio et al. 2013): positive samples are driven below the decision boundary."""
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from aijack_lab.attack import Evasion_attack_sklearn
from aijack_lab.attack.evasion import Evasion_attack_sklearn as FromEvasion
from aijack_lab.attack.evasion.evasion_attack import project_l1_ball


@pytest.fixture(scope="module")
def data():
    d = load_digits()
    m = (d.target == 3) | (d.target == 7)
    X, y = d.data[m] / 16.0, (d.target[m] == 7).astype(int)
    return X[:200], y[:200], X[200:], y[200:]


def _positives(clf, X, n=10):
    return X[clf.decision_function(X) > 0][:n]


def test_paper_import_paths_agree():
    assert Evasion_attack_sklearn is FromEvasion


@pytest.mark.parametrize("make", [lambda: SVC(kernel="rbf"), lambda: SVC(kernel="linear"),
                                  lambda: LogisticRegression(max_iter=1000)], ids=["rbf", "linear", "logreg"])
def test_decision_of_positive_samples_goes_below_zero(data, make):
    Xtr, ytr, Xte, _ = data
    clf = make().fit(Xtr, ytr)
    x0 = _positives(clf, Xte)
    attacker = Evasion_attack_sklearn(clf, Xtr[ytr == 0], bounds=(0.0, 1.0))
    malicious, log = attacker.attack(x0)
    assert np.all(log[0] > 0)
    assert np.all(clf.decision_function(malicious) < 0)
    np.testing.assert_allclose(log[-1], clf.decision_function(malicious))
    assert malicious.min() >= 0.0 and malicious.max() <= 1.0


def test_single_sample_as_in_the_paper(data):
    Xtr, ytr, Xte, _ = data
    clf = SVC().fit(Xtr, ytr)
    initial_data_positive = Xtr[ytr == 0]
    initial_data_negative = _positives(clf, Xte, 1)[0]
    attacker = Evasion_attack_sklearn(clf, initial_data_positive)
    malicious_data, log = attacker.attack(initial_data_negative)
    assert malicious_data.shape == initial_data_negative.shape
    assert isinstance(log[0], float) and log[0] > 0 > log[-1]
    assert len(attacker.path) == len(log)


@pytest.mark.parametrize("distance", ["L1", "L2"])
def test_distance_bound_holds(data, distance):
    Xtr, ytr, Xte, _ = data
    clf = SVC().fit(Xtr, ytr)
    x0 = _positives(clf, Xte)
    dmax = 2.0
    attacker = Evasion_attack_sklearn(clf, Xtr[ytr == 0], dmax=dmax, distance=distance, max_iter=60)
    malicious, log = attacker.attack(x0)
    ord_ = 1 if distance == "L1" else 2
    assert np.all(np.linalg.norm(malicious - x0, ord=ord_, axis=1) <= dmax + 1e-9)
    assert np.all(log[-1] < log[0])  # it still lowers the decision value inside the bound


def test_mimicry_term_keeps_the_point_in_dense_negative_regions(data):
    Xtr, ytr, Xte, _ = data
    clf = SVC(kernel="linear").fit(Xtr, ytr)
    x0 = _positives(clf, Xte)
    plain = Evasion_attack_sklearn(clf, Xtr[ytr == 0], lam=0.0, bounds=(0, 1))
    mimic = Evasion_attack_sklearn(clf, Xtr[ytr == 0], lam=10.0, bounds=(0, 1))
    x_plain, _ = plain.attack(x0)
    x_mimic, log = mimic.attack(x0)
    assert np.all(log[-1] < 0)
    assert mimic.density(x_mimic).mean() > 1.5 * plain.density(x_plain).mean()


def test_analytic_gradient_matches_finite_differences(data):
    Xtr, ytr, Xte, _ = data
    for kernel in ("rbf", "poly", "sigmoid", "linear"):
        clf = SVC(kernel=kernel).fit(Xtr, ytr)
        att = Evasion_attack_sklearn(clf, Xtr[ytr == 0])
        x = Xte[:3]
        np.testing.assert_allclose(att._grad_g(x), att._finite_difference_gradient(x), rtol=1e-4, atol=1e-5)


def test_other_models_with_decision_function_use_finite_differences(data):
    Xtr, ytr, Xte, _ = data
    clf = make_pipeline(StandardScaler(), SVC()).fit(Xtr, ytr)
    x0 = _positives(clf, Xte, 3)
    malicious, log = Evasion_attack_sklearn(clf, Xtr[ytr == 0], max_iter=40, t=0.2).attack(x0)
    assert np.all(log[-1] < 0)


def test_project_l1_ball():
    rng = np.random.RandomState(0)
    for _ in range(20):
        v = rng.randn(10) * 3
        p = project_l1_ball(v, 2.0)
        assert np.abs(p).sum() <= 2.0 + 1e-9
        # optimality: no point of the ball on a random direction is closer
        for _ in range(20):
            q = project_l1_ball(p + 0.1 * rng.randn(10), 2.0)
            assert np.linalg.norm(v - p) <= np.linalg.norm(v - q) + 1e-9
    v = np.array([0.5, -0.2])
    assert np.array_equal(project_l1_ball(v, 1.0), v)


def test_bad_input(data):
    Xtr, ytr, Xte, _ = data
    clf = SVC().fit(Xtr, ytr)
    neg = Xtr[ytr == 0]
    with pytest.raises(TypeError, match="decision_function"):
        Evasion_attack_sklearn(KNeighborsClassifier().fit(Xtr, ytr), neg)
    with pytest.raises(ValueError, match="not fitted"):
        Evasion_attack_sklearn(SVC(), neg)
    multi = SVC().fit(Xtr, np.arange(len(Xtr)) % 3)
    with pytest.raises(ValueError, match="binary"):
        Evasion_attack_sklearn(multi, neg)
    with pytest.raises(ValueError, match="X_minus_1"):
        Evasion_attack_sklearn(clf, neg[:, :10])
    with pytest.raises(ValueError, match="distance"):
        Evasion_attack_sklearn(clf, neg, distance="L3")
    with pytest.raises(ValueError, match="kde_type"):
        Evasion_attack_sklearn(clf, neg, kde_type="cosine")
    with pytest.raises(ValueError, match="t must"):
        Evasion_attack_sklearn(clf, neg, t=-1.0)
    with pytest.raises(ValueError, match="dmax"):
        Evasion_attack_sklearn(clf, neg, dmax=0.0)
    with pytest.raises(ValueError, match="bounds"):
        Evasion_attack_sklearn(clf, neg, bounds=(1.0, 0.0))
    att = Evasion_attack_sklearn(clf, neg)
    with pytest.raises(ValueError, match="initial_data"):
        att.attack(Xte[0, :5])
    with pytest.raises(ValueError, match="initial_data"):
        att.attack(np.full(64, np.nan))
