"""Learning-rate schedules: pure functions of the fractional epoch, so a resumed run gets the
same rate at the same step as an uninterrupted one.

    warmup:   lr(t) = base · t / warmup                        for t < warmup
    constant: lr(t) = base
    cosine:   lr(t) = min + (base − min) · (1 + cos(π · u)) / 2,  u = (t − warmup) / (E − warmup)
    step:     lr(t) = base · γ^(number of milestones ≤ t)
"""

from __future__ import annotations

import math

from neurocore.config import ScheduleConfig


def learning_rate(cfg: ScheduleConfig, base_lr: float, epoch: float, total_epochs: int) -> float:
    """The rate at fractional epoch ``epoch`` (epoch 2.5 is halfway through the third epoch)."""
    if cfg.warmup_epochs > 0 and epoch < cfg.warmup_epochs:
        return base_lr * epoch / cfg.warmup_epochs
    if cfg.name == "constant":
        return base_lr
    if cfg.name == "step":
        return base_lr * cfg.gamma ** sum(1 for m in cfg.milestones if m <= epoch)
    span = max(total_epochs - cfg.warmup_epochs, 1e-12)
    u = min(max((epoch - cfg.warmup_epochs) / span, 0.0), 1.0)
    return cfg.min_lr + (base_lr - cfg.min_lr) * 0.5 * (1.0 + math.cos(math.pi * u))
