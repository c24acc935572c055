"""The shared-types compiler strategy: one type-coloured axon per input line where a layer's core
blocks colour, duplicate axons elsewhere.

Parity (the hardware claim): small binary networks whose convolutions have symmetric ternary
kernels (``SymmetricLayer``) and randomised batch norm (so that thresholds vary and some neurons
have T ≤ 0) compile with every convolution and pooling layer on shared types; per layer, the
hardware spikes equal the folded network's and the fully binary model's (``support.check_parity``),
frames pipeline one per tick although neurons below a shared-types layer fire at rest, and
the reference, dense and event-driven simulators agree on such a program. A random
(non-symmetric) convolution falls back to duplicate axons, says so, and still matches exactly.

Structure: every neuron's effective weights ``W = B ∘ S(G)`` on its source lines are its logical
weights, under either mapping; one axon per input line in shared-types cores, a ±1 pair in
duplicate-axons ones; duplicates per reader core follow the reader's mapping; complemented
neurons only below duplicate-axons layers (or at the output), neurons that fire at rest only
below shared-types layers. Packing: whatever ``pack_shared`` returns factors core by core
(hypothesis), and a block with 5 pairwise conflicting lines is re-packed with fewer inputs.
"""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pytest
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st
from torch import nn

from neurocore.hardware.colouring import ColouringError, colour_types, effective_weights
from neurocore.hardware.compiler import (
    STRATEGIES,
    BlockColourer,
    CompiledNetwork,
    CompileError,
    LogicalLayer,
    SharedTypesError,
    compile_network,
    logical_layers,
    pack_shared,
)
from neurocore.hardware.corespec import TRUENORTH, CoreSpec
from neurocore.hardware.deploy import HostSide, own_ticks
from neurocore.hardware.fold import fold
from neurocore.hardware.simulator import reference_simulate, simulate
from neurocore.hardware.symmetric import TERNARY_TABLES, SymmetricLayer, commuting_pairs
from support import BN, build, check_parity, images, randomise

SMALL = CoreSpec(axons=80, neurons=64, name="small")  # 80 inputs shared, 40 duplicated

