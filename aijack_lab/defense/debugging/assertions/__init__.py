"""Model assertions (Kang, Raghavan, Bailis, Zaharia. Model Assertions for Monitoring and Improving
ML Models. MLSys 2020): predicates over a model's outputs that flag likely errors at run time.

An assertion returns a *severity*: 0 when the outputs look right, a positive number when they
violate it. ``assert_multibox`` and ``except_flicker`` are the paper's video-analytics assertions
over bounding boxes; ``ModelAssertionMonitor`` runs any user predicates over a stream of inputs.
"""
from .boxes import assert_multibox, box_iou, except_flicker
from .monitor import ModelAssertionMonitor, Violation
from .simulate import simulate_detections

__all__ = ["assert_multibox", "except_flicker", "box_iou", "ModelAssertionMonitor", "Violation", "simulate_detections"]
