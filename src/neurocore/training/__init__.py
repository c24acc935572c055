"""Training: the trainer loop, its hook points, learning-rate schedules and checkpoints."""

from neurocore.training.hooks import BatchInfo, Callback
from neurocore.training.trainer import Evaluation, Trainer, evaluate

__all__ = ["BatchInfo", "Callback", "Evaluation", "Trainer", "evaluate"]
