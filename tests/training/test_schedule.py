from __future__ import annotations

import math

import pytest

from neurocore.config import ScheduleConfig
from neurocore.training.schedule import learning_rate


def test_constant_with_warmup() -> None:
    cfg = ScheduleConfig(name="constant", warmup_epochs=2.0)
    assert learning_rate(cfg, 0.1, 0.0, 10) == 0.0
    assert learning_rate(cfg, 0.1, 1.0, 10) == pytest.approx(0.05)
    assert learning_rate(cfg, 0.1, 2.0, 10) == 0.1
    assert learning_rate(cfg, 0.1, 9.5, 10) == 0.1


def test_cosine_hand_values() -> None:
    cfg = ScheduleConfig(name="cosine", min_lr=0.01)
    assert learning_rate(cfg, 0.1, 0.0, 4) == pytest.approx(0.1)
    # u = 1/2: 0.01 + 0.09 * (1 + cos(pi/2)) / 2 = 0.055
    assert learning_rate(cfg, 0.1, 2.0, 4) == pytest.approx(0.055)
    # u = 1/4: 0.01 + 0.09 * (1 + sqrt(2)/2) / 2
    assert learning_rate(cfg, 0.1, 1.0, 4) == pytest.approx(0.01 + 0.045 * (1 + math.sqrt(0.5)))
    assert learning_rate(cfg, 0.1, 4.0, 4) == pytest.approx(0.01)


def test_step() -> None:
    cfg = ScheduleConfig(name="step", milestones=[2, 5], gamma=0.5)
    assert [learning_rate(cfg, 1.0, e, 8) for e in (0, 1.99, 2, 4.5, 5, 7)] == [1, 1, 0.5, 0.5, 0.25, 0.25]
