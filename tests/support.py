"""Helpers shared by several test modules (on the test path through pyproject's pythonpath)."""

from __future__ import annotations

import torch
from torch import nn

from neurocore.training import BatchInfo, Callback, Trainer


class Killed(Exception):
    """Stands for the process being killed in the middle of training."""


class KillAt(Callback):
    """Raises :class:`Killed` at the start of batch ``batch`` of epoch ``epoch``."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.at = (epoch, batch)

    def on_batch_start(self, trainer: Trainer, info: BatchInfo) -> None:
        if (info.epoch, info.batch) == self.at:
            raise Killed


def assert_same_state(a: nn.Module, b: nn.Module) -> None:
    """Every parameter and buffer equal with torch.equal."""
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