ARCHS: dict[str, tuple[tuple[int, ...], list[dict]]] = {
    "conv_pool_conv": (  # 2 × 8 × 8 spikes -> 8 × 8 × 8 -> OR 8 × 4 × 4 -> 8 × 4 × 4 (2 groups)
        (1, 8, 8),
        [
            {"type": "thermometer", "levels": 2},
            {"type": "ternary_conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1},
            BN,
            {"type": "whetstone"},
            {"type": "maxpool2d", "kernel_size": 2},
            {"type": "ternary_conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1,
             "groups": 2},
            BN,
            {"type": "noisy_relu"},
            {"type": "flatten"},
            {"type": "ternary_linear", "out_features": 12, "groups": 4},
            BN,
            {"type": "whetstone"},
            {"type": "nhot_decode", "classes": 3, "hot": 4},
        ],
    ),
    "strided": (  # 9 × 9 -> 6 × 4 × 4 (4×4 kernel, stride 2) -> 8 × 3 × 3 (2×2 kernel)
        (1, 9, 9),
        [
            {"type": "thermometer", "levels": 1},
            {"type": "ternary_conv2d", "out_channels": 6, "kernel_size": 4, "stride": 2,
             "padding": 1},
            BN,
            {"type": "whetstone"},
            {"type": "ternary_conv2d", "out_channels": 8, "kernel_size": 2},
            BN,
            {"type": "whetstone"},
            {"type": "flatten"},
            {"type": "ternary_linear", "out_features": 6, "groups": 3},
            BN,
            {"type": "whetstone"},
            {"type": "nhot_decode", "classes": 2, "hot": 3},
        ],
    ),
}


def symmetric_kernel(out: int, inp: int, size: int, groups: int, g: torch.Generator,
                     density: float = 1.0) -> torch.Tensor:
    """(out, inp / groups, size, size) ternary kernel, each group a random ``SymmetricLayer``:
    commuting ρ, σ, a start type per input channel, a non-zero table per output; with
    ``density`` < 1, times a random binary mask that keeps that fraction of the entries (the
    masked family of ``symmetric.after: tie-masked``)."""
    pairs = commuting_pairs()
    parts = []
    for _ in range(groups):
        rho, sigma = pairs[int(torch.randint(len(pairs), (1,), generator=g))]
        starts = tuple(int(q) for q in torch.randint(4, (inp // groups,), generator=g))
        values = tuple(TERNARY_TABLES[int(f)]
                       for f in torch.randint(1, len(TERNARY_TABLES), (out // groups,),
                                              generator=g))
        parts.append(SymmetricLayer(rho, sigma, starts, values).kernel(size))
    kernel = torch.cat(parts).float()
    if density < 1.0:
        kernel *= (torch.rand(kernel.shape, generator=g) < density).float()
    return kernel


def _model(arch: str, seed: int, random_convs: tuple[int, ...] = (), density: float = 1.0
           ) -> tuple[nn.Sequential, tuple[int, ...], torch.Tensor]:
    """Symmetric convolutions (masked to ``density``; random ternary ones at the indices in
    ``random_convs``), random ternary dense layers, randomised batch norm; and test images."""
    shape, layers = ARCHS[arch]
    levels = layers[0]["levels"]
    g = torch.Generator().manual_seed(1000 + 10 * seed + len(arch))
    model = build(layers, shape)
    convs = 0
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Conv2d) and convs not in random_convs:
                m.weight.copy_(symmetric_kernel(m.out_channels, m.in_channels, m.kernel_size[0],
                                                m.groups, g, density))
            elif isinstance(m, nn.Linear | nn.Conv2d):
                m.weight.copy_(torch.randint(-1, 2, m.weight.shape, generator=g).float())
            convs += isinstance(m, nn.Conv2d)
    randomise(model, g, images(shape, levels, 128, g), weights=None)
    return model, shape, images(shape, levels, 64, g)


def _table(compiled: CompiledNetwork) -> list[dict]:
    return json.loads(compiled.program.metadata["layers"])


# ---- parity ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("arch", "spec", "density"), [
    ("conv_pool_conv", TRUENORTH, 1.0), ("conv_pool_conv", SMALL, 1.0), ("strided", SMALL, 1.0),
    ("conv_pool_conv", SMALL, 0.6), ("strided", SMALL, 0.6)],
    ids=["conv_pool_conv-truenorth", "conv_pool_conv-small", "strided-small",
         "conv_pool_conv-small-masked", "strided-small-masked"])
def test_symmetric_convolutions_share_types_and_match_the_model(
        arch: str, spec: CoreSpec, density: float) -> None:
    """Symmetric kernels, and masked ones (zeros anywhere: the crossbar bit is free per entry),
    compile with shared types and the hardware equals the model."""
    model, shape, x = _model(arch, 0, density=density)
    compiled, res = check_parity(model, shape, x, spec, strategy="shared-types")
    assert res.spikes is not None
    _check_mapping(compiled)
    table = _table(compiled)
    assert compiled.program.metadata["strategy"] == "shared-types"
    for row, layer in zip(table, compiled.layers, strict=True):
        if layer.kind != "linear":
            assert row["mapping"] == "shared-types", row
    # not vacuous: neurons with T ≤ 0 exist, below shared-types layers they fire at rest
    assert sum(int(r["fire_at_rest"]) for r in table) > 0
    for li, layer in enumerate(compiled.layers):
        first = torch.from_numpy(compiled.slot_of[li])
        hw = res.spikes[:, li, first[:, 0], first[:, 1]] ^ torch.from_numpy(layer.complement)
        assert 0.02 < float(hw.float().mean()) < 0.98, layer.name
    # fewer cores than duplicate axons (equal where every layer fits one core either way)
    dup = compile_network(fold(model), shape, spec, binary_inputs=True)
    assert dup.program.metadata["strategy"] == "duplicate-axons"
    shared_cores, dup_cores = compiled.program.num_cores, dup.program.num_cores
    if spec is SMALL:
        assert shared_cores < dup_cores, (shared_cores, dup_cores)
    assert shared_cores <= dup_cores
    assert sum(int(r["duplicates"]) for r in table) < sum(
        int(r["duplicates"]) for r in _table(dup))


def test_a_random_convolution_falls_back_to_duplicate_axons_and_still_matches() -> None:
    """conv1 has random ternary weights: its blocks have 5 pairwise conflicting lines, so it is
    compiled with duplicate axons, the table says why, and the layers around it still share
    types (pool0 below it complements, conv0 below pool0 fires at rest)."""
    model, shape, x = _model("conv_pool_conv", 1, random_convs=(1,))
    compiled, _ = check_parity(model, shape, x, SMALL, strategy="shared-types")
    _check_mapping(compiled)
    rows = {r["layer"]: r for r in _table(compiled)}
    assert rows["conv0"]["mapping"] == rows["pool0"]["mapping"] == "shared-types"
    assert rows["conv1"]["mapping"].startswith("duplicate-axons (fallback: clique, core ")
    assert rows["conv1"]["mapping"].endswith(", 40 inputs)")  # the last try: axons / 2
    assert rows["conv0"]["fire_at_rest"] > 0 and rows["conv0"]["complemented"] == 0
    assert rows["pool0"]["fire_at_rest"] == 0
    placement = {p.name: p for p in compiled.placement}
    assert placement["conv1"].mapping == "duplicate-axons"
    assert placement["conv1"].fallback == rows["conv1"]["mapping"][len("duplicate-axons ("
                                                                        "fallback: "):-1]


def test_frames_pipeline_one_per_tick_with_neurons_that_fire_at_rest() -> None:
    """A neuron below a shared-types layer with T ≤ 0 spikes at ticks without input, but a
    memoryless layer k at tick k sees only its own frame: frame k entering at tick k leaves at
    tick k + L − 1 as it does alone."""
    model, shape, x = _model("conv_pool_conv", 1)
    compiled = compile_network(fold(model), shape, SMALL, binary_inputs=True,
                               strategy="shared-types")
    assert bool((compiled.program.leak < 0).any())
    host = HostSide.of(compiled.program)
    frames, ticks = x[:24], compiled.latency_ticks
    alone = simulate(compiled.program, host.encode(frames), ticks).outputs[:, ticks - 1]
    train = host.encode(frames).transpose(0, 1)  # (1, 24 ticks, inputs)
    piped = simulate(compiled.program, train, 24 + ticks - 1).outputs[0, ticks - 1:]
    assert torch.equal(piped, alone)
    assert len(set(host.decode(alone).tolist())) > 1


def test_a_frames_cost_is_what_a_steady_pipeline_spends_per_tick() -> None:
    """Neurons that fire at rest spike at every tick of a lone frame's simulation; the cost per
    frame (deploy.own_ticks: each layer's cores at that layer's tick) must instead equal what a
    pipeline fed the same frame at every tick spends per tick once full — counted here with no
    reference to layers or ticks."""
    model, shape, x = _model("conv_pool_conv", 1)
    compiled = compile_network(fold(model), shape, SMALL, binary_inputs=True,
                               strategy="shared-types")
    program = compiled.program
    host = HostSide.of(program)
    ticks = compiled.latency_ticks
    own = own_ticks(program, ticks)
    weights = torch.arange(program.num_cores * program.spec.neurons, dtype=torch.float64
                           ).reshape(program.num_cores, -1) % 7
    alone = simulate(program, host.encode(x[:4]), ticks, spike_weights=weights)
    repeats = ticks + 3
    for b in range(4):
        stream = host.encode(x[b : b + 1]).expand(1, repeats, -1)  # the frame at every tick
        piped = simulate(program, stream, repeats, spike_weights=weights)
        assert piped.tick_weighted is not None and alone.tick_weighted is not None
        for field in ("tick_spikes", "tick_events", "tick_weighted"):
            per_tick = getattr(piped, field)[0, ticks - 1:].sum(1)  # every tick once full
            per_frame = (getattr(alone, field)[b] * own).sum()
            assert bool((per_tick == per_frame).all()), (field, per_tick, per_frame)
    # not vacuous: alone, the frame's simulation spikes more than its own ticks account for
    assert int(alone.tick_spikes.sum()) > int((alone.tick_spikes * own).sum())


def test_reference_dense_and_event_simulators_agree_on_a_shared_types_program() -> None:
    model, shape, x = _model("strided", 1)
    compiled = compile_network(fold(model), shape, SMALL, binary_inputs=True,
                               strategy="shared-types")
    program = compiled.program
    assert int(program.axon_types.max()) >= 2  # more than the ±1 pair's two types in use
    inputs = HostSide.of(program).encode(x[:4])
    slow = reference_simulate(program, inputs, compiled.latency_ticks, record=True)
    for engine in ("dense", "event"):
        fast = simulate(program, inputs, compiled.latency_ticks, record=True, engine=engine)
        for name in ("outputs", "spike_count", "core_spikes", "synaptic_events", "spikes",
                     "membrane"):
            a, b = getattr(fast, name), getattr(slow, name)
            assert a.dtype == b.dtype and torch.equal(a, b), (engine, name)


def _wide_dense(positive: bool) -> tuple[nn.Sequential, tuple[int, ...], torch.Tensor]:
    """200 input lines, each neuron reading about 130 of them: too wide for duplicate axons."""
    shape = (1, 10, 10)
    model = build([{"type": "thermometer", "levels": 2}, {"type": "flatten"},
                   {"type": "ternary_linear", "out_features": 10}, BN, {"type": "whetstone"}],
                  shape)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        w = (torch.rand(model.fc0.weight.shape, generator=g) < 0.65).float()
        sign = torch.randint(0, 2, w.shape, generator=g) * 2 - 1
        model.fc0.weight.copy_(w if positive else w * sign)
    randomise(model, g, images(shape, 2, 128, g), weights=None)
    return model, shape, images(shape, 2, 32, g)


def test_a_layer_too_wide_for_duplicate_axons_compiles_with_shared_types_if_it_colours() -> None:
    """Fan-in 129..256 needs one axon per line: non-negative weights colour with one type, so
    only the shared-types strategy compiles the layer; random signs do not colour, and the
    error gives both mappings' reasons."""
    model, shape, x = _wide_dense(positive=True)
    with pytest.raises(CompileError, match=r"layer fc0: a neuron reads 1\d\d distinct inputs"):
        compile_network(fold(model), shape)
    compiled, _ = check_parity(model, shape, x, strategy="shared-types")
    _check_mapping(compiled)
    assert [r["mapping"] for r in _table(compiled)] == ["shared-types"]
    assert compiled.placement[0].inputs[0].size > TRUENORTH.axons // 2
    model, shape, _ = _wide_dense(positive=False)
    with pytest.raises(CompileError, match=r"layer fc0: a neuron reads .*two per input in the "
                                           r"duplicate-axons mapping.*; and no shared-types "
                                           r"packing \(core \d+ at 192 inputs per core: .*"
                                           r"pairwise conflict"):
        compile_network(fold(model), shape, strategy="shared-types")


def test_unknown_strategy_names_the_allowed_ones() -> None:
    model, shape, _ = _model("strided", 0)
    with pytest.raises(CompileError, match=r"unknown compiler strategy 'shared'; choose one of "
                                           r"duplicate-axons, shared-types"):
        compile_network(fold(model), shape, strategy="shared")  # type: ignore[arg-type]
    assert STRATEGIES == ("duplicate-axons", "shared-types")


# ---- structure ------------------------------------------------------------------------------


def _check_mapping(compiled: CompiledNetwork) -> None:
    program = compiled.program
    program.validate()
    spec = program.spec
    layers, placements = compiled.layers, compiled.placement
    last = len(layers) - 1
    dest_core, dest_axon = program.dest_core.numpy(), program.dest_axon.numpy()
    types = program.axon_types.numpy()
    weights = program.effective_weights().numpy()  # (C, A, N)

    # sources of each core's axons: (core, axon) -> logical index of the previous layer or input
    source: dict[tuple[int, int], int] = {}
    for line, c, a in zip(program.input_line.tolist(), program.input_core.tolist(),
                          program.input_axon.tolist(), strict=True):
        assert source.setdefault((c, a), line) == line
    for li, p in enumerate(placements[:-1]):
        for j in range(layers[li].size):
            g, s0 = (int(v) for v in compiled.slot_of[li][j])
            for s in range(s0, s0 + int(p.copies[j])):
                if dest_core[g, s] >= 0:
                    assert source.setdefault((int(dest_core[g, s]), int(dest_axon[g, s])),
                                             j) == j

    for li, (layer, p) in enumerate(zip(layers, placements, strict=True)):
        want: dict[int, dict[int, int]] = defaultdict(dict)
        for r, c, v in zip(layer.rows.tolist(), layer.cols.tolist(), layer.vals.tolist(),
                           strict=True):
            want[r][c] = v
        for ci, core in enumerate(p.cores):
            g = p.first_core + ci
            axons = sorted(a for (c, a) in source if c == g)
            lines = [source[(g, a)] for a in axons]
            assert sorted(set(lines)) == p.inputs[ci].tolist()
            if p.mapping == "shared-types":  # one axon per line, typed by the colouring
                assert len(lines) == len(set(lines)) <= spec.axons
                assert axons == list(range(len(axons)))
                assert np.array_equal(types[g, axons], p.types[ci])
            else:  # a (+1, −1) pair of axons per line
                assert len(axons) == 2 * len(set(lines)) <= spec.axons
                assert lines[::2] == lines[1::2]
                assert bool((types[g, axons] == np.tile([0, 1], len(lines) // 2)).all())
            assert int(p.copies[core].sum()) <= spec.neurons
            for j in core:
                gj, s0 = (int(v) for v in compiled.slot_of[li][j])
                assert gj == g
                for s in range(s0, s0 + int(p.copies[j])):
                    got: dict[int, int] = defaultdict(int)
                    for a in np.nonzero(weights[g, :, s])[0].tolist():
                        got[source[(g, a)]] += int(weights[g, a, s])
                    assert {k: v for k, v in got.items() if v} == want[j], (layer.name, j)
                    assert int(program.threshold[g, s]) == 1
                    assert int(program.leak[g, s]) == int(layer.threshold[j]) - 1

    # duplicates: one per destination axon of every reader core (1 shared, 2 duplicated)
    for li in range(last):
        nxt, pn = layers[li + 1], placements[li + 1]
        per = 1 if pn.mapping == "shared-types" else 2
        readers: list[set[int]] = [set() for _ in range(layers[li].size)]
        for q, core in enumerate(pn.cores):
            for i in np.unique(nxt.cols[np.isin(nxt.rows, core)]).tolist():
                readers[i].add(pn.first_core + q)
        for j, r in enumerate(readers):
            g, s0 = (int(v) for v in compiled.slot_of[li][j])
            n = int(placements[li].copies[j])
            assert n == max(1, per * len(r)), (layers[li].name, j)
            if r:
                assert sorted(int(dest_core[g, s]) for s in range(s0, s0 + n)) == \
                    sorted(c for c in r for _ in range(per))

    # T ≤ 0: complemented below duplicate-axons layers and at the output, else fires at rest
    for li, layer in enumerate(layers):
        at_rest = (layer.threshold <= 0) & ~layer.complement
        if li == last or placements[li + 1].mapping == "duplicate-axons":
            assert not bool(at_rest.any()), layer.name
        else:
            assert not bool(layer.complement.any()), layer.name
    table = _table(compiled)
    for row, layer, p in zip(table, layers, placements, strict=True):
        assert row["axons_used"] == p.axons_per_input * sum(len(i) for i in p.inputs)
        assert row["complemented"] == int(layer.complement.sum())
        assert row["fire_at_rest"] == int(((layer.threshold <= 0) & ~layer.complement).sum())
    assert sum(int(r["cores"]) for r in table) == program.num_cores


# ---- packing --------------------------------------------------------------------------------


def _linear(weights: np.ndarray, line_types: np.ndarray | None = None) -> LogicalLayer:
    """A dense logical layer with weights (neurons, inputs) (zeros are no synapse)."""
    rows, cols = np.nonzero(weights)
    n = weights.shape[0]
    return LogicalLayer("fc", "linear", (n,), rows, cols, weights[rows, cols].astype(np.int64),
                        np.ones(n, dtype=np.int64), np.zeros(n, dtype=bool), weights.shape[1],
                        1, 1, line_types)


def test_a_block_that_does_not_colour_is_repacked_with_fewer_inputs() -> None:
    """One neuron per pair of 5 lines, weights +1 and −1: the 5 lines pairwise conflict (a K5),
    so no core may hold all of them with 4 types; at 8 or 6 inputs a core would, at 4 not."""
    pairs = [(a, b) for a in range(5) for b in range(a + 1, 5)]
    w = np.zeros((len(pairs), 5), dtype=np.int64)
    for j, (a, b) in enumerate(pairs):
        w[j, a], w[j, b] = 1, -1
    spec = CoreSpec(axons=8, neurons=16, name="t")
    p = pack_shared(_linear(w), np.ones(len(pairs), dtype=np.int64), spec, BlockColourer())
    assert p.mapping == "shared-types" and len(p.cores) >= 2
    assert max(len(i) for i in p.inputs) <= 4
    with pytest.raises(SharedTypesError, match=r"layer fc: no shared-types packing \(core \d+ at "
                                               r"4 inputs per core: .*pairwise conflict") as err:
        pack_shared(_linear(w), np.ones(len(pairs), dtype=np.int64),
                    CoreSpec(axons=8, neurons=16, axon_types=2, name="t2"), BlockColourer())
    assert err.value.reason == "clique" and err.value.summary.endswith(", 4 inputs")


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_whatever_pack_shared_returns_factors_core_by_core(data: st.DataObject) -> None:
    neurons = data.draw(st.integers(1, 9), label="neurons")
    lines = data.draw(st.integers(1, 9), label="lines")
    values = data.draw(st.lists(st.sampled_from([-1, 0, 1, 0, 0, -1, 1, -2, 2]),
                                min_size=neurons * lines, max_size=neurons * lines),
                       label="weights")
    w = np.array(values, dtype=np.int64).reshape(neurons, lines)
    bound = data.draw(st.sampled_from([1, 2, 2, 2]), label="strength bound")
    spec = CoreSpec(axons=data.draw(st.integers(3, 8), label="axons"),
                    neurons=data.draw(st.integers(3, 8), label="spec neurons"),
                    axon_types=data.draw(st.integers(2, 4), label="types"),
                    strength_min=-bound, strength_max=bound, name="t")
    copies = np.array(data.draw(st.lists(st.integers(1, 3), min_size=neurons,
                                         max_size=neurons), label="copies"), dtype=np.int64)
    guess = np.array(data.draw(st.lists(st.integers(0, 3), min_size=lines, max_size=lines),
                               label="candidate types"), dtype=np.int8)
    layer = _linear(w, guess if data.draw(st.booleans(), label="with guess") else None)
    try:
        p = pack_shared(layer, copies, spec, BlockColourer())
    except SharedTypesError as e:
        event(f"falls back: {e.reason}")
        widest = int((w != 0).sum(1).max())
        whole = torch.from_numpy(w.T.copy())
        if e.reason == "fan-in":
            assert widest > spec.axons
        elif e.reason == "strengths":
            assert int(np.abs(w).max()) > bound
        else:  # no core colours at any limit: then the whole block does not colour either
            assert e.reason in ("values", "clique", "infeasible")
            with pytest.raises(ColouringError):
                colour_types(whole, spec.axon_types)
        return
    event(f"packed at {max(len(i) for i in p.inputs)} of {spec.axons} inputs")
    assert p.mapping == "shared-types"
    assert sorted(j for core in p.cores for j in core) == list(range(neurons))
    for core, ins, g in zip(p.cores, p.inputs, p.types, strict=True):
        assert len(ins) <= spec.axons and int(copies[core].sum()) <= spec.neurons
        read = np.unique(np.nonzero(w[core])[1])
        assert np.array_equal(ins, read)
        block = torch.from_numpy(w[core][:, ins].T.copy())  # (lines, neurons)
        gt = torch.from_numpy(g.astype(np.int64))
        assert bool(((gt >= 0) & (gt < spec.axon_types)).all())
        # S[j, t]: the one non-zero value of column j on lines of type t
        s = torch.zeros((block.shape[1], spec.axon_types), dtype=torch.int64)
        for i, j in (block != 0).nonzero().tolist():
            s[j, gt[i]] = block[i, j]
        assert torch.equal(effective_weights(block != 0, gt, s), block)
        assert bool((s.abs() <= bound).all())


def test_given_patterns_are_the_candidate_types_of_their_layer() -> None:
    """``patterns`` (as symmetric training logs them) give a conv layer's candidate line types:
    the pattern's own types, which factor every block of a masked kernel; a pattern list that
    does not fit the layer is refused naming it."""
    model, shape, _ = _model("strided", 2)
    conv = model[1]
    g = torch.Generator().manual_seed(9)
    rho, sigma = commuting_pairs()[5]
    layer = SymmetricLayer(rho, sigma, (2,), tuple(TERNARY_TABLES[int(f)] for f in
                                                   torch.randint(1, 81, (6,), generator=g)))
    with torch.no_grad():
        conv.weight.copy_(layer.kernel(4).float()
                          * (torch.rand(6, 1, 4, 4, generator=g) < 0.6).float())
    net = fold(model)
    given_layers, *_ = logical_layers(net, shape, line_types=True,
                                      patterns={"conv0": (layer,)})
    expected = layer.line_types(11, 11).view(1, 11, 11)[:, 1:10, 1:10].reshape(-1)
    assert torch.equal(torch.from_numpy(given_layers[0].line_types).long(), expected.long())
    compiled = compile_network(net, shape, SMALL, strategy="shared-types",
                               patterns={"conv0": (layer,)})
    assert _table(compiled)[0]["mapping"] == "shared-types"
    with pytest.raises(CompileError, match=r"layer conv0: 2 type patterns of \[1\] channels "
                                           r"given for a convolution of 1 groups of 1 input"):
        logical_layers(net, shape, line_types=True, patterns={"conv0": (layer, layer)})
