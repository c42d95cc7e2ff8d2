"""Model assertions flag injected bad outputs; Rain ranks corrupted records first and removing them
resolves the complaint; neuron coverage is in [0, 1] and grows with more diverse inputs."""
import numpy as np
import pytest
import torch
from torch import nn

from aijack_lab.attack import FGSMAttacker
from aijack_lab.datasets import load_breast_cancer
from aijack_lab.defense.debugging import (
    AggregateComplaint,
    ModelAssertionMonitor,
    PointComplaint,
    Rain,
    assert_multibox,
    box_iou,
    except_flicker,
)
from aijack_lab.defense.debugging.assertions import assert_multibox as from_assertions
from aijack_lab.defense.debugging.neuroncoverage import *  # noqa: F401,F403 - the paper's listing
from aijack_lab.models import train_digits_model, train_logistic_regression


# -- model assertions --------------------------------------------------------------------------
def test_box_iou_known_values():
    iou = box_iou([[0, 0, 2, 2]], [[1, 1, 3, 3], [0, 0, 2, 2], [5, 5, 6, 6]])
    assert iou[0].tolist() == pytest.approx([1 / 7, 1.0, 0.0])


def test_multibox_fires_on_three_overlapping_boxes_only():
    assert from_assertions is assert_multibox
    one_object_three_boxes = [[0, 0, 10, 10], [1, 1, 11, 11], [0, 1, 10, 11], [50, 50, 60, 60]]
    separate_objects = [[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]]
    two_overlapping = [[0, 0, 10, 10], [1, 1, 11, 11]]
    assert assert_multibox(one_object_three_boxes) == 3
    assert assert_multibox(separate_objects) == 0
    assert assert_multibox(two_overlapping) == 0
    assert assert_multibox([]) == 0


def test_flicker_flags_exactly_the_missing_frames():
    car = [[10, 10, 20, 20]]
    moved = [[11, 10, 21, 20]]
    frames = [car, moved, [], car, car, [], [], car, [[80, 80, 90, 90]]]
    assert except_flicker(frames, max_gap=1) == [2]
    assert except_flicker(frames, max_gap=2) == [2, 5, 6]
    assert except_flicker([car, car, car]) == []


def test_monitor_reports_each_injected_bad_output_with_its_index():
    rng = np.random.default_rng(0)
    bad_multibox = {3, 11}
    bad_flicker = {7}

    def detector(frame_id):  # a fake detector whose outputs we control
        if frame_id in bad_flicker:
            return np.zeros((0, 4))
        base = np.array([[10.0, 10.0, 30.0, 30.0]]) + rng.normal(0, 0.5, (1, 4))
        if frame_id in bad_multibox:
            base = np.vstack([base, base + 1.0, base - 1.0])
        return base

    monitor = ModelAssertionMonitor(
        detector,
        assertions={"multibox": lambda out, x, i: assert_multibox(out)},
        sequence_assertions={"flicker": except_flicker},
    )
    violations = monitor.run(range(15))
    assert monitor.flagged("multibox") == sorted(bad_multibox)
    assert monitor.flagged("flicker") == sorted(bad_flicker)
    assert {v.index for v in violations} == bad_multibox | bad_flicker


def test_monitor_on_a_classifier_flags_injected_bad_outputs(digits):
    """A video-like stream of one digit under tiny noise: a sound classifier's outputs are finite and its
    label does not flicker; injected NaN outputs and one-frame wrong labels are flagged, nothing else."""
    base = train_digits_model("mlp", epochs=5, seed=0)
    _, _, x, y = digits
    frame0 = x[(y == 3).nonzero()[0, 0]]
    gen = torch.Generator().manual_seed(0)
    stream = [(frame0 + 0.02 * torch.randn(frame0.shape, generator=gen)).clamp(0, 1)[None] for _ in range(30)]
    nan_at, wrong_at = {4, 21}, {9, 15}

    class Faulty(nn.Module):  # the model under test, with injected faults
        def __init__(self):
            super().__init__()
            self.base, self.calls = base, 0

        def forward(self, inp):
            out = self.base(inp)
            if self.calls in nan_at:
                out = out * float("nan")
            elif self.calls in wrong_at:
                out = out.roll(1, dims=1)  # confidently the wrong class
            self.calls += 1
            return out

    def label_flicker(outputs):
        labels = [int(o.argmax()) if torch.isfinite(o).all() else None for o in outputs]
        return [t for t in range(1, len(labels) - 1)
                if None not in labels[t - 1 : t + 2] and labels[t - 1] == labels[t + 1] != labels[t]]

    monitor = ModelAssertionMonitor(
        Faulty(),
        assertions={"finite_outputs": lambda out, xin, i: float(not torch.isfinite(out).all())},
        sequence_assertions={"label_flicker": label_flicker},
    )
    monitor.run(stream)
    assert monitor.flagged("finite_outputs") == sorted(nan_at)
    assert monitor.flagged("label_flicker") == sorted(wrong_at)
    assert monitor.flagged() == sorted(nan_at | wrong_at)


