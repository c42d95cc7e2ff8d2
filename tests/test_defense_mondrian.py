"""Mondrian k-anonymity (C++ core): k-anonymity checked independently, generalization, information loss, bad input, fuzzing."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aijack_lab._core import mondrian as core
from aijack_lab.defense.kanonymity import Mondrian

QI = ["age", "income", "job"]
CONT = {"age": True, "income": True, "job": False}


def census(n, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(17, 90, n),
            "income": rng.lognormal(10.5, 0.6, n).round(0),
            "job": rng.choice(["clerk", "nurse", "driver", "teacher", "cook", "engineer"], n),
            "disease": rng.choice(["flu", "hiv", "cancer", "none"], n),
            "name": [f"person{i}" for i in range(n)],
        }
    )


def parse_range(label):
    lo, hi = label.strip("[]").split(", ")
    return float(lo), float(hi)


def parse_set(label):
    return set(label.strip("{}").split(", ")) if label.startswith("{") else {label}


# -- an independent, straightforward reference: recursive Mondrian in pandas/numpy ------------------
def reference_partitions(df, cols, is_cont, k, categorical_span="distinct-1"):
    """Cut on the widest normalized range at the median (x < median | x >= median); a categorical
    column's width is ``distinct - 1`` or (anonypy's choice) ``distinct``."""
    codes = {c: (df[c].to_numpy(float) if is_cont[c] else pd.Categorical(df[c]).codes.astype(float)) for c in cols}
    minus = 1 if categorical_span == "distinct-1" else 0
    width = {c: (np.ptp(codes[c]) if is_cont[c] else len(np.unique(codes[c])) - minus) for c in cols}
    done = []

    def rec(rows):
        spans = {}
        for c in cols:
            v = codes[c][rows]
            w = np.ptp(v) if is_cont[c] else len(np.unique(v)) - minus
            spans[c] = w / width[c] if width[c] > 0 else 0.0
        for c in sorted(cols, key=lambda c: -spans[c]):
            if spans[c] == 0:
                break
            v = codes[c][rows]
            med = np.sort(v)[len(v) // 2]
            left, right = rows[v < med], rows[v >= med]
            if len(left) >= k and len(right) >= k:
                rec(left)
                rec(right)
                return
        done.append(rows)

    rec(np.arange(len(df)))
    return done


def ncp(df, parts, cols, is_cont):
    """Normalized certainty penalty computed from row sets (independently of the library)."""
    total = 0.0
    for c in cols:
        col = df[c]
        if is_cont[c]:
            width = col.max() / 2 - col.min() / 2
            for p in parts:
                v = col.iloc[p]
                total += len(p) * ((v.max() / 2 - v.min() / 2) / width if width > 0 else 0.0)
        else:
            m = col.nunique()
            for p in parts:
                s = col.iloc[p].nunique()
                total += len(p) * (s / m if s > 1 else 0.0)
    return total / (len(df) * len(cols))


# -- behaviour ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 2, 5, 20])
def test_every_equivalence_class_has_at_least_k_rows(k):
    df = census(3000)
    out = Mondrian(k=k).anonymize(df, QI, "disease", CONT)
    groups = out.groupby(QI, observed=True).size()
    assert groups.min() >= k
    assert groups.sum() == len(df)
    if k > 1:  # Mondrian cuts: the classes are small, not one big blob
        assert groups.max() < 4 * k + 10
        assert len(groups) > len(df) / (4 * k)


def test_generalized_values_contain_the_originals_and_are_tight():
    df = census(2000, seed=1)
    m = Mondrian(k=4)
    out = m.anonymize(df, QI, "disease", CONT)
    assert list(out.index) == list(df.index)
    assert (out["disease"] == df["disease"]).all()
    for pid, rows in enumerate(m.get_final_partitions()):
        sub, orig = out.iloc[rows], df.iloc[rows]
        for c in ("age", "income"):
            (label,) = set(sub[c])
            lo, hi = parse_range(label)
            assert lo == orig[c].min() and hi == orig[c].max()
        (label,) = set(sub["job"])
        assert parse_set(label) == set(orig["job"])
    # categorical columns really are generalized to sets somewhere, continuous to real ranges
    assert out["job"].astype(str).str.startswith("{").any()
    ranges = out["age"].astype(str).map(parse_range)
    assert any(lo < hi for lo, hi in ranges)


def test_final_partitions_cover_each_row_once():
    df = census(1500, seed=2)
    m = Mondrian(k=3)
    m.anonymize(df, QI, "disease", CONT)
    parts = m.get_final_partitions()
    allrows = np.concatenate(parts)
    assert sorted(allrows.tolist()) == list(range(len(df)))
    assert min(len(p) for p in parts) >= 3
    for pid, p in enumerate(parts):
        assert (m.partition_ids_[p] == pid).all()


def test_unused_columns_dropped_or_kept():
    df = census(300)
    dropped = Mondrian(k=3).anonymize(df, QI, "disease", CONT)
    assert list(dropped.columns) == ["age", "income", "job", "disease"]
    kept = Mondrian(k=3, ignore_unused_features=False).anonymize(df, QI, "disease", CONT)
    assert list(kept.columns) == list(df.columns)
    assert (kept["name"] == df["name"]).all()


def test_paper_listing_s10():
    df = census(500)
    feature_columns, sensitive_column, is_continuous_map = QI, "disease", CONT
    from aijack_lab.defense.kanonymity import Mondrian as M

    mondrian = M(k=2)
    df_ignore_unused_features = mondrian.anonymize(df, feature_columns, sensitive_column, is_continuous_map)
    assert df_ignore_unused_features.groupby(QI, observed=True).size().min() >= 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_information_loss_matches_independent_ncp_and_beats_reference(seed):
    df = census(1200, seed=seed)
    k = 5
    m = Mondrian(k=k)
    m.anonymize(df, QI, "disease", CONT)
    ours = ncp(df, m.get_final_partitions(), QI, CONT)
    assert m.information_loss_ == pytest.approx(ours, rel=1e-9)
    for variant in ("distinct-1", "distinct"):
        ref_parts = reference_partitions(df, QI, CONT, k, variant)
        assert min(len(p) for p in ref_parts) >= k
        ref = ncp(df, ref_parts, QI, CONT)
        assert ours <= ref * 1.001 + 1e-12, (variant, ours, ref)
    assert 0 < ours < 0.2


def test_information_loss_grows_with_k():
    df = census(2000, seed=3)
    vals = []
    for k in (2, 10, 50):
        m = Mondrian(k=k)
        m.anonymize(df, QI, "disease", CONT)
        vals.append(m.information_loss_)
    assert vals[0] < vals[1] < vals[2]


def test_k_equal_to_rows_gives_one_class_and_k1_keeps_distinct_rows():
    df = census(50)
    m = Mondrian(k=50)
    out = m.anonymize(df, QI, "disease", CONT)
    assert out.groupby(QI, observed=True).ngroups == 1
    assert m.information_loss_ > 0.5
    df1 = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "s": list("wxyz")})
    m1 = Mondrian(k=1)
    out1 = m1.anonymize(df1, ["a"], "s", {"a": True})
    assert list(out1["a"].astype(str)) == ["[1, 1]", "[2, 2]", "[3, 3]", "[4, 4]"]
    assert m1.information_loss_ == 0.0


def test_categorical_numeric_column_and_category_dtype():
    rng = np.random.default_rng(4)
    df = pd.DataFrame({"zip": rng.choice([10001, 10002, 20001, 30003], 400), "sex": pd.Categorical(rng.choice(["F", "M"], 400)),
                       "y": rng.integers(0, 2, 400)})
    out = Mondrian(k=10).anonymize(df, ["zip", "sex"], "y", {"zip": False, "sex": False})
    assert out.groupby(["zip", "sex"], observed=True).size().min() >= 10
    for z, orig in zip(out["zip"].astype(str), df["zip"]):
        assert str(orig) in parse_set(z)


# -- bad input -----------------------------------------------------------------------------------------
def test_bad_arguments_raise_clear_errors():
    df = census(20)
    with pytest.raises(ValueError, match="k"):
        Mondrian(k=0)
    with pytest.raises(TypeError, match="k"):
        Mondrian(k=2.5)
    with pytest.raises(ValueError, match="k .*larger"):
        Mondrian(k=21).anonymize(df, QI, "disease", CONT)
    with pytest.raises(ValueError, match="not in df.*zip"):
        Mondrian(k=2).anonymize(df, ["age", "zip"], "disease", {"age": True, "zip": True})
    with pytest.raises(ValueError, match="sensitive_column"):
        Mondrian(k=2).anonymize(df, QI, "diagnosis", CONT)
    with pytest.raises(ValueError, match="sensitive_column"):
        Mondrian(k=2).anonymize(df, QI, "age", CONT)
    with pytest.raises(ValueError, match="is_continuous_map has no entry.*job"):
        Mondrian(k=2).anonymize(df, QI, "disease", {"age": True, "income": True})
    with pytest.raises(ValueError, match="is_continuous_map\\['job'\\].*dtype"):
        Mondrian(k=2).anonymize(df, QI, "disease", {"age": True, "income": True, "job": True})
    with pytest.raises(TypeError, match="is_continuous_map\\['age'\\]"):
        Mondrian(k=2).anonymize(df, QI, "disease", {"age": "yes", "income": True, "job": False})
    with pytest.raises(TypeError, match="is_continuous_map"):
        Mondrian(k=2).anonymize(df, QI, "disease", [True, True, False])
    with pytest.raises(ValueError, match="feature_columns is empty"):
        Mondrian(k=2).anonymize(df, [], "disease", CONT)
    with pytest.raises(TypeError, match="df"):
        Mondrian(k=2).anonymize(df.to_numpy(), QI, "disease", CONT)
    with pytest.raises(ValueError, match="empty"):
        Mondrian(k=1).anonymize(df.iloc[:0], QI, "disease", CONT)
    nan = df.copy()
    nan.loc[3, "income"] = np.nan
    with pytest.raises(ValueError, match="NaN.*income"):
        Mondrian(k=2).anonymize(nan, QI, "disease", CONT)
    nanc = df.copy()
    nanc.loc[3, "job"] = None
    with pytest.raises(ValueError, match="NaN.*job"):
        Mondrian(k=2).anonymize(nanc, QI, "disease", CONT)
    inf = df.copy()
    inf["income"] = inf["income"].astype(float)
    inf.loc[0, "income"] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        Mondrian(k=2).anonymize(inf, QI, "disease", CONT)
    with pytest.raises(RuntimeError, match="anonymize"):
        Mondrian(k=2).get_final_partitions()


def test_core_rejects_bad_arrays_without_crashing():
    x = np.zeros((5, 2))
    with pytest.raises(ValueError, match="2-D"):
        core.partition(np.zeros(5), [True], [0], 1)
    with pytest.raises(ValueError, match="no rows"):
        core.partition(np.zeros((0, 2)), [True, True], [0, 0], 1)
    with pytest.raises(ValueError, match="one entry per column"):
        core.partition(x, [True], [0], 1)
    with pytest.raises(ValueError, match="k"):
        core.partition(x, [True, True], [0, 0], 0)
    with pytest.raises(ValueError, match="larger"):
        core.partition(x, [True, True], [0, 0], 6)
    with pytest.raises(ValueError, match="NaN"):
        core.partition(np.array([[np.nan, 1.0]]), [True, True], [0, 0], 1)
    with pytest.raises(ValueError, match="code"):
        core.partition(np.array([[3.0, 1.0]]), [False, True], [2, 0], 1)
    with pytest.raises(ValueError, match="code"):
        core.partition(np.array([[0.5, 1.0]]), [False, True], [2, 0], 1)
    with pytest.raises(ValueError, match="n_categories"):
        core.partition(np.array([[0.0, 1.0]]), [False, True], [0, 0], 1)
    with pytest.raises(TypeError):
        core.partition("abc", [True], [0], 1)


# -- fuzzing the C++ core on odd frames --------------------------------------------------------------
odd_values = st.one_of(
    st.integers(-3, 3).map(float),
    st.floats(-1e300, 1e300, allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 5e-324, 1e308, -1e308]),
)


@st.composite
def odd_frames(draw):
    n = draw(st.integers(1, 40))
    d = draw(st.integers(1, 4))
    cont = draw(st.lists(st.booleans(), min_size=d, max_size=d))
    cols = {}
    for j in range(d):
        if cont[j]:
            cols[f"c{j}"] = draw(st.lists(odd_values, min_size=n, max_size=n))
        else:
            cols[f"c{j}"] = draw(st.lists(st.sampled_from(["a", "b", "", "a, b", "é"]), min_size=n, max_size=n))
    cols["s"] = draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    k = draw(st.integers(1, n))
    return pd.DataFrame(cols), [f"c{j}" for j in range(d)], {f"c{j}": cont[j] for j in range(d)}, k


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(odd_frames())
def test_fuzz_anonymize_odd_frames(frame):
    df, cols, cont, k = frame
    m = Mondrian(k=k)
    out = m.anonymize(df, cols, "s", cont)
    assert len(out) == len(df)
    parts = m.get_final_partitions()
    assert min(len(p) for p in parts) >= k
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(df)))
    assert 0.0 <= m.information_loss_ <= 1.0 + 1e-12
    for p in parts:  # one generalized tuple per class
        assert len(out.iloc[p][cols].astype(str).drop_duplicates()) == 1


@settings(max_examples=150, deadline=None)
@given(
    st.integers(0, 30),
    st.integers(0, 4),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=0, max_size=120),
    st.lists(st.booleans(), min_size=0, max_size=5),
    st.lists(st.integers(-2, 5), min_size=0, max_size=5),
    st.integers(-2, 40),
)
def test_fuzz_core_never_crashes(n, d, values, cont, ncat, k):
    arr = np.resize(np.asarray(values, dtype=float), n * d).reshape(n, d) if values and n * d else np.zeros((n, d))
    try:
        res = core.partition(arr, cont, ncat, k)
    except (ValueError, TypeError):
        return
    assert res["sizes"].sum() == n
    assert res["sizes"].min() >= k
    assert set(res["partition_id"].tolist()) == set(range(len(res["sizes"])))


# -- panel -----------------------------------------------------------------------------------------------
def test_mondrian_panel_runs_and_code_view_reproduces():
    from aijack_lab.widgets import MondrianPanel
    from aijack_lab.widgets.testing import assert_code_reproduces

    panel = MondrianPanel(k=7, n_rows=800)
    result = panel.run()
    assert result["min_class_size"] >= 7
    assert result["n_classes"] > 800 / (4 * 7)
    curve = result["information_loss_curve"]
    assert all(a <= b for a, b in zip(curve, curve[1:]))  # coarser classes, more loss
    assert panel.image.value  # the figure was drawn
    ns = assert_code_reproduces(panel)
    assert ns["df_ignore_unused_features"].shape == (800, 4)
    panel.set(quasi_identifiers="diabetes:age,bmi|sex", k=3)
    result = panel.run()
    assert result["rows"] == 442 and result["min_class_size"] >= 3
    assert_code_reproduces(panel)
