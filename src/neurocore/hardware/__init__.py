"""Hardware: the core model, the program format, simulators, the compiler and energy models.

- :mod:`~neurocore.hardware.corespec` — ``CoreSpec`` (TrueNorth by default)
- :mod:`~neurocore.hardware.program`  — ``Program``: every core's parameters, saved as safetensors
- :mod:`~neurocore.hardware.simulator` — the neuron equations; dense and reference simulators
- :mod:`~neurocore.hardware.event`     — the event-driven simulator engine (numba)
- :mod:`~neurocore.hardware.fold`      — a trained binary network as (weights, thresholds) layers
- :mod:`~neurocore.hardware.symmetric` — symmetric kernels: family, theorem, nearest symmetric layer
- :mod:`~neurocore.hardware.colouring` — type colouring of integer blocks, ``W = B ∘ S(G)``
- :mod:`~neurocore.hardware.compiler`  — folded network → program (duplicate-axons and
  shared-types mappings)
- :mod:`~neurocore.hardware.deploy`    — run a program on a data set; compare with the model
- :mod:`~neurocore.hardware.energy`    — energy constants with provenance
"""

from neurocore.hardware.corespec import TRUENORTH, CoreSpec
from neurocore.hardware.energy import FP32_MAC, EnergyConstant, ann_energy_uj
from neurocore.hardware.program import Program
from neurocore.hardware.simulator import SimResult, Simulator, reference_simulate, simulate

__all__ = [
    "FP32_MAC", "TRUENORTH", "CoreSpec", "EnergyConstant", "Program", "SimResult", "Simulator",
    "ann_energy_uj", "reference_simulate", "simulate",
]
