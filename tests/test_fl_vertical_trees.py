"""Gradient-boosted trees over vertically split data: XGBoostClient/XGBoostClassifierAPI (C++ core),
SecureBoost (Paillier-encrypted gradients, same trees), bad input."""
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.model_selection import train_test_split

from aijack_lab.collaborative import (
    SecureBoostClassifierAPI,
    SecureBoostClient,
    XGBoostClassifierAPI,
    XGBoostClient,
)

COLS3 = [list(range(0, 10)), list(range(10, 20)), list(range(20, 30))]


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)


def _parties(X, cols, cls=XGBoostClient, bins=32, **kw):
    return [cls(X[:, c], 2, c, i, 1, 1.0, bins, False, 0, **kw) for i, c in enumerate(cols)]


def test_positional_order_and_keywords_match_the_published_api(cancer):
    Xtr, _, ytr, _ = cancer
    p = XGBoostClient(Xtr[:, :3], 2, [0, 1, 2], 0, 1, 1.0, 16, False, 0)
    q = XGBoostClient(x=Xtr[:, :3], num_classes=2, feature_ids=[0, 1, 2], party_id=0, min_leaf=1,
                      subsample_cols=1.0, num_percentile_bin=16, use_missing_value=False, seed=0)
    a = XGBoostClassifierAPI(2, 3, depth=2).fit([p], ytr)
    b = XGBoostClassifierAPI(2, 3, depth=2).fit([q], ytr)
    assert a.trees == b.trees
    # paper Code S-7 with defaults
    clf = XGBoostClassifierAPI()
    clf.fit([XGBoostClient(Xtr)], ytr.tolist())
    assert clf.predict_proba(Xtr).shape == (len(ytr), 2)


def test_accuracy_within_two_points_of_xgboost(cancer):
    xgb = pytest.importorskip("xgboost")
    Xtr, Xte, ytr, yte = cancer
    clf = XGBoostClassifierAPI(2, boosting_rounds=20, depth=3, learning_rate=0.3, init_value=0.0, min_child_weight=1.0)
    clf.fit(_parties(Xtr, COLS3), ytr)
    ours = (clf.predict(Xte) == yte).mean()
    ref = xgb.XGBClassifier(n_estimators=20, max_depth=3, learning_rate=0.3, tree_method="hist", max_bin=32,
                            n_jobs=1, base_score=0.5).fit(Xtr, ytr)
    theirs = (ref.predict(Xte) == yte).mean()
    assert ours >= theirs - 0.02, (ours, theirs)
    assert ours > 0.93
    # every tree has depth <= 3 and splits owned by all three parties somewhere in the ensemble
    owners = {n["party_id"] for t in clf.trees for n in t if not n["leaf"]}
    assert max(n["depth"] for t in clf.trees for n in t) <= 3
    assert len(owners) >= 2
    # training loss decreases
    assert clf.logging_loss[0] == pytest.approx(np.log(2))
    assert all(b < a for a, b in zip(clf.logging_loss, clf.logging_loss[1:]))


def test_splitting_columns_over_parties_does_not_change_the_model(cancer):
    Xtr, Xte, ytr, _ = cancer
    one = XGBoostClassifierAPI(2, 5, depth=3).fit(_parties(Xtr, [list(range(30))]), ytr)
    three = XGBoostClassifierAPI(2, 5, depth=3).fit(_parties(Xtr, COLS3), ytr)
    np.testing.assert_allclose(one.predict_proba(Xte), three.predict_proba(Xte))
    d1 = [[(n.get("feature_id"), n.get("threshold")) for n in t] for t in one.describe_trees()]
    d3 = [[(n.get("feature_id"), n.get("threshold")) for n in t] for t in three.describe_trees()]
    assert d1 == d3
    # each threshold lives only in its owner's lookup table
    for t in three.describe_trees():
        for n in t:
            if not n["leaf"]:
                assert n["feature_id"] in COLS3[n["party_id"]]


