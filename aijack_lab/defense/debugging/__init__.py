"""Debugging models: model assertions, Rain (complaint-driven training-data debugging), neuron coverage."""
from .assertions import ModelAssertionMonitor, Violation, assert_multibox, box_iou, except_flicker
from .neuroncoverage import NeuronCoverageTracker
from .rain import AggregateComplaint, PointComplaint, Rain

__all__ = [
    "assert_multibox",
    "except_flicker",
    "box_iou",
    "ModelAssertionMonitor",
    "Violation",
    "NeuronCoverageTracker",
    "Rain",
    "PointComplaint",
    "AggregateComplaint",
]
