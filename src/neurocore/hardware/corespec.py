"""The parameters of a neurosynaptic core model (IBM TrueNorth by default) and its neuron modes.

A :class:`CoreSpec` fixes the sizes and integer ranges every core of a program must respect: the
crossbar is ``axons × neurons``, every axon has one of ``axon_types`` types, every neuron one
signed strength per type in ``[strength_min, strength_max]``, a signed ``membrane_bits``-bit
membrane, and one destination with a delay of ``1..max_delay`` ticks. The update equations live
in :mod:`neurocore.hardware.simulator`; the program format in :mod:`neurocore.hardware.program`.

TrueNorth (Merolla et al. 2014, Akopyan et al. 2015): 256 axons × 256 neurons, 4 axon types,
9-bit signed strengths, 20-bit signed membrane, delays 1–15 ticks, 4096 cores per chip, 1 ms tick.
Other core sizes are modelled by constructing another spec, e.g. ``CoreSpec(axons=16,
neurons=16, name="tiny")``; the spec validates itself on construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from enum import IntEnum
from typing import Any

from neurocore.errors import NeurocoreError


class CoreSpecError(NeurocoreError):
    """A core specification is inconsistent or out of the ranges this package can store."""


class ResetMode(IntEnum):
    """What a neuron's membrane becomes after it spikes (``V ≥ α``)."""

    ABSOLUTE = 0  # V ← R
    LINEAR = 1  # V ← V − α
    NONE = 2  # V unchanged


class NegMode(IntEnum):
    """What a neuron's membrane becomes when it falls below its negative threshold (``V < −β``)."""

    RESET = 0  # V ← −R
    SATURATE = 1  # V ← −β


DEST_OUTPUT = -1  # dest_core value: the neuron drives output port ``dest_axon``
DEST_UNUSED = -2  # dest_core value: the neuron's spikes go nowhere

# Storage dtypes of a program (program.py) bound what a spec may ask for.
_INT16 = (-(2**15), 2**15 - 1)
_MAX_MEMBRANE_BITS = 32  # the membrane is stored (recorded) as int32
_MAX_DELAY = 255  # delays are stored as uint8
_MAX_AXON_TYPES = 127  # axon types are stored as int8


@dataclass(frozen=True)
class CoreSpec:
    """Sizes and integer ranges of one core model; TrueNorth by default."""

    axons: int = 256
    neurons: int = 256
    axon_types: int = 4
    strength_min: int = -255
    strength_max: int = 255
    membrane_bits: int = 20
    max_delay: int = 15
    cores_per_chip: int = 4096
    tick_seconds: float = 1e-3
    name: str = "truenorth"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "name":
                if not isinstance(value, str) or not value:
                    raise CoreSpecError(f"core spec: name {value!r} must be a non-empty string")
            elif f.name == "tick_seconds":
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise CoreSpecError(f"core spec {self.name!r}: tick_seconds {value!r} "
                                        "must be a number")
                if not (math.isfinite(value) and value > 0):
                    raise CoreSpecError(f"core spec {self.name!r}: tick_seconds {value!r} "
                                        "must be finite and > 0")
                object.__setattr__(self, "tick_seconds", float(value))
            elif isinstance(value, bool) or not isinstance(value, int):
                raise CoreSpecError(
                    f"core spec {self.name!r}: {f.name} {value!r} must be an integer"
                )
        limits: list[tuple[str, int, int]] = [
            ("axons", 1, 2**31 - 1),
            ("neurons", 1, 2**31 - 1),
            ("axon_types", 1, _MAX_AXON_TYPES),
            ("strength_min", *_INT16),
            ("strength_max", *_INT16),
            ("membrane_bits", 2, _MAX_MEMBRANE_BITS),
            ("max_delay", 1, _MAX_DELAY),
            ("cores_per_chip", 1, 2**31 - 1),
        ]
        for key, lo, hi in limits:
            value = getattr(self, key)
            if not lo <= value <= hi:
                raise CoreSpecError(f"core spec {self.name!r}: {key} {value} outside [{lo}, {hi}]")
        if self.strength_min > self.strength_max:
            raise CoreSpecError(
                f"core spec {self.name!r}: strength_min {self.strength_min} > "
                f"strength_max {self.strength_max}"
            )

    # ---- derived ranges ---------------------------------------------------------------------
    @property
    def membrane_min(self) -> int:
        """Lowest membrane value, −2^(bits−1)."""
        return -(2 ** (self.membrane_bits - 1))

    @property
    def membrane_max(self) -> int:
        """Highest membrane value, 2^(bits−1) − 1."""
        return 2 ** (self.membrane_bits - 1) - 1

    @property
    def strength_abs_max(self) -> int:
        """Largest |strength| the spec allows."""
        return max(abs(self.strength_min), abs(self.strength_max))

    def chips(self, cores: int) -> int:
        """Chips needed for ``cores`` cores: ceil(cores / cores_per_chip)."""
        return -(-cores // self.cores_per_chip)

    # ---- persistence -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data; :meth:`from_dict` inverts it exactly."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CoreSpec:
        """Build a spec from :meth:`to_dict` output; unknown or missing keys are errors."""
        if not isinstance(data, dict):
            raise CoreSpecError(f"core spec: expected a mapping, got {type(data).__name__}")
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise CoreSpecError(f"core spec: unknown key(s) {unknown}; known keys are {names}")
        missing = [n for n in names if n not in data]
        if missing:
            raise CoreSpecError(f"core spec: missing key(s) {missing}")
        return cls(**data)


TRUENORTH = CoreSpec()
