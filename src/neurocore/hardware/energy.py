"""Energy constants with their provenance, and the operation-count energy of an ANN.

Operation-count energy ignores data movement (DRAM, caches, interconnect): every figure made
from these constants says so. Sources are in ``../shared/REFERENCE.md``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EnergyConstant:
    value: float
    unit: str
    source: str

    def as_dict(self) -> dict[str, object]:
        return {"value": self.value, "unit": self.unit, "source": self.source}


# Horowitz, "Computing's energy problem", ISSCC 2014, 45 nm.
FP32_MAC = EnergyConstant(4.6, "pJ", "Horowitz ISSCC 2014, 45 nm: FP32 mult 3.7 pJ + add 0.9 pJ")
FP32_ADD = EnergyConstant(0.9, "pJ", "Horowitz ISSCC 2014, 45 nm: FP32 add")
INT32_ADD = EnergyConstant(0.1, "pJ", "Horowitz ISSCC 2014, 45 nm: INT32 add")
INT8_ADD = EnergyConstant(0.03, "pJ", "Horowitz ISSCC 2014, 45 nm: INT8 add")

OP_COUNT_CAVEAT = "operation count only: data movement (DRAM, caches, interconnect) not included"


def ann_energy_uj(macs: int, per_mac: EnergyConstant = FP32_MAC) -> float:
    """Energy in µJ of ``macs`` multiply-accumulates at ``per_mac`` (pJ each)."""
    assert per_mac.unit == "pJ"
    return macs * per_mac.value * 1e-6
