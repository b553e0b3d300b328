"""Distillation losses: DINO (CLS, cross-view), iBOT (patch tokens) and cosine regression."""

from plismbench.distillation.loss.cosine import cosine_loss
from plismbench.distillation.loss.dino import dino_loss
from plismbench.distillation.loss.ibot import ibot_loss
from plismbench.distillation.loss.stream import LossParts, streamed_cross_entropy

__all__ = ["LossParts", "cosine_loss", "dino_loss", "ibot_loss", "streamed_cross_entropy"]