def test_stump_matches_the_second_order_gain_by_hand():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    y = (x[:, 0] + 0.3 * rng.normal(size=200) > 0.2).astype(int)
    lam, gamma = 2.0, 0.1
    clf = XGBoostClassifierAPI(2, 1, lam=lam, gamma=gamma, depth=1, init_value=0.0, learning_rate=1.0)
    party = XGBoostClient(x, 2, [0, 1], 0, 1, 1.0, 16, False, 0)
    clf.fit([party], y)
    g, h = 0.5 - y, np.full(200, 0.25)  # p = 0.5 at margin 0
    best = (-np.inf, None)
    for f, cuts in enumerate(party._party.cuts):
        for c in cuts:
            L = x[:, f] <= c
            gain = 0.5 * (g[L].sum() ** 2 / (h[L].sum() + lam) + g[~L].sum() ** 2 / (h[~L].sum() + lam)
                          - g.sum() ** 2 / (h.sum() + lam)) - gamma
            if gain > best[0] + 1e-12:
                best = (gain, (f, c, L))
    root, left, right = clf.describe_trees()[0]
    f, c, L = best[1]
    assert (root["feature_id"], root["threshold"]) == (f, c)
    assert root["gain"] == pytest.approx(best[0], rel=1e-6)
    assert left["weight"][0] == pytest.approx(-g[L].sum() / (h[L].sum() + lam), rel=1e-6)
    assert right["weight"][0] == pytest.approx(-g[~L].sum() / (h[~L].sum() + lam), rel=1e-6)
    # a gamma above every gain leaves a single leaf
    big = XGBoostClassifierAPI(2, 1, gamma=1e6, depth=3).fit([XGBoostClient(x)], y)
    assert len(big.trees[0]) == 1


def test_constraints_depth_min_leaf_min_child_weight_subsample(cancer):
    Xtr, _, ytr, _ = cancer
    clf = XGBoostClassifierAPI(2, 3, depth=4, min_leaf=1).fit(
        [XGBoostClient(Xtr, 2, None, 0, 40, 1.0, 32, False, 0)], ytr)
    assert min(n["n"] for t in clf.trees for n in t) >= 40
    clf = XGBoostClassifierAPI(2, 3, depth=4, min_child_weight=5.0).fit([XGBoostClient(Xtr)], ytr)
    assert all(n["leaf"] or n["n"] >= 2 for t in clf.trees for n in t)
    sub = XGBoostClassifierAPI(2, 6, depth=3).fit([XGBoostClient(Xtr, 2, None, 0, 1, 0.1, 32, False, 7)], ytr)
    per_tree = [{n["feature_id"] for n in t if not n["leaf"]} for t in sub.describe_trees()]
    assert all(len(s) <= 3 for s in per_tree)  # round(0.1 * 30) columns offered per tree
    assert len(set().union(*per_tree)) > 3  # different columns in different trees
    # completelly_secure_round: the first trees use only the active party's columns
    csr = XGBoostClassifierAPI(2, 4, depth=2, completelly_secure_round=2).fit(_parties(Xtr, COLS3), ytr)
    for t in csr.trees[:2]:
        assert {n["party_id"] for n in t if not n["leaf"]} <= {0}


def test_threads_give_identical_trees():
    # 8000 rows x 30 columns: enough work per node for the core to start its threads
    rng = np.random.default_rng(0)
    X = rng.normal(size=(8000, 30))
    y = (X[:, 0] + X[:, 12] * X[:, 25] + 0.5 * rng.normal(size=8000) > 0).astype(int)
    a = XGBoostClassifierAPI(2, 3, depth=4, n_job=1).fit(_parties(X, COLS3), y)
    b = XGBoostClassifierAPI(2, 3, depth=4, n_job=2).fit(_parties(X, COLS3), y)
    assert a.trees == b.trees
    assert {n["party_id"] for t in a.trees for n in t if not n["leaf"]} >= {0, 1, 2}


def test_multiclass_softmax():
    X, y = load_iris(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    ps = [XGBoostClient(Xtr[:, :2], 3, [0, 1], 0), XGBoostClient(Xtr[:, 2:], 3, [2, 3], 1)]
    clf = XGBoostClassifierAPI(3, 10, depth=3, learning_rate=0.3).fit(ps, ytr)
    proba = clf.predict_proba(Xte)
    assert proba.shape == (len(yte), 3)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    assert (proba.argmax(1) == yte).mean() >= 0.9
    assert len(clf.trees[0][-1]["weight"]) == 3


def test_missing_values_learn_a_direction():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 1))
    y = (x[:, 0] > 0).astype(int)
    miss = rng.random(300) < 0.3
    y[miss] = 1  # missing means positive
    xm = x.copy()
    xm[miss, 0] = np.nan
    with pytest.raises(ValueError, match="use_missing_value"):
        XGBoostClient(xm)
    clf = XGBoostClassifierAPI(2, 5, depth=2).fit([XGBoostClient(xm, 2, None, 0, 1, 1.0, 32, True, 0)], y)
    assert (clf.predict(xm) == y).mean() > 0.95
    assert clf.predict(np.array([[np.nan]]))[0] == 1


def _keys(bits=1024):
    from aijack_lab.defense.paillier import PaillierKeyGenerator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return PaillierKeyGenerator(bits, seed=3).generate_keypair() if _takes_seed() else \
            PaillierKeyGenerator(bits).generate_keypair()


