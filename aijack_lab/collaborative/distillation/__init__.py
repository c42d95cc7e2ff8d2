"""Shared machinery of the knowledge-distillation FL protocols (FedMD, FedGEMS, DSFL)."""
from .base import BaseFLKnowledgeDistillationAPI, PublicData, logits_on, soft_cross_entropy

__all__ = ["BaseFLKnowledgeDistillationAPI", "PublicData", "logits_on", "soft_cross_entropy"]
