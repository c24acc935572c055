"""Hardware models: energy constants now; neurosynaptic cores, compiler and simulator later."""

from neurocore.hardware.energy import FP32_MAC, EnergyConstant, ann_energy_uj

__all__ = ["FP32_MAC", "EnergyConstant", "ann_energy_uj"]