def _takes_seed():
    import inspect

    from aijack_lab.defense.paillier import PaillierKeyGenerator

    return "seed" in inspect.signature(PaillierKeyGenerator).parameters


def test_secureboost_trees_equal_plaintext_trees(cancer):
    Xtr, Xte, ytr, _ = cancer
    Xs, ys = Xtr[:150], ytr[:150]
    cols = [list(range(0, 15)), list(range(15, 30))]
    pk, sk = _keys()
    sp = _parties(Xs, cols, SecureBoostClient, bins=8)
    for p in sp:
        p.set_publickey(pk)
    sp[0].set_secretkey(sk)
    sec = SecureBoostClassifierAPI(2, 3, depth=3, n_job=2).fit(sp, ys)
    plain = XGBoostClassifierAPI(2, 3, depth=3).fit(_parties(Xs, cols, bins=8), ys)
    assert sec.trees == plain.trees
    assert sec.describe_trees() == plain.describe_trees()
    assert any(n["party_id"] == 1 for t in sec.trees for n in t if not n["leaf"])  # the passive party splits too
    np.testing.assert_array_equal(sec.predict_proba(Xte), plain.predict_proba(Xte))
    np.testing.assert_allclose(sec.predict_proba_from_parties([Xte[:, c] for c in cols]), sec.predict_proba(Xte),
                               rtol=0, atol=1e-12)
    t = sec.timings
    assert t["encryptions"] == 3 * 150  # one ciphertext per row per tree (gradient and hessian packed)
    # several bin sums per decryption: far fewer decryptions than encrypted sums
    assert 0 < t["decryptions"] * 5 < t["encrypted_sums"]
    assert min(t["encryption"], t["aggregation"], t["decryption"]) > 0


def test_secureboost_needs_keys(cancer):
    Xtr, _, ytr, _ = cancer
    sp = _parties(Xtr[:50], [[0, 1], [2, 3]], SecureBoostClient, bins=4)
    with pytest.raises(ValueError, match="set_publickey"):
        SecureBoostClassifierAPI(2, 1, depth=1).fit(sp, ytr[:50])
    with pytest.raises(TypeError, match="pk"):
        sp[0].set_publickey("key")
    with pytest.raises(TypeError, match="parties"):
        SecureBoostClassifierAPI(2, 1).fit(_parties(Xtr[:50], [[0, 1]]), ytr[:50])


def test_bad_input(cancer):
    Xtr, _, ytr, _ = cancer
    p0 = XGBoostClient(Xtr[:, :2], 2, [0, 1], 0)
    with pytest.raises(ValueError, match="same number of rows"):
        XGBoostClassifierAPI().fit([p0, XGBoostClient(Xtr[:10, 2:4], 2, [2, 3], 1)], ytr)
    with pytest.raises(ValueError, match="y labels"):
        XGBoostClassifierAPI().fit([p0], ytr + 1)
    with pytest.raises(ValueError, match="depth"):
        XGBoostClassifierAPI(depth=0)
    with pytest.raises(ValueError, match="empty party"):
        XGBoostClient(np.zeros((5, 0)))
    with pytest.raises(ValueError, match="feature_ids"):
        XGBoostClient(Xtr[:, :2], 2, [0])
    with pytest.raises(ValueError, match="distinct party_id"):
        XGBoostClassifierAPI().fit([p0, XGBoostClient(Xtr[:, 2:4], 2, [2, 3], 0)], ytr)
    with pytest.raises(ValueError, match="active_party_id"):
        XGBoostClassifierAPI(active_party_id=5).fit([p0], ytr)
    with pytest.raises(ValueError, match="num_percentile_bin"):
        XGBoostClient(Xtr, 2, None, 0, 1, 1.0, 1)
    with pytest.raises(ValueError, match="subsample_cols"):
        XGBoostClient(Xtr, 2, None, 0, 1, 0.0)
    with pytest.raises(TypeError, match="x"):
        XGBoostClient("abc")
    clf = XGBoostClassifierAPI(2, 1, depth=1)
    with pytest.raises(RuntimeError, match="fit"):
        clf.predict_proba(Xtr)
    clf.fit([p0], ytr)
    with pytest.raises(ValueError, match="columns"):
        clf.predict_proba(Xtr[:, :1])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.integers(1, 12), cols=st.integers(1, 3), bins=st.integers(-2, 70000), depth=st.integers(-1, 4),
    fill=st.sampled_from([0.0, 1.0, np.nan, np.inf, 1e300]), miss=st.booleans(), ml=st.integers(-1, 5),
)
def test_fuzz_core_bindings_raise_cleanly(rows, cols, bins, depth, fill, miss, ml):
    from aijack_lab import core

    T = core().trees
    rng = np.random.default_rng(rows * 7 + cols)
    x = rng.normal(size=(rows, cols))
    x[0, 0] = fill
    y = (rng.random(rows) > 0.5).astype(int).tolist()
    try:
        p = T.Party(x, list(range(cols)), 0, ml, 1.0, bins, miss, 0)
        b = T.Booster(2, 2, 1.0, 0.0, -1e300, 0.3, depth, 0, 0, 0.0, 2, True)
        b.fit([p], y)
        out = b.predict_proba(x)
        assert out.shape == (rows, 2) and np.isfinite(out).all()
    except (ValueError, TypeError):
        pass


