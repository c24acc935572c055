"""The duplicate-axons compiler: three-way parity and the structure of the program it writes.

Parity (the hardware claim): for random small networks with randomised batch norm (negative and
zero γ, rounding ties, so that some neurons are complemented and some never or always fire), the
fast simulator's spikes of every logical neuron's first copy at tick l, XOR the layer's
complement, equal the folded network's layer-l output, which equals the fully binarized model's;
the decoded hardware predictions equal the model's argmax; and the slow reference simulator
gives the same spikes as the fast one on a compiled program.

Structure: the mapping of the compiler's module docstring, checked on the program's tensors
(memoryless neurons, ±1 axon pairs, 2 copies per reader core, ≤ 128 inputs per core, ...).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from neurocore.errors import NeurocoreError
from neurocore.hardware.compiler import CompiledNetwork, CompileError, compile_network
from neurocore.hardware.corespec import (
    DEST_OUTPUT,
    DEST_UNUSED,
    TRUENORTH,
    CoreSpec,
    NegMode,
    ResetMode,
)
from neurocore.hardware.deploy import HostSide
from neurocore.hardware.fold import fold
from neurocore.hardware.program import Program
from neurocore.hardware.simulator import SimResult, reference_simulate, simulate
from support import BN, build, check_parity, images, model_spikes, randomise

ARCHS: dict[str, tuple[tuple[int, ...], list[dict]]] = {
    "dense_groups": (  # 32 inputs -> 24 (2 groups) -> 12 (3 groups) -> 12 -> 3 classes
        (1, 4, 4),
        [
            {"type": "thermometer", "levels": 2},
            {"type": "flatten"},
            {"type": "ternary_linear", "out_features": 24, "groups": 2},
            BN,
            {"type": "whetstone"},
            {"type": "ternary_linear", "out_features": 12, "groups": 3},
            BN,
            {"type": "noisy_relu"},
            {"type": "ternary_linear", "out_features": 12},
            BN,
            {"type": "whetstone"},
            {"type": "nhot_decode", "classes": 3, "hot": 4},
        ],
    ),
    "dense_two_readers": (  # 300 output neurons on 2 cores: each hidden neuron has 2 readers
        (1, 4, 4),
        [
            {"type": "thermometer", "levels": 1},
            {"type": "flatten"},
            {"type": "ternary_linear", "out_features": 20},
            BN,
            {"type": "whetstone"},
            {"type": "ternary_linear", "out_features": 300},
            BN,
            {"type": "whetstone"},
            {"type": "nhot_decode", "classes": 3, "hot": 100},
        ],
    ),
    "conv_pool_dense": (  # 256 inputs: the first layer spans several cores, inputs fan out
        (2, 8, 8),
        [
            {"type": "thermometer", "levels": 2},
            {"type": "ternary_conv2d", "out_channels": 6, "kernel_size": 3, "padding": 1,
             "groups": 2},
            BN,
            {"type": "whetstone"},
            {"type": "maxpool2d", "kernel_size": 2},
            {"type": "ternary_conv2d", "out_channels": 8, "kernel_size": 2, "stride": 2,
             "padding": 1, "groups": 2},
            BN,
            {"type": "noisy_relu"},
            {"type": "flatten"},
            {"type": "ternary_linear", "out_features": 10, "groups": 2},
            BN,
            {"type": "whetstone"},
            {"type": "nhot_decode", "classes": 2, "hot": 5},
        ],
    ),
    "conv_no_bn_overlap_pool": (  # θ = 0 without batch norm: T = 0, every neuron complemented
        (1, 6, 6),
        [
            {"type": "thermometer", "levels": 3},
            {"type": "ternary_conv2d", "out_channels": 4, "kernel_size": 3, "stride": 1},
            {"type": "whetstone", "variant": "sigmoid"},
            {"type": "maxpool2d", "kernel_size": 2, "stride": 1},
            {"type": "flatten"},
            {"type": "ternary_linear", "out_features": 8},
            BN,
            {"type": "whetstone"},
            {"type": "nhot_decode", "classes": 2, "hot": 4},
        ],
    ),
}


def _model(arch: str, seed: int) -> tuple[nn.Sequential, tuple[int, ...], torch.Tensor]:
    shape, layers = ARCHS[arch]
    levels = layers[0]["levels"]
    g = torch.Generator().manual_seed(100 * seed + len(arch))
    model = build(layers, shape)
    randomise(model, g, images(shape, levels, 128, g))
    return model, shape, images(shape, levels, 96, g)


# ---- parity ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_hardware_spikes_equal_folded_network_and_model(arch: str, seed: int) -> None:
    model, shape, x = _model(arch, seed)
    compiled, res = check_parity(model, shape, x)
    assert res.spikes is not None
    # the comparison is not vacuous: every layer has neurons that fire and neurons that do not
    for li, layer in enumerate(compiled.layers):
        first = torch.from_numpy(compiled.slot_of[li])
        hw = res.spikes[:, li, first[:, 0], first[:, 1]] ^ torch.from_numpy(layer.complement)
        rate = float(hw.float().mean())
        assert 0.02 < rate < 0.98, (layer.name, rate)
    complemented = sum(int(layer.complement.sum()) for layer in compiled.layers)
    assert 0 < complemented < sum(layer.size for layer in compiled.layers)
    if arch == "conv_no_bn_overlap_pool":  # θ = 0, no batch norm: T = 0 ≤ 0 everywhere
        assert bool(compiled.layers[0].complement.all())
    else:  # batch norm on every neuron layer
        _check_constant_channels(compiled, res)


def _check_constant_channels(compiled: CompiledNetwork, res: SimResult) -> None:
    """γ = 0 channels: channel 0 always fires, compiled as a complemented neuron that never
    spikes; channel 2 never fires, a plain neuron that never spikes; for every input."""
    assert res.spikes is not None
    for li, layer in enumerate(compiled.layers):
        if layer.kind == "or_pool":
            continue
        c = layer.shape[0]
        first = torch.from_numpy(compiled.slot_of[li])
        spikes = res.spikes[:, li, first[:, 0], first[:, 1]].view(len(res.spikes), c, -1)
        comp = torch.from_numpy(layer.complement).view(c, -1)
        assert bool(comp[0].all()) and not bool(comp[2].any()), layer.name
        assert not bool(spikes[:, 0].any()) and not bool(spikes[:, 2].any()), layer.name
        assert bool(spikes.any()), layer.name


def test_frames_pipelined_one_per_tick() -> None:
    """Memoryless neurons: frame k entering at tick k leaves at tick k + L − 1, unchanged by the
    frames before and after it."""
    model, shape, x = _model("conv_pool_dense", 0)
    compiled = compile_network(fold(model), shape, binary_inputs=True)
    host = HostSide.of(compiled.program)
    frames = x[:12]
    ticks = compiled.latency_ticks
    alone = simulate(compiled.program, host.encode(frames), ticks).outputs[:, ticks - 1]
    train = host.encode(frames).transpose(0, 1)  # (1, 12 ticks, inputs)
    piped = simulate(compiled.program, train, 12 + ticks - 1).outputs[0, ticks - 1:]
    assert torch.equal(piped, alone)
    assert len(set(host.decode(alone).tolist())) > 1


SMALL = CoreSpec(axons=64, neurons=64, name="small")  # 32 inputs, 64 neurons per core
TINY = CoreSpec(axons=16, neurons=16, name="tiny")  # 8 inputs, 16 neurons per core


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_parity_and_structure_on_small_cores(arch: str) -> None:
    """Small cores force what TrueNorth-sized ones rarely need on small networks: layers over
    many cores, neurons read by up to 7 cores (14 copies), inputs fanned out to many cores."""
    model, shape, x = _model(arch, 0)
    compiled, _ = check_parity(model, shape, x[:48], SMALL)
    _check_structure(compiled)
    if arch != "dense_groups":  # (that one still fits one core per layer)
        assert compiled.program.num_cores >= 2 * len(compiled.layers)
        assert max(int(p.copies.max()) for p in compiled.placement) >= 4


def _tiny_model() -> tuple[nn.Sequential, tuple[int, ...], torch.Tensor]:
    layers = [
        {"type": "thermometer", "levels": 1},
        {"type": "flatten"},
        {"type": "ternary_linear", "out_features": 8},
        BN,
        {"type": "whetstone"},
        {"type": "ternary_linear", "out_features": 20},
        BN,
        {"type": "whetstone"},
        {"type": "nhot_decode", "classes": 2, "hot": 10},
    ]
    shape = (1, 2, 4)
    g = torch.Generator().manual_seed(11)
    model = build(layers, shape)
    randomise(model, g, images(shape, 1, 64, g))
    return model, shape, images(shape, 1, 6, g)


@pytest.mark.parametrize("spec", [TRUENORTH, TINY], ids=["truenorth", "tiny"])
def test_reference_simulator_equals_fast_simulator_on_a_compiled_program(spec: CoreSpec) -> None:
    model, shape, x = _tiny_model()
    if spec is TRUENORTH:  # the reference loops over every axon of every neuron: few frames
        x = x[:3]
    compiled, fast = check_parity(model, shape, x, spec)
    _check_structure(compiled)
    program = compiled.program
    if spec is TINY:  # 20 outputs on 2 cores, so 4 copies of every hidden neuron
        assert [len(p.cores) for p in compiled.placement] == [2, 2]
    inputs = HostSide.of(program).encode(x)
    slow = reference_simulate(program, inputs, compiled.latency_ticks, record=True)
    for name in ("outputs", "spike_count", "core_spikes", "synaptic_events", "spikes",
                 "membrane"):
        a, b = getattr(fast, name), getattr(slow, name)
        assert a.dtype == b.dtype and torch.equal(a, b), name
    assert int(fast.spike_count.sum()) > 0


# ---- structure ------------------------------------------------------------------------------


def _check_structure(compiled: CompiledNetwork) -> None:
    program = compiled.program
    program.validate()
    spec = program.spec
    half = spec.axons // 2
    layers, placements = compiled.layers, compiled.placement
    last = len(layers) - 1
    crossbar = program.crossbar.numpy()
    types = program.axon_types.numpy()
    dest_core, dest_axon = program.dest_core.numpy(), program.dest_axon.numpy()

    # cores: consecutive per layer, all used, all of the program's
    assert placements[0].first_core == 0
    for p, q in zip(placements, placements[1:], strict=False):
        assert q.first_core == p.first_core + len(p.cores)
    assert placements[-1].first_core + len(placements[-1].cores) == program.num_cores

    # sources of each core's axons: (core, axon) -> logical index of the previous layer or input
    source: dict[tuple[int, int], int] = {}
    for line, c, a in zip(program.input_line.tolist(), program.input_core.tolist(),
                          program.input_axon.tolist(), strict=True):
        assert source.setdefault((c, a), line) == line
    used = np.zeros((program.num_cores, spec.neurons), dtype=bool)
    for li, p in enumerate(placements):
        first = compiled.slot_of[li]
        for ci, core in enumerate(p.cores):
            g = p.first_core + ci
            for j in core:
                gj, s0 = (int(v) for v in first[j])
                assert gj == g
                for s in range(s0, s0 + int(p.copies[j])):
                    assert not used[g, s]
                    used[g, s] = True
                    if li < last and dest_core[g, s] >= 0:
                        assert source.setdefault((int(dest_core[g, s]), int(dest_axon[g, s])),
                                                 j) == j
    # the copies exactly fill slots 0..k−1 of every core; the rest of the core is blank
    for g in range(program.num_cores):
        k = int(used[g].sum())
        assert 0 < k <= spec.neurons and bool(used[g, :k].all())
    assert bool((dest_core[~used] == DEST_UNUSED).all())
    assert not bool(crossbar.transpose(0, 2, 1)[~used].any())

    # every used neuron is memoryless: α = 1, λ = T − 1 ≥ 0, β = 0, absolute reset to 0
    u = torch.from_numpy(used)
    assert bool((program.threshold[u] == 1).all())
    assert bool((program.leak[u] >= 0).all())
    assert bool((program.neg_threshold[u] == 0).all())
    assert bool((program.reset_value[u] == 0).all())
    assert bool((program.reset_mode[u] == int(ResetMode.ABSOLUTE)).all())
    assert bool((program.neg_mode[u] == int(NegMode.RESET)).all())
    assert torch.equal(program.strengths[u], torch.tensor([[1, -1, 0, 0]], dtype=torch.int16)
                       .expand(int(u.sum()), 4))
    routed = u & (program.dest_core >= 0)
    assert bool((program.delay[routed] == 1).all())

    # axons: inputs arrive in pairs (2k type 0, 2k + 1 type 1) from one source; ≤ 128 per core
    for g in range(program.num_cores):
        axons = sorted(a for (c, a) in source if c == g)
        assert len(axons) <= spec.axons
        pairs = {a // 2 for a in axons}
        assert len(pairs) <= half and len(axons) == 2 * len(pairs)
        for k in pairs:
            assert source[(g, 2 * k)] == source[(g, 2 * k + 1)]
            assert (int(types[g, 2 * k]), int(types[g, 2 * k + 1])) == (0, 1)
        assert len({source[(g, a)] for a in axons}) == len(pairs)  # distinct inputs

    # every neuron's crossbar column is its logical weights on its inputs' axon pairs
    for li, layer in enumerate(layers):
        first = compiled.slot_of[li]
        order = np.argsort(layer.rows, kind="stable")
        rows, cols, vals = layer.rows[order], layer.cols[order], layer.vals[order]
        bounds = np.searchsorted(rows, np.arange(layer.size + 1))
        for j in range(layer.size):
            g, s = (int(v) for v in first[j])
            want = sorted(zip(cols[bounds[j]:bounds[j + 1]].tolist(),
                              vals[bounds[j]:bounds[j + 1]].tolist(), strict=True))
            axons = np.nonzero(crossbar[g, :, s])[0].tolist()
            got = sorted((source[(g, a)], 1 if a % 2 == 0 else -1) for a in axons)
            assert got == want, (layer.name, j)
            assert int(program.leak[g, s]) == int(layer.threshold[j]) - 1
            # never-firing neurons are clamped: T ≤ (number of +1 weights) + 1
            assert int(program.leak[g, s]) <= sum(v > 0 for _, v in want)
            for k in range(1, int(placements[li].copies[j])):  # duplicates are identical
                assert np.array_equal(crossbar[g, :, s + k], crossbar[g, :, s])
                assert int(program.leak[g, s + k]) == int(program.leak[g, s])

    # copies: 2 per reader core (1 if none), one to each axon of the reader's pair; the
    # readers computed from the next layer's logical synapses and placement
    for li, (layer, p) in enumerate(zip(layers, placements, strict=True)):
        first = compiled.slot_of[li]
        if li == last:
            assert bool((p.copies == 1).all())
            for j in range(layer.size):
                g, s = (int(v) for v in first[j])
                assert (int(dest_core[g, s]), int(dest_axon[g, s])) == (DEST_OUTPUT, j)
            continue
        nxt, pn = layers[li + 1], placements[li + 1]
        core_of = np.empty(nxt.size, dtype=np.int64)
        for q, core in enumerate(pn.cores):
            core_of[core] = pn.first_core + q
        for j in range(layer.size):
            readers = sorted(set(core_of[nxt.rows[nxt.cols == j]].tolist()))
            g, s0 = (int(v) for v in first[j])
            n = int(p.copies[j])
            assert n == max(1, 2 * len(readers)), (layer.name, j)
            dests = sorted((int(dest_core[g, s]), int(dest_axon[g, s])) for s in range(s0, s0 + n))
            if not readers:
                assert dests[0][0] == DEST_UNUSED
                continue
            assert [d[0] for d in dests] == [c for c in readers for _ in (0, 1)]
            for a, b in zip(dests[::2], dests[1::2], strict=True):
                assert a[1] % 2 == 0 and b[1] == a[1] + 1
    # the host's input map: every line to both axons of every core that reads it
    l0, p0 = layers[0], placements[0]
    core_of = np.empty(l0.size, dtype=np.int64)
    for q, core in enumerate(p0.cores):
        core_of[core] = p0.first_core + q
    entries: dict[int, list[tuple[int, int]]] = {}
    for line, c, a in zip(program.input_line.tolist(), program.input_core.tolist(),
                          program.input_axon.tolist(), strict=True):
        entries.setdefault(line, []).append((c, a))
    for i in range(program.num_inputs):
        readers = sorted(set(core_of[l0.rows[l0.cols == i]].tolist()))
        got = sorted(entries.get(i, []))
        assert [c for c, _ in got] == [c for c in readers for _ in (0, 1)]
        assert all(a % 2 == 0 and b == a + 1 for (_, a), (_, b) in zip(got[::2], got[1::2],
                                                                         strict=True))
    assert program.num_outputs == layers[-1].size

    # the layer table: cores add up, duplicates = copies counted in the program − neurons
    table = json.loads(program.metadata["layers"])
    assert [r["layer"] for r in table] == [layer.name for layer in layers]
    assert sum(int(r["cores"]) for r in table) == program.num_cores
    for li, (row, layer, p) in enumerate(zip(table, layers, placements, strict=True)):
        counted = int(used[p.first_core:p.first_core + len(p.cores)].sum())
        assert row["tick"] == li and row["neurons"] == layer.size
        assert row["cores"] == len(p.cores)
        assert row["hardware_neurons"] == counted
        assert row["duplicates"] == counted - layer.size
        assert row["complemented"] == int(layer.complement.sum())
    meta = program.metadata
    assert meta["strategy"] == "duplicate-axons"
    assert int(meta["latency_ticks"]) == len(layers) == compiled.latency_ticks
    assert json.loads(meta["output_complement"]) == layers[-1].complement.astype(int).tolist()


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_program_structure(arch: str) -> None:
    model, shape, _ = _model(arch, 0)
    compiled = compile_network(fold(model), shape, binary_inputs=True)
    _check_structure(compiled)
    counts = [len(p.cores) for p in compiled.placement]
    if arch == "conv_pool_dense":  # 256 inputs: layer 0 needs several cores, lines fan out
        assert counts[0] >= 2
        assert len(compiled.program.input_line) > 2 * compiled.program.num_inputs
        assert max(int(p.copies.max()) for p in compiled.placement[:-1]) >= 2
    if arch == "dense_two_readers":  # the hidden layer is read by both output cores
        assert counts == [1, 2] and bool((compiled.placement[0].copies == 4).any())
    levels = ARCHS[arch][1][0]["levels"]
    meta = compiled.program.metadata
    assert json.loads(meta["input_levels"]) == levels == compiled.input_levels
    assert json.loads(meta["input_shape"]) == list(shape)
    key = model[-1].key
    assert torch.equal(torch.tensor(json.loads(meta["decode_key"]), dtype=torch.float32), key)


def test_unread_neuron_gets_one_unused_copy() -> None:
    """A hidden neuron no core reads is compiled once, with no destination."""
    model, shape, x = _model("dense_groups", 0)
    with torch.no_grad():
        model.fc1.weight[:, 0] = 0.0  # nobody reads fc0's neuron 0
    compiled, _ = check_parity(model, shape, x)
    _check_structure(compiled)
    assert int(compiled.placement[0].copies[0]) == 1
    g, s = (int(v) for v in compiled.slot_of[0][0])
    assert int(compiled.program.dest_core[g, s]) == DEST_UNUSED


def test_save_load_gives_the_same_simulation(tmp_path: Path) -> None:
    model, shape, x = _model("conv_pool_dense", 1)
    compiled = compile_network(fold(model), shape, binary_inputs=True)
    path = tmp_path / "p.safetensors"
    compiled.program.save(path)
    loaded = Program.load(path)
    assert loaded.equal(compiled.program)
    host = HostSide.of(loaded)
    assert host.input_shape == shape and host.latency_ticks == compiled.latency_ticks
    assert torch.equal(host.output_complement, compiled.output_complement)
    a = simulate(compiled.program, host.encode(x), compiled.latency_ticks, record=True)
    b = simulate(loaded, host.encode(x), compiled.latency_ticks, record=True)
    for name in ("outputs", "spike_count", "core_spikes", "synaptic_events", "spikes"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


# ---- errors ---------------------------------------------------------------------------------


def _compile(layers: list[dict], shape: tuple[int, ...]) -> CompiledNetwork:
    model = build(layers, shape).eval()
    return compile_network(fold(model), shape, binary_inputs=True)


def test_fan_in_over_128_names_the_layer_the_limit_and_the_groups_that_fit() -> None:
    shape = (1, 10, 10)  # thermometer 2 -> 200 inputs
    model = build([
        {"type": "thermometer", "levels": 2},
        {"type": "flatten"},
        {"type": "ternary_linear", "out_features": 10},
        {"type": "whetstone"},
    ], shape).eval()
    with torch.no_grad():
        model.fc0.weight.fill_(1.0)  # every weight nonzero: 200 distinct inputs per neuron
    with pytest.raises(CompileError) as err:
        compile_network(fold(model), shape, binary_inputs=True)
    msg = str(err.value)
    assert msg.startswith("layer fc0:")
    assert "200 distinct inputs" in msg and "128" in msg
    assert "groups=2 is the smallest group count that fits" in msg
    # the hint is right: with groups=2 the same layer compiles
    model = build([
        {"type": "thermometer", "levels": 2},
        {"type": "flatten"},
        {"type": "ternary_linear", "out_features": 10, "groups": 2},
        {"type": "whetstone"},
    ], shape).eval()
    with torch.no_grad():
        model.fc0.weight.fill_(1.0)
    _check_structure(compile_network(fold(model), shape, binary_inputs=True))


def test_dense_fan_in_hint_without_a_fitting_group_count_does_not_mention_a_kernel() -> None:
    """200 inputs, 7 outputs: no group count divides both, and a dense layer has no kernel to
    shrink; the hint must say what to change instead (e.g. out_features or the input width)."""
    shape = (1, 10, 10)
    model = build([
        {"type": "thermometer", "levels": 2},
        {"type": "flatten"},
        {"type": "ternary_linear", "out_features": 7},
        {"type": "whetstone"},
    ], shape).eval()
    with torch.no_grad():
        model.fc0.weight.fill_(1.0)
    with pytest.raises(CompileError, match=r"layer fc0: a neuron reads 200 distinct inputs") as err:
        compile_network(fold(model), shape, binary_inputs=True)
    assert "kernel" not in str(err.value)


def test_conv_fan_in_hint_counts_the_kernel() -> None:
    # 16 channels × 3 × 3 = 144 > 128 inputs per neuron; groups=2 gives 72
    shape = (16, 4, 4)
    model = build([
        {"type": "ternary_conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
        {"type": "whetstone"},
    ], shape).eval()
    with torch.no_grad():
        model.conv0.weight.fill_(1.0)
    with pytest.raises(CompileError, match=r"layer conv0: a neuron reads 144 distinct inputs, "
                                           r"a core takes 128 .*groups=2 is the smallest"):
        compile_network(fold(model), shape, binary_inputs=True)


@pytest.mark.parametrize(
    ("layers", "match"),
    [
        (  # a plain linear with a bias
            [{"type": "flatten"}, {"type": "linear", "out_features": 4}, {"type": "whetstone"}],
            r"layer fc0: hardware neurons need integer pre-activations; remove the bias",
        ),
        (  # a plain conv with a bias
            [{"type": "conv2d", "out_channels": 2, "kernel_size": 3}, {"type": "whetstone"}],
            r"layer conv0: hardware neurons need integer pre-activations; remove the bias",
        ),
        (  # float weights without bias
            [{"type": "flatten"}, {"type": "linear", "out_features": 4, "bias": False},
             {"type": "whetstone"}],
            r"layer fc0: weights must be trinary",
        ),
        (  # a float read-out at the end
            [{"type": "thermometer", "levels": 2}, {"type": "flatten"},
             {"type": "ternary_linear", "out_features": 6}, {"type": "whetstone"},
             {"type": "ternary_linear", "out_features": 3}],
            r"layer fc1: a float read-out cannot run on cores",
        ),
    ],
    ids=["linear_bias", "conv_bias", "float_weights", "float_readout"],
)
def test_unmappable_layers_raise_naming_the_layer(layers: list[dict], match: str) -> None:
    with pytest.raises(CompileError, match=match):
        _compile(layers, (1, 4, 4))


@pytest.mark.parametrize("weight", [2.0, 0.5, -3.0])
def test_non_trinary_weights_are_refused(weight: float) -> None:
    model = build([{"type": "flatten"}, {"type": "linear", "out_features": 2, "bias": False},
                    {"type": "whetstone"}], (1, 2, 2)).eval()
    with torch.no_grad():
        model.fc0.weight.fill_(1.0)
        model.fc0.weight[1, 3] = weight
    with pytest.raises(CompileError, match=r"layer fc0: weights must be trinary"):
        compile_network(fold(model), (1, 2, 2))
    assert issubclass(CompileError, NeurocoreError)


def test_without_input_coding_compiling_needs_binary_inputs_asserted() -> None:
    """A first layer fed with raw inputs is refused unless the caller asserts they are 0/1;
    then the host sends them as they are and hardware equals model on binary inputs."""
    shape = (1, 1, 2)
    model = build([
        {"type": "flatten"},
        {"type": "ternary_linear", "out_features": 2},
        {"type": "whetstone"},
        {"type": "nhot_decode", "classes": 2, "hot": 1},
    ], shape).eval()
    with torch.no_grad():
        model.fc0.weight.copy_(torch.tensor([[1.0, 1.0], [-1.0, -1.0]]))
    with pytest.raises(CompileError, match=r"layer fc0: the first layer reads the raw inputs.*add a thermometer"):
        compile_network(fold(model), shape)
    compiled = compile_network(fold(model), shape, binary_inputs=True)
    assert compiled.input_levels is None
    assert json.loads(compiled.program.metadata["input_levels"]) is None
    binary = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]).view(4, *shape)
    _check_parity_no_encode(model, compiled, binary)


def _check_parity_no_encode(model: nn.Sequential, compiled: CompiledNetwork,
                            x: torch.Tensor) -> None:
    host = HostSide.of(compiled.program)
    res = simulate(compiled.program, host.encode(x), compiled.latency_ticks)
    hw = res.outputs[:, -1].bool() ^ compiled.output_complement
    ref, spikes = model_spikes(model, x)
    assert torch.equal(hw, spikes[-1].bool())
    assert torch.equal(host.decode(res.outputs[:, -1]), ref.argmax(1))