def test_assertion_bad_input():
    with pytest.raises(ValueError, match="shape"):
        assert_multibox([[0, 0, 1]])
    with pytest.raises(ValueError, match="x2 < x1"):
        assert_multibox([[5, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1]])
    with pytest.raises(ValueError, match="iou_threshold"):
        except_flicker([], iou_threshold=1.5)
    with pytest.raises(ValueError, match="at least one"):
        ModelAssertionMonitor(lambda x: x)


# -- Rain --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def corrupted_breast_cancer():
    xtr, ytr, xte, yte = [torch.as_tensor(a) for a in load_breast_cancer()]
    clean = train_logistic_regression(xtr, ytr)
    query_rows = torch.nonzero(yte == 0).squeeze(1)
    clean_count = int((clean(xte[query_rows]).argmax(1) == 1).sum())
    gen = torch.Generator().manual_seed(0)
    malignant = torch.nonzero(ytr == 0).squeeze(1)
    flipped = malignant[torch.randperm(len(malignant), generator=gen)[:40]]
    y_bad = ytr.clone()
    y_bad[flipped] = 1
    model = train_logistic_regression(xtr, y_bad)
    return dict(xtr=xtr, y_bad=y_bad, xte=xte, rows=query_rows, clean_count=clean_count, flipped=flipped, model=model)


def test_rain_ranks_flipped_labels_first_and_removal_fixes_the_complaint(corrupted_breast_cancer):
    d = corrupted_breast_cancer
    complaint = AggregateComplaint(d["rows"].tolist(), label=1, op="<=", value=d["clean_count"])
    preds = d["model"](d["xte"]).argmax(1)
    assert complaint.violated(preds), "the corruption should have caused the complaint"
    rain = Rain(d["model"], d["xtr"], d["y_bad"])
    order, scores = rain.rank(complaint, d["xte"])
    flipped = set(d["flipped"].tolist())
    precision = len(set(order[:40].tolist()) & flipped) / 40
    with torch.no_grad():
        loss = nn.functional.cross_entropy(d["model"](d["xtr"]), d["y_bad"], reduction="none")
    loss_precision = len(set(torch.argsort(loss, descending=True)[:40].tolist()) & flipped) / 40
    assert precision >= 0.8
    assert precision > loss_precision  # the complaint adds information beyond "high loss"
    assert rain.cg_residual < 1e-4
    fixed = rain.fix(complaint, d["xte"], k=40, train_fn=lambda X, y: train_logistic_regression(X, y), step=5)
    assert not fixed["violated"]
    assert len(set(fixed["removed"].tolist()) & flipped) >= 0.8 * len(fixed["removed"])


def test_rain_point_complaint_blames_the_records_that_caused_it(corrupted_breast_cancer):
    d = corrupted_breast_cancer
    preds = d["model"](d["xte"]).argmax(1)
    wrong = [int(i) for i in d["rows"] if preds[i] == 1]
    complaint = PointComplaint(row=wrong[0], label=0)
    order, _ = Rain(d["model"], d["xtr"], d["y_bad"]).rank(complaint, d["xte"])
    chance = 20 * len(d["flipped"]) / len(d["xtr"])  # flipped records expected in a random top 20
    assert len(set(order[:20].tolist()) & set(d["flipped"].tolist())) >= 3 * chance


