from __future__ import annotations

import pytest

from neurocore.hardware.energy import FP32_MAC, ann_energy_uj


def test_ann_energy_hand_value() -> None:
    # 1,000,000 MACs x 4.6 pJ = 4.6 uJ
    assert ann_energy_uj(1_000_000) == pytest.approx(4.6)
    assert FP32_MAC.value == pytest.approx(3.7 + 0.9) and "Horowitz" in FP32_MAC.source
