"""Small reference models for the bundled data, and a seeded trainer."""
from .digits import DigitsCNN, DigitsMLP, make_digits_model
from .training import train_classifier, train_digits_model, train_logistic_regression

__all__ = ["DigitsCNN", "DigitsMLP", "make_digits_model", "train_classifier", "train_digits_model", "train_logistic_regression"]
