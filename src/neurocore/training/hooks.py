"""Trainer hook points. Later schedules (sharpening, symmetric-kernel projection, pruning)
subclass :class:`Callback` and override what they need.

Order within one epoch:
``on_epoch_start`` → (``on_batch_start`` → step → ``on_batch_end``)* → evaluation →
``on_epoch_end`` (may add entries to the epoch's metrics) → checkpoint.

Anything a callback changes in the model must live in the model (a parameter or a named buffer)
and be a pure function of training state, so that a resumed run repeats it exactly; state a
callback keeps outside the model goes into the checkpoint through :meth:`Callback.state_tensors`
and comes back as ``trainer.resumed_state``. ``on_train_end`` runs also when training stops with
an exception, so a callback can undo what it attached to the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from neurocore.training.trainer import Trainer


@dataclass(frozen=True)
class BatchInfo:
    epoch: int  # 0-based
    batch: int  # 0-based index within the epoch
    step: int  # global optimizer step, 0-based
    batches_per_epoch: int

    @property
    def progress(self) -> float:
        """Fractional epoch at the start of this batch."""
        return self.epoch + self.batch / self.batches_per_epoch


class Callback:
    """Base hook: every method is a no-op."""

    def on_train_start(self, trainer: Trainer) -> None:
        pass

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        pass

    def on_batch_start(self, trainer: Trainer, info: BatchInfo) -> None:
        pass

    def on_batch_end(self, trainer: Trainer, info: BatchInfo, loss: float) -> None:
        pass

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        pass

    def on_train_end(self, trainer: Trainer) -> None:
        pass

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Tensors to save with each checkpoint (after ``on_epoch_end``); keys must not clash
        with other callbacks' (prefix them with the callback's own name)."""
        return {}
