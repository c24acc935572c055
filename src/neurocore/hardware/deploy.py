"""Run a compiled network on the simulated cores and compare it with the model.

The host's side of a program is described by the program's metadata (written by the compiler):
``input_shape`` and ``input_levels`` (thermometer coding of the pixels), ``latency_ticks`` (the
output layer fires at tick L − 1), ``output_complement`` (output ports that carry 1 − n) and
``decode_key`` (the N-hot key). So a program file alone is enough to classify images
(:func:`run_program`); with the trained model beside it, :func:`evaluate` counts every frame on
which hardware and model disagree.

Frames are pipelined one per tick (every neuron is memoryless), so the throughput is one frame
per tick — 1,000 frames/s at TrueNorth's 1 ms tick — and the latency is L ticks. A frame's cost
(spikes, synaptic events, hops) is what each layer's cores do at that layer's own tick: when
frames are pipelined, a layer's cores work on other frames at the other ticks. This matters
for neurons that fire with no input (``fire_at_rest`` in the layer table): simulated alone, a
frame would also count their spikes at every other tick.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from neurocore.data import Split
from neurocore.errors import NeurocoreError
from neurocore.hardware.energy import (
    FP32_MAC,
    TN_PER_HOP,
    TN_STATIC_PER_CORE,
    TN_TOTAL_PER_EVENT,
    ann_energy_uj,
    truenorth_energy_uj,
)
from neurocore.hardware.program import Program
from neurocore.hardware.simulator import make_simulator
from neurocore.layers.encode import thermometer
from neurocore.layers.output import nhot_decode
from neurocore.neurons.binary import fully_binary

MESH = 64  # TrueNorth's cores form a 64 × 64 mesh; core k sits at (k // 64, k % 64) of its chip


@dataclass(frozen=True)
class HostSide:
    input_shape: tuple[int, ...]
    input_levels: int | None
    latency_ticks: int
    output_complement: torch.Tensor  # (P,) bool
    key: torch.Tensor | None  # (classes, P)

    @classmethod
    def of(cls, program: Program) -> HostSide:
        meta = program.metadata
        try:
            key = json.loads(meta["decode_key"])
            return cls(
                tuple(json.loads(meta["input_shape"])),
                json.loads(meta["input_levels"]),
                int(meta["latency_ticks"]),
                torch.tensor(json.loads(meta["output_complement"]), dtype=torch.bool),
                torch.tensor(key, dtype=torch.float32) if key is not None else None,
            )
        except (KeyError, ValueError) as e:
            raise NeurocoreError(
                f"program metadata lacks the host description written by the compiler ({e})"
            ) from None

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) floats in [0, 1] -> (B, 1, inputs) spikes for tick 0."""
        bits = thermometer(x, self.input_levels) if self.input_levels else x
        return bits.flatten(1)[:, None, :] > 0.5

    def decode(self, out_spikes: torch.Tensor) -> torch.Tensor:
        """(B, P) output spikes at the last tick -> (B,) predicted classes."""
        bits = (out_spikes > 0) ^ self.output_complement
        scores = nhot_decode(bits.float(), self.key) if self.key is not None else bits.float()
        return scores.argmax(1)


