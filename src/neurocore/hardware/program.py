"""A program for a machine of neurosynaptic cores: every core's parameters stacked as tensors.

A core has a binary crossbar ``B`` (axons × neurons), a type ``G_i`` per axon and per neuron one
signed strength per type ``S_j[0..T−1]``; its effective weights are ``W_ij = B_ij · S_j[G_i]``
(``W = B ∘ S(G)``, :meth:`Program.effective_weights`). The neuron update that consumes these
parameters is stated once, in :mod:`neurocore.hardware.simulator`.

File format (``.safetensors``, written atomically by :meth:`Program.save`; no pickle)
--------------------------------------------------------------------------------------
C cores, A = spec.axons, N = spec.neurons, T = spec.axon_types, K input-map entries.

=============== ========= ========= ===================================================
tensor          dtype     shape     meaning
=============== ========= ========= ===================================================
crossbar        bool      (C, A, N) B: axon i of core c connects to neuron j
axon_types      int8      (C, A)    G: type of each axon, 0..T−1
strengths       int16     (C, N, T) S: neuron j's strength for each axon type,
                                    in [strength_min, strength_max]
leak            int32     (C, N)    λ: subtracted from V every tick, in the membrane range
threshold       int32     (C, N)    α: spike when V ≥ α, in [1, membrane_max]
neg_threshold   int32     (C, N)    β: negative action when V < −β, in [0, membrane_max]
reset_value     int32     (C, N)    R: absolute reset V ← R, negative reset V ← −R,
                                    in [−membrane_max, membrane_max]
reset_mode      uint8     (C, N)    :class:`ResetMode`: 0 absolute, 1 linear, 2 none
neg_mode        uint8     (C, N)    :class:`NegMode`: 0 reset (V ← −R), 1 saturate (V ← −β)
dest_core       int32     (C, N)    destination core 0..C−1, or −1 output port, −2 unused
dest_axon       int32     (C, N)    destination axon 0..A−1 (core destination), or output
                                    port 0..num_outputs−1 (dest_core −1); ignored if unused
delay           uint8     (C, N)    ticks to the destination axon, 1..max_delay; checked and
                                    used only for core destinations
input_line      int32     (K,)      external input line 0..num_inputs−1 of map entry k ...
input_core      int32     (K,)      ... feeds core input_core[k] (0..C−1) ...
input_axon      int32     (K,)      ... axon input_axon[k] (0..A−1); a line may feed several axons
=============== ========= ========= ===================================================

The safetensors metadata (string → string) holds:

- ``format``: ``"neurocore-program/1"``;
- ``spec``: the :class:`CoreSpec` as JSON (:meth:`CoreSpec.to_dict`);
- ``num_inputs``, ``num_outputs``: decimal integers;
- ``metadata``: the program's free-form ``dict[str, str]`` as a JSON object.

Several neurons may target one axon (their spikes OR) and several may drive one output port
(their spikes add). More cores than ``spec.cores_per_chip`` is allowed: a program may span chips
(:meth:`Program.chips`). :meth:`Program.load` validates what it reads.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from neurocore.errors import NeurocoreError
from neurocore.hardware.corespec import (
    DEST_OUTPUT,
    DEST_UNUSED,
    TRUENORTH,
    CoreSpec,
    CoreSpecError,
    NegMode,
    ResetMode,
)
from neurocore.io import atomic_write_bytes

FORMAT = "neurocore-program/1"


class ProgramError(NeurocoreError):
    """A program breaks a bound of its core spec, or a program file cannot be read."""


# name -> (dtype, shape in symbols): C cores, A axons, N neurons, T axon types, K map entries.
TENSORS: dict[str, tuple[torch.dtype, tuple[str, ...]]] = {
    "crossbar": (torch.bool, ("C", "A", "N")),
    "axon_types": (torch.int8, ("C", "A")),
    "strengths": (torch.int16, ("C", "N", "T")),
    "leak": (torch.int32, ("C", "N")),
    "threshold": (torch.int32, ("C", "N")),
    "neg_threshold": (torch.int32, ("C", "N")),
    "reset_value": (torch.int32, ("C", "N")),
    "reset_mode": (torch.uint8, ("C", "N")),
    "neg_mode": (torch.uint8, ("C", "N")),
    "dest_core": (torch.int32, ("C", "N")),
    "dest_axon": (torch.int32, ("C", "N")),
    "delay": (torch.uint8, ("C", "N")),
    "input_line": (torch.int32, ("K",)),
    "input_core": (torch.int32, ("K",)),
    "input_axon": (torch.int32, ("K",)),
}


@dataclass(frozen=True, eq=False)
class Program:
    """All cores of a program as stacked tensors (see the module docstring for every field).

    Construction does not validate (so that a broken program can be inspected); call
    :meth:`validate`, which :meth:`save`, :meth:`load` and the simulators do.
    """

    crossbar: torch.Tensor  # (C, A, N) bool
    axon_types: torch.Tensor  # (C, A) int8
    strengths: torch.Tensor  # (C, N, T) int16
    leak: torch.Tensor  # (C, N) int32
    threshold: torch.Tensor  # (C, N) int32
    neg_threshold: torch.Tensor  # (C, N) int32
    reset_value: torch.Tensor  # (C, N) int32
    reset_mode: torch.Tensor  # (C, N) uint8, ResetMode
    neg_mode: torch.Tensor  # (C, N) uint8, NegMode
    dest_core: torch.Tensor  # (C, N) int32; -1 output, -2 unused
    dest_axon: torch.Tensor  # (C, N) int32
    delay: torch.Tensor  # (C, N) uint8
    input_line: torch.Tensor  # (K,) int32
    input_core: torch.Tensor  # (K,) int32
    input_axon: torch.Tensor  # (K,) int32
    num_inputs: int
    num_outputs: int
    spec: CoreSpec = TRUENORTH
    metadata: dict[str, str] = field(default_factory=dict)

    # ---- construction ------------------------------------------------------------------------
    @classmethod
    def blank(
        cls, num_cores: int, num_inputs: int = 0, num_outputs: int = 0, spec: CoreSpec = TRUENORTH
    ) -> Program:
        """A valid program of ``num_cores`` empty cores: no synapses, no input map, every neuron
        unused, threshold 1, leak 0, absolute reset to 0, negative saturate at 0, delay 1."""
        c, a, n, t = num_cores, spec.axons, spec.neurons, spec.axon_types

        def full(shape: tuple[int, ...], value: int, dtype: torch.dtype) -> torch.Tensor:
            return torch.full(shape, value, dtype=dtype)

        return cls(
            crossbar=torch.zeros((c, a, n), dtype=torch.bool),
            axon_types=full((c, a), 0, torch.int8),
            strengths=full((c, n, t), 0, torch.int16),
            leak=full((c, n), 0, torch.int32),
            threshold=full((c, n), 1, torch.int32),
            neg_threshold=full((c, n), 0, torch.int32),
            reset_value=full((c, n), 0, torch.int32),
            reset_mode=full((c, n), int(ResetMode.ABSOLUTE), torch.uint8),
            neg_mode=full((c, n), int(NegMode.SATURATE), torch.uint8),
            dest_core=full((c, n), DEST_UNUSED, torch.int32),
            dest_axon=full((c, n), 0, torch.int32),
            delay=full((c, n), 1, torch.uint8),
            input_line=torch.zeros(0, dtype=torch.int32),
            input_core=torch.zeros(0, dtype=torch.int32),
            input_axon=torch.zeros(0, dtype=torch.int32),
            num_inputs=num_inputs,
            num_outputs=num_outputs,
            spec=spec,
        )

    def replace(self, **changes: Any) -> Program:
        """A copy with some fields replaced (tensors are shared, not copied)."""
        return dataclasses.replace(self, **changes)

    # ---- derived -----------------------------------------------------------------------------
    @property
    def num_cores(self) -> int:
        return int(self.crossbar.shape[0])

    def chips(self) -> int:
        """Chips the program occupies: ceil(C / spec.cores_per_chip)."""
        return self.spec.chips(self.num_cores)

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor field by name, in file order."""
        return {name: getattr(self, name) for name in TENSORS}

    def effective_weights(self) -> torch.Tensor:
        """W = B ∘ S(G): ``W[c, i, j] = B[c, i, j] · S[c, j, G[c, i]]``, shape (C, A, N) int32."""
        s = self.strengths.to(torch.int32).transpose(1, 2)  # (C, T, N)
        c, a, n = self.crossbar.shape
        g = self.axon_types.to(torch.int64)[:, :, None].expand(c, a, n)  # (C, A, N)
        return torch.gather(s, 1, g) * self.crossbar.to(torch.int32)  # (C, A, N)

    def equal(self, other: Program) -> bool:
        """Same spec, sizes, metadata and bit-identical tensors (dtype and shape included)."""
        return (
            self.spec == other.spec
            and self.num_inputs == other.num_inputs
            and self.num_outputs == other.num_outputs
            and self.metadata == other.metadata
            and all(
                a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
                for a, b in zip(self.tensors().values(), other.tensors().values(), strict=True)
            )
        )

    # ---- validation --------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise one :class:`ProgramError` for the first broken bound, naming where it is."""
        spec = self.spec
        if not isinstance(spec, CoreSpec):
            raise ProgramError(f"program: spec must be a CoreSpec, got {type(spec).__name__}")
        for key in ("num_inputs", "num_outputs"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ProgramError(f"program: {key} {value!r} must be an integer ≥ 0")
        if not isinstance(self.metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.metadata.items()
        ):
            raise ProgramError("program: metadata must be a dict[str, str]")
        self._check_shapes()
        self._check_values()

    def _check_shapes(self) -> None:
        spec = self.spec
        if not isinstance(self.crossbar, torch.Tensor) or self.crossbar.dim() != 3:
            raise ProgramError("program: crossbar must be a 3-d tensor (cores, axons, neurons)")
        if self.crossbar.shape[0] < 1:
            raise ProgramError("program: crossbar has 0 cores; a program needs at least one")
        if not isinstance(self.input_line, torch.Tensor) or self.input_line.dim() != 1:
            raise ProgramError("program: input_line must be a 1-d tensor (map entries,)")
        sizes = {
            "C": self.num_cores,
            "A": spec.axons,
            "N": spec.neurons,
            "T": spec.axon_types,
            "K": int(self.input_line.shape[0]),
        }
        for name, (dtype, symbols) in TENSORS.items():
            t = getattr(self, name)
            if not isinstance(t, torch.Tensor):
                raise ProgramError(f"program: {name} must be a tensor, got {type(t).__name__}")
            expected = tuple(sizes[s] for s in symbols)
            if tuple(t.shape) != expected:
                raise ProgramError(
                    f"program: {name} has shape {tuple(t.shape)}, expected "
                    f"({', '.join(symbols)}) = {expected} for spec {spec.name!r}"
                )
            if t.dtype != dtype:
                raise ProgramError(f"program: {name} has dtype {t.dtype}, expected {dtype}")

    def _check_values(self) -> None:
        spec = self.spec
        c_count, vmax = self.num_cores, spec.membrane_max

        def neuron(i: list[int]) -> str:
            return f"core {i[0]} neuron {i[1]}"

        def axon(i: list[int]) -> str:
            return f"core {i[0]} axon {i[1]}"

        _in_range(self.axon_types, "axon type", 0, spec.axon_types - 1, axon)
        _in_range(self.strengths, "strength", spec.strength_min, spec.strength_max, neuron,
                  detail=lambda i: f" (axon type {i[2]})")
        _in_range(self.leak, "leak", spec.membrane_min, vmax, neuron)
        _in_range(self.threshold, "threshold", 1, vmax, neuron)
        _in_range(self.neg_threshold, "neg_threshold", 0, vmax, neuron)
        _in_range(self.reset_value, "reset_value", -vmax, vmax, neuron)
        _in_range(self.reset_mode, "reset_mode", 0, int(max(ResetMode)), neuron,
                  detail=lambda i: " (0 absolute, 1 linear, 2 none)")
        _in_range(self.neg_mode, "neg_mode", 0, int(max(NegMode)),
                  neuron, detail=lambda i: " (0 reset, 1 saturate)")
        _in_range(self.dest_core, "dest_core", DEST_UNUSED, c_count - 1, neuron,
                  detail=lambda i: f" (program has {c_count} cores; -1 output, -2 unused)")
        to_core = self.dest_core >= 0
        _in_range(self.dest_axon, "dest_axon", 0, spec.axons - 1, neuron, where=to_core,
                  detail=lambda i: f" (core destination {int(self.dest_core[i[0], i[1]])})")
        _in_range(self.delay, "delay", 1, spec.max_delay, neuron, where=to_core)
        _in_range(self.dest_axon, "output port (dest_axon)", 0, self.num_outputs - 1, neuron,
                  where=self.dest_core == DEST_OUTPUT,
                  detail=lambda i: f" (num_outputs {self.num_outputs})")

        def entry(i: list[int]) -> str:
            return f"input map entry {i[0]}"

        _in_range(self.input_line, "input_line", 0, self.num_inputs - 1, entry,
                  detail=lambda i: f" (num_inputs {self.num_inputs})")
        _in_range(self.input_core, "input_core", 0, c_count - 1, entry,
                  detail=lambda i: f" (program has {c_count} cores)")
        _in_range(self.input_axon, "input_axon", 0, spec.axons - 1, entry)

    # ---- persistence -------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Validate, then write the program atomically as safetensors (format in module doc)."""
        self.validate()
        meta = {
            "format": FORMAT,
            "spec": json.dumps(self.spec.to_dict()),
            "num_inputs": str(self.num_inputs),
            "num_outputs": str(self.num_outputs),
            "metadata": json.dumps(self.metadata, sort_keys=True),
        }
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.tensors().items()}
        atomic_write_bytes(path, st_save(tensors, metadata=meta))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Program:
        """Read a program written by :meth:`save` and validate it."""
        path = Path(path)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            raise ProgramError(f"{path}: program file not found") from None
        except IsADirectoryError:
            raise ProgramError(f"{path}: is a folder, not a program file") from None
        try:
            tensors = st_load(blob)
            header_len = int.from_bytes(blob[:8], "little")
            header = json.loads(blob[8 : 8 + header_len])
            meta = header.get("__metadata__") or {}
        except (SafetensorError, ValueError, AttributeError) as e:
            raise ProgramError(f"{path}: not a readable safetensors file ({e})") from None
        if meta.get("format") != FORMAT:
            raise ProgramError(
                f"{path}: not a neurocore program (format tag {meta.get('format')!r}, "
                f"expected {FORMAT!r})"
            )
        try:
            spec = CoreSpec.from_dict(json.loads(meta["spec"]))
            num_inputs = int(meta["num_inputs"])
            num_outputs = int(meta["num_outputs"])
            metadata = json.loads(meta["metadata"])
        except KeyError as e:
            raise ProgramError(f"{path}: metadata key {e} missing") from None
        except (ValueError, CoreSpecError) as e:
            raise ProgramError(f"{path}: bad program metadata ({e})") from None
        for name in TENSORS:
            if name not in tensors:
                raise ProgramError(f"{path}: missing tensor {name!r}")
        extra = sorted(set(tensors) - set(TENSORS))
        if extra:
            raise ProgramError(f"{path}: unexpected tensor(s) {extra}")
        program = cls(
            **{name: tensors[name] for name in TENSORS},
            num_inputs=num_inputs,
            num_outputs=num_outputs,
            spec=spec,
            metadata=metadata,
        )
        try:
            program.validate()
        except ProgramError as e:
            raise ProgramError(f"{path}: {e}") from None
        return program


def _in_range(
    t: torch.Tensor,
    name: str,
    lo: int,
    hi: int,
    locate: Callable[[list[int]], str],
    where: torch.Tensor | None = None,
    detail: Callable[[list[int]], str] = lambda i: "",
) -> None:
    """Raise for the first element of ``t`` (where ``where``) outside [lo, hi]."""
    v = t.to(torch.int64)
    bad = (v < lo) | (v > hi)
    if where is not None:
        bad &= where
    count = int(bad.sum())
    if count == 0:
        return
    idx = [int(x) for x in bad.nonzero()[0]]
    more = f"; {count - 1} more element(s) of {name} also out of range" if count > 1 else ""
    raise ProgramError(
        f"{locate(idx)}: {name} {int(v[tuple(idx)])} outside [{lo}, {hi}]{detail(idx)}{more}"
    )
