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

# TrueNorth, measured (Merolla et al., Science 2014; Akopyan et al., IEEE TCAD 2015).
# Two models that must not be mixed: a total-energy operating point (static power included)
# and a marginal model (static power per used core plus energy per event).
TN_TOTAL_PER_EVENT = EnergyConstant(
    26.0, "pJ", "Merolla 2014: 26 pJ per synaptic event, total energy (static power included)"
)
TN_STATIC_PER_CORE = EnergyConstant(
    16.0, "µW", "≈65 mW static over 4096 cores (Merolla 2014 / Akopyan 2015), per used core"
)
TN_MARGINAL_PER_EVENT = EnergyConstant(
    2.3, "pJ", "Akopyan 2015: ≈2.3 pJ per additional synaptic event (marginal)"
)
TN_PER_HOP = EnergyConstant(
    2.3, "pJ", "Akopyan 2015: ≈2.3 pJ per spike packet per core-to-core hop"
)

OP_COUNT_CAVEAT = "operation count only: data movement (DRAM, caches, interconnect) not included"


def truenorth_energy_uj(
    events_per_frame: float, cores: int, frame_seconds: float, hops_per_frame: float
) -> dict[str, float]:
    """Energy per frame in µJ under both TrueNorth models (see the constants' sources).

    total:    26 pJ × synaptic events
    marginal: 16 µW × used cores × frame time + 2.3 pJ × events + 2.3 pJ × spike hops
    """
    total = events_per_frame * TN_TOTAL_PER_EVENT.value * 1e-6
    static = TN_STATIC_PER_CORE.value * cores * frame_seconds  # µW · s = µJ
    dynamic = (events_per_frame * TN_MARGINAL_PER_EVENT.value
               + hops_per_frame * TN_PER_HOP.value) * 1e-6
    return {"total_model_uj": total, "marginal_model_uj": static + dynamic,
            "marginal_static_uj": static, "marginal_dynamic_uj": dynamic}


def ann_energy_uj(macs: int, per_mac: EnergyConstant = FP32_MAC) -> float:
    """Energy in µJ of ``macs`` multiply-accumulates at ``per_mac`` (pJ each)."""
    assert per_mac.unit == "pJ"
    return macs * per_mac.value * 1e-6