def test_secureboost_equal_trees_with_missing_values_and_three_classes():
    X, y = load_iris(return_X_y=True)
    X = X.copy()
    X[::7, 3] = np.nan
    pk, sk = _keys()
    def make(cls):
        return [cls(X[:, :2], 3, [0, 1], 0, 1, 1.0, 8, True, 0), cls(X[:, 2:], 3, [2, 3], 1, 1, 1.0, 8, True, 0)]
    sp = make(SecureBoostClient)
    for p in sp:
        p.set_publickey(pk)
    sp[0].set_secretkey(sk)
    sec = SecureBoostClassifierAPI(3, 2, depth=3).fit(sp, y)
    plain = XGBoostClassifierAPI(3, 2, depth=3).fit(make(XGBoostClient), y)
    assert sec.trees == plain.trees
    assert any(n["party_id"] == 1 for t in sec.trees for n in t if not n["leaf"])
    np.testing.assert_array_equal(sec.predict_proba(X), plain.predict_proba(X))
    assert (sec.predict(X) == y).mean() > 0.9


def test_prediction_from_parties_equals_joined_prediction_and_sends_only_bits(cancer):
    Xtr, Xte, ytr, _ = cancer
    parties = _parties(Xtr, COLS3)
    clf = XGBoostClassifierAPI(2, 8, depth=3).fit(parties, ytr)
    own = [Xte[:, c] for c in COLS3]
    np.testing.assert_allclose(clf.predict_raw_from_parties(own), clf.predict_raw(Xte), rtol=0, atol=1e-12)
    by_id = {2: own[2], 0: own[0], 1: own[1]}  # a mapping, in any order
    np.testing.assert_allclose(clf.predict_proba_from_parties(by_id), clf.predict_proba(Xte), rtol=0, atol=1e-12)
    # each party sent one bit per test row per record of its own that the trees use, nothing else
    used = {pid: {n["record_id"] for t in clf.trees for n in t if not n["leaf"] and n["party_id"] == pid}
            for pid in range(3)}
    assert clf.last_prediction_bits == {pid: len(Xte) * len(r) for pid, r in used.items()}
    assert sum(clf.last_prediction_bits.values()) > 0
    # a party's answers: left iff its value <= the threshold of the record, in its own columns
    p1 = parties[1]
    feature, threshold, _ = p1.lookup_table[0]
    np.testing.assert_array_equal(p1.answer_splits(own[1], [0])[:, 0], Xte[:, feature] <= threshold)


def test_prediction_from_parties_multiclass_missing_values_and_bad_input():
    X, y = load_iris(return_X_y=True)
    X = X.copy()
    X[::7, 2] = np.nan
    ps = [XGBoostClient(X[:, :2], 3, [0, 1], 0, 1, 1.0, 32, True, 0),
          XGBoostClient(X[:, 2:], 3, [2, 3], 1, 1, 1.0, 32, True, 0)]
    clf = XGBoostClassifierAPI(3, 6, depth=3).fit(ps, y)
    np.testing.assert_allclose(clf.predict_proba_from_parties([X[:, :2], X[:, 2:]]), clf.predict_proba(X),
                               rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="one matrix per party"):
        clf.predict_raw_from_parties([X[:, :2]])
    with pytest.raises(ValueError, match="no columns for parties \\[1\\]"):
        clf.predict_raw_from_parties({0: X[:, :2]})
    with pytest.raises(ValueError, match="same rows"):
        clf.predict_raw_from_parties([X[:, :2], X[:10, 2:]])
    with pytest.raises(ValueError, match="this party's 2 columns"):
        ps[0].answer_splits(X)
    with pytest.raises(ValueError, match="not in party 0's lookup table"):
        ps[0].answer_splits(X[:, :2], [10_000])
    with pytest.raises(RuntimeError, match="fit"):
        XGBoostClassifierAPI(3).predict_raw_from_parties([X[:, :2], X[:, 2:]])
