"""Small reference models for the bundled data, and a seeded trainer."""
from .digits import DigitsCNN, DigitsMLP, make_digits_model
from .splits import split_digits_mlp
from .training import train_classifier, train_digits_model, train_logistic_regression

__all__ = ["split_digits_mlp", "DigitsCNN", "DigitsMLP", "make_digits_model", "train_classifier", "train_digits_model", "train_logistic_regression"]
