"""Shared machinery of the knowledge-distillation FL protocols (FedMD, FedGEMS, DSFL)."""
from .base import (
    BaseFLKnowledgeDistillationAPI,
    DistillationClient,
    PublicData,
    default_server_optimizer,
    logits_on,
    soft_cross_entropy,
)

__all__ = ["BaseFLKnowledgeDistillationAPI", "DistillationClient", "PublicData", "default_server_optimizer",
           "logits_on", "soft_cross_entropy"]
