"""Small shared helpers: seeding, progress callbacks, evaluation, validation."""
from .seeding import seeded, make_generator
from .progress import ProgressCallback, report_progress
from .metrics import accuracy, evaluate_accuracy, predict
from .validation import check_probability, check_positive, check_in_range, check_finite

__all__ = [
    "seeded",
    "make_generator",
    "ProgressCallback",
    "report_progress",
    "accuracy",
    "evaluate_accuracy",
    "predict",
    "check_probability",
    "check_positive",
    "check_in_range",
    "check_finite",
]