def hop_distances(program: Program) -> torch.Tensor:
    """(C, N) mesh hops of each neuron's spike packets: Manhattan distance between source and
    destination cores within a chip (0 for outputs, unused neurons and the same core); a packet
    to another chip is counted as the hops to the chip edge plus in from the other's edge."""
    c = program.num_cores
    per_chip = program.spec.cores_per_chip
    src = torch.arange(c)[:, None].expand(c, program.spec.neurons)
    dst = program.dest_core.to(torch.int64)
    routed = dst >= 0
    dst = torch.where(routed, dst, src)
    same_chip = (src // per_chip) == (dst // per_chip)
    s, d = src % per_chip, dst % per_chip
    within = (s // MESH - d // MESH).abs() + (s % MESH - d % MESH).abs()
    across = (MESH - 1 - s % MESH) + (d % MESH) + 1
    return torch.where(same_chip, within, across).to(torch.float64) * routed


def own_ticks(program: Program, ticks: int) -> torch.Tensor:
    """(ticks, C) int64 mask: 1 where core c works on the frame that entered at tick 0, i.e. at
    its layer's tick (from the compiler's layer table in the metadata; without one, every
    tick counts)."""
    mask = torch.zeros((ticks, program.num_cores), dtype=torch.int64)
    layers = json.loads(program.metadata.get("layers", "[]"))
    if not layers:
        return mask + 1
    start = 0
    for row in layers:
        mask[int(row["tick"]), start:start + int(row["cores"])] = 1
        start += int(row["cores"])
    return mask


@dataclass
class HardwareRun:
    predictions: torch.Tensor  # (frames,)
    spikes_per_frame: float
    synaptic_events_per_frame: float
    hops_per_frame: float
    core_spikes_per_frame: torch.Tensor  # (C,)


def run_program(program: Program, split: Split, max_value: int, batch_size: int = 500,
                frames: int | None = None, engine: str = "auto") -> HardwareRun:
    """Classify a split's images on the simulated cores (inputs at tick 0, read at L − 1);
    ``engine`` as :func:`~neurocore.hardware.simulator.make_simulator`."""
    host = HostSide.of(program)
    sim = make_simulator(program, engine)
    hops = hop_distances(program)
    own = own_ticks(program, host.latency_ticks)  # (ticks, C)
    preds, spikes, events, hop_total = [], 0, 0, 0.0
    core_spikes = torch.zeros(program.num_cores, dtype=torch.int64)
    n = 0
    for x, _ in split.batches(batch_size, max_value):
        if frames is not None and n >= frames:
            break
        if frames is not None:
            x = x[: frames - n]
        if tuple(x.shape[1:]) != host.input_shape:
            raise NeurocoreError(
                f"the program takes images of shape {host.input_shape}, the data has "
                f"{tuple(x.shape[1:])}"
            )
        res = sim.run(host.encode(x), host.latency_ticks, spike_weights=hops)
        preds.append(host.decode(res.outputs[:, host.latency_ticks - 1]))
        frame_spikes = (res.tick_spikes * own).sum(1)  # (B, C) at each layer's own tick
        spikes += int(frame_spikes.sum())
        events += int((res.tick_events * own).sum())
        assert res.tick_weighted is not None
        hop_total += float((res.tick_weighted * own).sum())
        core_spikes += frame_spikes.sum(0)
        n += len(x)
    count = max(n, 1)
    return HardwareRun(torch.cat(preds) if preds else torch.zeros(0, dtype=torch.int64),
                       spikes / count, events / count, hop_total / count,
                       core_spikes.to(torch.float64) / count)


@dataclass
class HardwareEvaluation:
    frames: int
    cores: int
    chips: int
    hardware_accuracy: float
    model_accuracy: float
    mismatches: int
    spikes_per_frame: float
    synaptic_events_per_frame: float
    hops_per_frame: float
    latency_ticks: int
    latency_ms: float
    frames_per_second: float
    energy_uj_per_frame: float  # the marginal model (static of used cores + events + hops)
    energy: dict[str, Any]
    layers: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def model_outputs(model: nn.Module, split: Split, max_value: int,
                  batch_size: int = 1000) -> torch.Tensor:
    """(N, classes) scores of the fully binary model over a split, in eval mode (restored)."""
    was = model.training
    model.eval()
    out = []
    with fully_binary(model):
        for x, _ in split.batches(batch_size, max_value):
            out.append(model(x))
    model.train(was)
    return torch.cat(out)


def model_predictions(model: nn.Module, split: Split, max_value: int,
                      frames: int | None = None, batch_size: int = 1000) -> torch.Tensor:
    preds = model_outputs(model, split, max_value, batch_size).argmax(1)
    return preds[:frames] if frames is not None else preds


def evaluate(program: Program, model: nn.Module, split: Split, max_value: int, macs: int,
             frames: int | None = None, engine: str = "auto",
             model_pred: torch.Tensor | None = None) -> HardwareEvaluation:
    """Hardware predictions against the fully binary model's, with cost and energy per frame.
    ``model_pred``: the model's predictions on the whole split when already known."""
    run = run_program(program, split, max_value, frames=frames, engine=engine)
    if model_pred is None:
        model_pred = model_predictions(model, split, max_value, frames)
    elif frames is not None:
        model_pred = model_pred[:frames]
    labels = split.labels[: len(run.predictions)]
    host = HostSide.of(program)
    tick = program.spec.tick_seconds
    energy = truenorth_energy_uj(run.synaptic_events_per_frame, program.num_cores, tick,
                                 run.hops_per_frame)
    ann = ann_energy_uj(macs)
    layers = json.loads(program.metadata.get("layers", "[]"))
    start = 0
    for row in layers:
        row["spikes_per_frame"] = float(run.core_spikes_per_frame[start:start + row["cores"]].sum())
        start += row["cores"]
    frames_n = len(run.predictions)
    return HardwareEvaluation(
        frames=frames_n,
        cores=program.num_cores,
        chips=program.chips(),
        hardware_accuracy=int((run.predictions == labels).sum()) / max(frames_n, 1),
        model_accuracy=int((model_pred == labels).sum()) / max(frames_n, 1),
        mismatches=int((run.predictions != model_pred).sum()),
        spikes_per_frame=run.spikes_per_frame,
        synaptic_events_per_frame=run.synaptic_events_per_frame,
        hops_per_frame=run.hops_per_frame,
        latency_ticks=host.latency_ticks,
        latency_ms=host.latency_ticks * tick * 1e3,
        frames_per_second=1.0 / tick,
        energy_uj_per_frame=energy["marginal_model_uj"],
        energy={
            **energy,
            "ann_fp32_uj": ann,
            "frame_seconds": tick,
            "constants": {
                "total_per_event": TN_TOTAL_PER_EVENT.as_dict(),
                "static_per_core": TN_STATIC_PER_CORE.as_dict(),
                "per_hop": TN_PER_HOP.as_dict(),
                "ann_per_mac": FP32_MAC.as_dict(),
            },
            "note": "frames pipelined one per tick: static energy of the used cores over one "
                    "tick per frame; op-count energies ignore off-chip data movement",
        },
        layers=layers,
    )
