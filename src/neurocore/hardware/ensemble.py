"""Ensembles on one machine: several trained networks side by side, voting.

Esser et al. 2015 reached 99.42 % on MNIST with 64 networks on TrueNorth cores, each reading the
same spikes and adding its output population's votes. A neurocore ensemble is that: the members'
programs placed one after another on the cores (:func:`merge_programs`), every member reading the
same external input lines and sending its output neurons to its own output ports.

The host adds the members' class scores. That needs nothing new on the host: the N-hot decode
``(2x − 1) · (2Kᵀ − 1)`` is linear in the output bits, so the sum of the members' scores is one
decode of the concatenated output bits with the concatenated key ``[K₁ K₂ …]``. A member without
a key (its output bits are the classes) takes the identity key, whose scores are ``4·x_c`` plus
a per-frame constant: the same ranking as the bits. The merged program's metadata is therefore an
ordinary program's, and :mod:`neurocore.hardware.deploy` runs it unchanged.

The model side is :class:`Ensemble`: the members' outputs added. Its fully binary predictions
are what the merged program must reproduce frame for frame (``neurocore ensemble``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import torch
from torch import nn

from neurocore.errors import NeurocoreError
from neurocore.hardware.corespec import DEST_OUTPUT
from neurocore.hardware.program import TENSORS, Program

# metadata every member must share: the host codes the inputs and reads the outputs once
SHARED_KEYS = ("input_shape", "input_levels", "latency_ticks")


class EnsembleError(NeurocoreError):
    """Members that cannot run side by side (different inputs, latencies or core specs)."""


class Ensemble(nn.Module):
    """The members' outputs added: the model the merged program must reproduce."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise EnsembleError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.members[0](x)
        for m in self.members[1:]:
            out = out + m(x)
        return out


def _key(program: Program) -> list[list[int]]:
    """(classes, P) decode key of a member; the identity when its outputs are the classes."""
    key = json.loads(program.metadata["decode_key"])
    if key is None:
        p = program.num_outputs
        return [[int(i == j) for j in range(p)] for i in range(p)]
    return [[int(v) for v in row] for row in key]


def merge_programs(programs: Sequence[Program], names: Sequence[str] | None = None) -> Program:
    """One program running every member side by side (module docstring): cores, output ports,
    complement flags, key columns and layer-table rows in member order; the input map of each
    member points at its own cores. ``names`` label the members in errors and in the layer
    table (default ``m0``, ``m1``, …)."""
    if not programs:
        raise EnsembleError("an ensemble needs at least one member program")
    names = list(names) if names is not None else [f"m{i}" for i in range(len(programs))]
    if len(names) != len(programs):
        raise EnsembleError(f"{len(names)} names for {len(programs)} member programs")
    first = programs[0]
    for name, p in zip(names, programs, strict=True):
        missing = [k for k in (*SHARED_KEYS, "decode_key", "output_complement", "layers")
                   if k not in p.metadata]
        if missing:
            raise EnsembleError(
                f"member {name}: the program lacks the host description written by the "
                f"compiler (metadata {', '.join(missing)})"
            )
        if p.spec != first.spec:
            raise EnsembleError(f"member {name}: its core spec differs from member {names[0]}'s")
        if p.num_inputs != first.num_inputs:
            raise EnsembleError(
                f"member {name}: reads {p.num_inputs} input lines, member {names[0]} "
                f"{first.num_inputs}; members must read the same inputs"
            )
        for k in SHARED_KEYS:
            if p.metadata[k] != first.metadata[k]:
                raise EnsembleError(
                    f"member {name}: {k} is {p.metadata[k]}, member {names[0]}'s is "
                    f"{first.metadata[k]}; members must share it"
                )
    keys = [_key(p) for p in programs]
    classes = {len(k) for k in keys}
    if len(classes) != 1:
        raise EnsembleError(f"the members decode to different class counts: {sorted(classes)}")

    parts: dict[str, list[torch.Tensor]] = {name: [] for name in TENSORS}
    core0 = out0 = 0
    for p in programs:
        for name, t in p.tensors().items():
            if name == "dest_core":
                t = torch.where(t >= 0, t + core0, t)
            elif name == "dest_axon":
                t = torch.where(p.dest_core == DEST_OUTPUT, t + out0, t)
            elif name == "input_core":
                t = t + core0
            parts[name].append(t)
        core0 += p.num_cores
        out0 += p.num_outputs
    tensors = {name: torch.cat(ts) for name, ts in parts.items()}

    layers, complement = [], []
    for name, p in zip(names, programs, strict=True):
        complement += json.loads(p.metadata["output_complement"])
        for row in json.loads(p.metadata["layers"]):
            layers.append({**row, "layer": f"{name}/{row['layer']}"})
    key = [sum((k[c] for k in keys), []) for c in range(len(keys[0]))]
    strategies = sorted({p.metadata.get("strategy", "?") for p in programs})
    meta = {
        **{k: first.metadata[k] for k in SHARED_KEYS},
        "strategy": "+".join(strategies),
        "output_complement": json.dumps(complement),
        "decode_key": json.dumps(key),
        "layers": json.dumps(layers),
        "ensemble": json.dumps([
            {"member": name, "cores": p.num_cores, "outputs": p.num_outputs}
            for name, p in zip(names, programs, strict=True)
        ]),
    }
    merged = Program(**tensors, num_inputs=first.num_inputs, num_outputs=out0, spec=first.spec,
                     metadata=meta)
    merged.validate()
    return merged
