"""The host's side of a compiled program and the hardware-vs-model evaluation.

Golden cases: the host's thermometer coding, the decode (complemented ports, N-hot key), the
mesh hop distances. ``evaluate`` on a compiled model: 0 mismatches, and the energy figures are
the documented formulas of independently recounted synaptic events and hops; on a program
altered by one leak it reports mismatches (the check can fail).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from neurocore.data import Split
from neurocore.errors import NeurocoreError
from neurocore.hardware.compiler import compile_network
from neurocore.hardware.corespec import DEST_OUTPUT, DEST_UNUSED, CoreSpec
from neurocore.hardware.deploy import (
    HostSide,
    evaluate,
    hop_distances,
    model_predictions,
    run_program,
)
from neurocore.hardware.fold import fold
from neurocore.hardware.program import Program
from neurocore.hardware.simulator import simulate
from neurocore.layers.batchnorm import BatchNorm1d, BatchNorm2d
from neurocore.neurons.binary import fully_binary
from support import build

BN = {"type": "batchnorm", "momentum": 1.0}
MAX_VALUE = 16


# ---- host coding ----------------------------------------------------------------------------


def test_encode_is_the_models_thermometer() -> None:
    shape = (2, 1, 2)
    model = build([
        {"type": "thermometer", "levels": 3},
        {"type": "flatten"},
        {"type": "ternary_linear", "out_features": 4},
        {"type": "whetstone"},
        {"type": "nhot_decode", "classes": 2, "hot": 2},
    ], shape).eval()
    compiled = compile_network(fold(model), shape, binary_inputs=True)
    host = HostSide.of(compiled.program)
    assert host.input_shape == shape and host.input_levels == 3
    # channel 0 pixels (0, 0.25), channel 1 (0.5, 1); steps at 1/4, 2/4, 3/4; line c·3 + k
    x = torch.tensor([[[[0.0, 0.25]], [[0.5, 1.0]]]])
    golden = [0, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 1]
    spikes = host.encode(x)
    assert spikes.dtype == torch.bool and spikes.shape == (1, 1, 12)
    assert spikes[0, 0].tolist() == [bool(b) for b in golden]
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.rand(20, *shape, generator=g),
                   torch.randint(0, 5, (20, *shape), generator=g) / 4])
    assert torch.equal(host.encode(x)[:, 0], model[0](x).flatten(1).bool())


def test_decode_applies_the_complement_and_the_key() -> None:
    key = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
    host = HostSide((1, 2, 2), None, 3, torch.tensor([False, True, False, True]), key)
    out = torch.tensor([
        [0, 1, 1, 0],  # bits 0011: scores (−4, +4) -> 1 (without the complement: a tie, 0)
        [1, 0, 0, 1],  # bits 1100: (+4, −4) -> 0
        [0, 2, 1, 0],  # counts > 1 are spikes: as the first row -> 1
        [1, 1, 1, 1],  # bits 1010: (0, 0), a tie -> the first class
        [0, 0, 1, 0],  # bits 0111: (−2, +2) -> 1
    ], dtype=torch.int32)
    assert host.decode(out).tolist() == [1, 0, 1, 0, 1]
    # without a key the (complemented) bits are the scores
    plain = HostSide((1, 2, 2), None, 3, torch.tensor([True, False, False, False]), None)
    assert plain.decode(torch.tensor([[1, 0, 1, 0], [1, 1, 0, 0]])).tolist() == [2, 1]
    # without thermometer levels the host sends [x > 0.5]
    x = torch.tensor([0.0, 0.5, 0.51, 1.0]).view(1, 1, 2, 2)
    assert host.encode(x)[0, 0].tolist() == [False, False, True, True]


def test_program_without_host_metadata_is_refused() -> None:
    with pytest.raises(NeurocoreError, match="metadata lacks the host description"):
        HostSide.of(Program.blank(1))


# ---- hops -----------------------------------------------------------------------------------


def test_hop_distances_golden_three_cores() -> None:
    p = Program.blank(3, num_outputs=6)
    dest = p.dest_core.clone()
    dest[0, 0] = 0  # same core: 0 hops
    dest[0, 1] = 1  # the neighbour: 1
    dest[0, 2] = 2  # two cores along the row: 2
    dest[2, 7] = 0  # and back: 2
    dest[1, 5] = DEST_OUTPUT  # an output port: 0
    dest[1, 6] = DEST_UNUSED
    hops = hop_distances(p.replace(dest_core=dest))
    want = torch.zeros(3, 256, dtype=torch.float64)
    want[0, 1], want[0, 2], want[2, 7] = 1, 2, 2
    assert hops.dtype == torch.float64 and torch.equal(hops, want)


def test_hop_distances_golden_mesh_rows_and_chips() -> None:
    """Core k sits at row k // 64, column k % 64 of its chip; across chips a packet goes to the
    chip's edge and in from the other's (the documented approximation)."""
    tiny = CoreSpec(axons=2, neurons=2, cores_per_chip=128, name="tiny")
    p = Program.blank(130, spec=tiny)
    dest = p.dest_core.clone()
    dest[0, 0] = 64  # one row down: 1
    dest[0, 1] = 65  # one row down, one column right: 2
    dest[64, 0] = 0  # one row up: 1
    dest[1, 0] = 127  # (0, 1) -> (1, 63): 1 + 62
    dest[127, 1] = 128  # (1, 63) on chip 0 -> (0, 0) on chip 1: 0 to the edge + 0 + 1
    dest[2, 1] = 129  # (0, 2) on chip 0 -> (0, 1) on chip 1: 61 + 1 + 1
    hops = hop_distances(p.replace(dest_core=dest))
    want = torch.zeros(130, 2, dtype=torch.float64)
    want[0, 0], want[0, 1], want[64, 0], want[1, 0] = 1, 2, 1, 63
    want[127, 1], want[2, 1] = 1, 63
    assert torch.equal(hops, want)


# ---- evaluate -------------------------------------------------------------------------------


LAYERS = [
    {"type": "thermometer", "levels": 2},
    {"type": "ternary_conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
    BN,
    {"type": "whetstone"},
    {"type": "maxpool2d", "kernel_size": 2},
    {"type": "flatten"},
    {"type": "ternary_linear", "out_features": 12, "groups": 2},
    BN,
    {"type": "whetstone"},
    {"type": "nhot_decode", "classes": 3, "hot": 4},
]
SHAPE = (1, 6, 6)


def _setup(frames: int = 80) -> tuple[nn.Sequential, Split]:
    g = torch.Generator().manual_seed(3)
    model = build(LAYERS, SHAPE)
    images = torch.randint(0, MAX_VALUE + 1, (frames, *SHAPE), generator=g).to(torch.uint8)
    split = Split(images, torch.randint(0, 3, (frames,), generator=g))
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear | nn.Conv2d):
                m.weight.copy_(torch.randint(-1, 2, m.weight.shape, generator=g).float())
        model.train()
        with fully_binary(model):
            model(split.float_images(MAX_VALUE))  # batch norm statistics of the data
        for m in model:
            if isinstance(m, BatchNorm1d | BatchNorm2d):
                c = m.num_features
                m.weight.copy_(torch.randn(c, generator=g))
                m.bias.copy_(0.5 + torch.randn(c, generator=g) * 0.3)
    model.eval()
    return model, split


def _recount(program: Program, x: torch.Tensor) -> tuple[float, float, float]:
    """(spikes, synaptic events, hops) per frame, recounted from recorded spikes: every active
    axon (input map at tick 0, a routed spike one tick later) times its crossbar fan-out; hops
    as |source − destination| (all cores in row 0 of one chip)."""
    host = HostSide.of(program)
    res = simulate(program, host.encode(x), host.latency_ticks, record=True)
    assert res.spikes is not None
    b, ticks, c, n = res.spikes.shape
    a = program.spec.axons
    fanout = program.crossbar.sum(2).to(torch.float64).reshape(-1)  # (C·A,)
    bits = host.encode(x)[:, 0].to(torch.float64)  # (B, inputs)
    active = torch.zeros(b, c * a, dtype=torch.float64)
    rows = program.input_core.long() * a + program.input_axon.long()
    active.index_add_(1, rows, bits[:, program.input_line.long()])
    events = ((active > 0).double() * fanout).sum()
    dest = program.dest_core.long().reshape(-1)
    routed = dest >= 0
    target = (dest * a + program.dest_axon.long().reshape(-1))[routed]
    src = torch.arange(c)[:, None].expand(c, n).reshape(-1)[routed]
    for t in range(ticks - 1):
        fired = res.spikes[:, t].reshape(b, -1)[:, routed].double()  # (B, routed)
        active = torch.zeros(b, c * a, dtype=torch.float64)
        active.index_add_(1, target, fired)
        events += ((active > 0).double() * fanout).sum()
    spikes = res.spikes.reshape(b, ticks, -1).double()
    hops = float((spikes[:, :, routed] * (src - dest[routed]).abs().double()).sum())
    return float(res.spikes.sum()) / b, float(events) / b, hops / b


def test_evaluate_reports_no_mismatches_and_the_energy_models() -> None:
    model, split = _setup()
    compiled = compile_network(fold(model), SHAPE, binary_inputs=True)
    program = compiled.program
    assert program.num_cores < 64  # one row of one chip: hops are |source − destination|
    ev = evaluate(program, model, split, MAX_VALUE, macs=1234)
    assert ev.mismatches == 0 and ev.frames == len(split)
    assert ev.cores == program.num_cores and ev.chips == 1
    assert ev.latency_ticks == len(compiled.layers) == 2 + 1
    assert ev.latency_ms == ev.latency_ticks * 1.0 and ev.frames_per_second == 1000.0
    # the predictions are really compared: the model is not constant on this data
    with torch.no_grad(), fully_binary(model):
        preds = model(split.float_images(MAX_VALUE)).argmax(1)
    assert len(set(preds.tolist())) > 1
    assert ev.model_accuracy == ev.hardware_accuracy == int((preds == split.labels).sum()) / 80

    spikes, events, hops = _recount(program, split.float_images(MAX_VALUE))
    assert events > 0 and hops > 0
    assert math.isclose(ev.spikes_per_frame, spikes, rel_tol=1e-12)
    assert math.isclose(ev.synaptic_events_per_frame, events, rel_tol=1e-12)
    assert math.isclose(ev.hops_per_frame, hops, rel_tol=1e-12)
    e = ev.energy
    assert math.isclose(e["total_model_uj"], events * 26e-6, rel_tol=1e-12)
    static = 16.0 * program.num_cores * 1e-3  # 16 µW × cores × 1 ms, in µJ
    dynamic = 2.3e-6 * (events + hops)
    assert math.isclose(e["marginal_static_uj"], static, rel_tol=1e-12)
    assert math.isclose(e["marginal_dynamic_uj"], dynamic, rel_tol=1e-12)
    assert math.isclose(e["marginal_model_uj"], static + dynamic, rel_tol=1e-12)
    assert ev.energy_uj_per_frame == e["marginal_model_uj"]
    assert math.isclose(e["ann_fp32_uj"], 1234 * 4.6e-6, rel_tol=1e-12)
    # the layer table's spikes add up to the total
    assert [row["layer"] for row in ev.layers] == [layer.name for layer in compiled.layers]
    assert math.isclose(sum(row["spikes_per_frame"] for row in ev.layers), spikes,
                        rel_tol=1e-12)
    assert ev.to_dict()["mismatches"] == 0


def test_evaluate_frames_limit() -> None:
    model, split = _setup()
    program = compile_network(fold(model), SHAPE, binary_inputs=True).program
    ev = evaluate(program, model, split, MAX_VALUE, macs=1, frames=7)
    assert ev.frames == 7 and ev.mismatches == 0
    # predictions handed in for the whole split are cut to the frames and used as they are
    preds = model_predictions(model, split, MAX_VALUE)
    given = evaluate(program, model, split, MAX_VALUE, macs=1, frames=7, model_pred=preds)
    assert given.to_dict() == ev.to_dict()
    wrong = evaluate(program, model, split, MAX_VALUE, macs=1, frames=7, model_pred=preds + 1)
    assert wrong.mismatches == 7


def test_evaluate_sees_a_one_leak_change() -> None:
    """The check can fail: one output neuron's leak off by one changes some predictions."""
    model, split = _setup()
    compiled = compile_network(fold(model), SHAPE, binary_inputs=True)
    program = compiled.program
    host = HostSide.of(program)
    x = split.float_images(MAX_VALUE)
    with torch.no_grad(), fully_binary(model):
        want = model(x).argmax(1)
    last = len(compiled.layers) - 1
    for g, s in compiled.slot_of[last].tolist():
        for delta in (1, -1):
            leak = program.leak.clone()
            if int(leak[g, s]) + delta < 0:
                continue
            leak[g, s] += delta
            altered = program.replace(leak=leak)
            res = simulate(altered, host.encode(x), host.latency_ticks)
            differ = int((host.decode(res.outputs[:, -1]) != want).sum())
            if differ:
                ev = evaluate(altered, model, split, MAX_VALUE, macs=1)
                assert ev.mismatches == differ > 0
                assert ev.hardware_accuracy != ev.model_accuracy or differ > 0
                return
    pytest.fail("no single leak change altered a prediction: the test data is too easy")


def test_run_program_checks_the_image_shape() -> None:
    model, split = _setup(8)
    program = compile_network(fold(model), SHAPE, binary_inputs=True).program
    other = Split(torch.zeros(4, 1, 5, 5, dtype=torch.uint8), torch.zeros(4, dtype=torch.int64))
    with pytest.raises(NeurocoreError, match=r"takes images of shape \(1, 6, 6\).*\(1, 5, 5\)"):
        run_program(program, other, MAX_VALUE)
    run = run_program(program, split, MAX_VALUE, frames=5)
    assert run.predictions.shape == (5,)
