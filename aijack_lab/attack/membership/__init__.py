"""Membership inference: was a record in the model's training set?"""
from .shadow import ShadowMembershipInferenceAttack, TorchClassifier

__all__ = ["ShadowMembershipInferenceAttack", "TorchClassifier"]