def test_rain_influence_matches_actual_retraining(corrupted_breast_cancer):
    """The predicted change of the relaxed complaint from removing one record matches leave-one-out."""
    d = corrupted_breast_cancer
    complaint = AggregateComplaint(d["rows"].tolist(), label=1, op="<=", value=d["clean_count"])
    rain = Rain(d["model"], d["xtr"], d["y_bad"])
    order, scores = rain.rank(complaint, d["xte"])
    q = lambda m: complaint.relaxed(torch.softmax(m(d["xte"]), 1)).item()
    base = q(d["model"])
    predicted, actual = [], []
    for i in order[:5].tolist() + order[-3:].tolist():
        keep = torch.ones(len(d["xtr"]), dtype=torch.bool)
        keep[i] = False
        m = train_logistic_regression(d["xtr"][keep], d["y_bad"][keep])
        actual.append(base - q(m))
        predicted.append(scores[i].item())
    assert np.corrcoef(predicted, actual)[0, 1] > 0.9


def test_rain_bad_input(corrupted_breast_cancer):
    d = corrupted_breast_cancer
    rain = Rain(d["model"], d["xtr"], d["y_bad"])
    with pytest.raises(ValueError, match="do not exist"):
        rain.rank(AggregateComplaint([0, 10_000], label=1), d["xte"])
    with pytest.raises(ValueError, match="does not exist"):
        rain.rank(PointComplaint(row=10_000, label=0), d["xte"])
    with pytest.raises(ValueError, match="not a class"):
        rain.rank(PointComplaint(row=0, label=7), d["xte"])
    with pytest.raises(TypeError, match="differentiable"):
        from sklearn.linear_model import LogisticRegression

        Rain(LogisticRegression(), d["xtr"], d["y_bad"])
    frozen = nn.Linear(30, 2).requires_grad_(False)
    with pytest.raises(TypeError, match="trainable"):
        Rain(frozen, d["xtr"], d["y_bad"])
    with pytest.raises(ValueError, match="op"):
        AggregateComplaint([1], label=1, op="<")


# -- neuron coverage -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cnn():
    return train_digits_model("cnn", epochs=5, seed=0)


def test_paper_listing_names(cnn, digits):
    NCT = neuroncoverage.NeuronCoverageTracker(cnn, 0.5, digits[0][:2])  # noqa: F405 - (nn, threshold, dummy)
    assert NCT.threshold == 0.5 and NCT.layers


def test_coverage_in_unit_interval_and_grows_with_diversity(cnn, digits):
    _, _, x, y = digits
    tracker = NeuronCoverageTracker(cnn, x[:2], threshold=0.5)  # noqa: F405
    ones = x[y == 1][:20]
    one_class = tracker.coverage([(ones, None)])
    everything = tracker.coverage(torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=64))
    for rep in (one_class, everything):
        assert 0.0 <= rep["total"] <= 1.0
        assert all(0.0 <= v <= 1.0 for v in rep["per_layer"].values())
    assert everything["total"] > one_class["total"]


def test_adversarial_inputs_cover_idle_neurons(cnn, digits):
    _, _, x, y = digits
    x_adv = FGSMAttacker(cnn, nn.CrossEntropyLoss(), eps=0.3).attack((x, y))
    tracker = NeuronCoverageTracker(cnn, x[:2], threshold=0.75)  # noqa: F405
    clean = tracker.coverage(x[:100])["total"]
    idle = {n: ~m.clone() for n, m in tracker.covered.items()}
    both = tracker.coverage(x_adv[:100], reset=False)["total"]
    assert both > clean
    newly = sum(int((tracker.covered[n] & idle[n]).sum()) for n in idle)
    assert newly >= 1  # neurons no clean input reached are reached by adversarial ones


def test_coverage_bad_input(cnn, digits):
    x = digits[0]
    with pytest.raises(ValueError, match="threshold"):
        NeuronCoverageTracker(cnn, x[:2], threshold=1.5)  # noqa: F405
    with pytest.raises(ValueError, match="could not run"):
        NeuronCoverageTracker(cnn, torch.zeros(2, 3, 5, 5))  # noqa: F405
    with pytest.raises(ValueError, match="no modules named"):
        NeuronCoverageTracker(cnn, x[:2], layers=["nope"])  # noqa: F405
    with pytest.raises(ValueError, match="no data"):
        NeuronCoverageTracker(cnn, x[:2]).coverage([])  # noqa: F405
