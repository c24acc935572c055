"""Simulators: hand-computed golden traces, and fast ↔ reference parity with ``torch.equal``.

Every golden trace is checked on all three simulators (dense, event-driven, reference); the
parity tests draw random small programs (all reset and negative modes, routes to cores, outputs
and nowhere, random delays, membranes of 4 to 26 bits so saturation is common and both float32
and float64 dense paths run, cores without leak so the event engine skips idle cores) and count
each fast engine's ticks to prove it ran.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st

from neurocore.errors import NeurocoreError
from neurocore.hardware import event as event_engine
from neurocore.hardware.corespec import CoreSpec, NegMode, ResetMode
from neurocore.hardware.event import EventSimulator
from neurocore.hardware.program import Program, ProgramError
from neurocore.hardware.simulator import (
    SimResult,
    SimulationError,
    Simulator,
    exact_dtype,
    make_simulator,
    reference_simulate,
    simulate,
)

FIELDS = ("outputs", "tick_spikes", "tick_events", "tick_weighted", "spikes", "membrane",
          "spike_count", "core_spikes", "synaptic_events", "weighted_spikes")
GOLD = CoreSpec(axons=4, neurons=4, max_delay=4, name="gold")  # 20-bit membrane, ±255


def _edit(p: Program, **changes: dict[tuple[int, ...], int]) -> Program:
    """Set single elements: ``_edit(p, threshold={(core, neuron): 5})``."""
    new = {}
    for name, entries in changes.items():
        t = getattr(p, name).clone()
        for index, value in entries.items():
            t[index] = value
        new[name] = t
    return p.replace(**new)


def _input_map(p: Program, entries: list[tuple[int, int, int]]) -> Program:
    """entries: (line, core, axon)."""
    cols = list(zip(*entries, strict=True))
    return p.replace(**{
        name: torch.tensor(col, dtype=torch.int32)
        for name, col in zip(("input_line", "input_core", "input_axon"), cols, strict=True)
    })


def _spikes(*trains: list[int]) -> torch.Tensor:
    """One frame; each argument is one input line's spike train -> (1, ticks, lines) bool."""
    return torch.tensor(trains, dtype=torch.bool).T[None]


def _both(p: Program, x: torch.Tensor, ticks: int) -> SimResult:
    """Run the reference and both fast engines, check all agree exactly and that each fast
    engine ran; return the dense engine's result."""
    sim = Simulator(p)
    fast = sim.run(x, ticks, record=True)
    assert sim.calls == ticks
    ev = EventSimulator(p)
    by_event = ev.run(x, ticks, record=True)
    assert ev.calls == ticks * x.shape[0]  # frame-ticks
    ref = reference_simulate(p, x, ticks, record=True)
    for f in FIELDS:
        _same(getattr(fast, f), getattr(ref, f), f)
        _same(getattr(by_event, f), getattr(ref, f), f)
    return fast


def _same(a: torch.Tensor | None, b: torch.Tensor | None, name: str) -> None:
    assert (a is None) == (b is None), name
    assert a is None or b is None or torch.equal(a, b), name


def _trace(r: SimResult, core: int, neuron: int) -> list[int]:
    assert r.membrane is not None
    return r.membrane[0, :, core, neuron].tolist()


def _fired(r: SimResult, core: int, neuron: int) -> list[int]:
    assert r.spikes is not None
    return r.spikes[0, :, core, neuron].int().tolist()


# ---- golden traces ----------------------------------------------------------------------------

def test_golden_leak_and_linear_reset() -> None:
    # Neuron 0: axon 0 (type 0, S=3) and axon 1 (type 1, S=2); λ=1, α=5, linear reset, β=0 saturate.
    p = Program.blank(1, num_inputs=2, num_outputs=1, spec=GOLD)
    p = _edit(
        p, crossbar={(0, 0, 0): 1, (0, 1, 0): 1}, axon_types={(0, 1): 1},
        strengths={(0, 0, 0): 3, (0, 0, 1): 2}, leak={(0, 0): 1}, threshold={(0, 0): 5},
        reset_mode={(0, 0): ResetMode.LINEAR}, neg_mode={(0, 0): NegMode.SATURATE},
        dest_core={(0, 0): -1}, dest_axon={(0, 0): 0},
    )
    p = _input_map(p, [(0, 0, 0), (1, 0, 1)])
    x = _spikes([1, 1, 0, 0, 1, 1, 1, 1], [0, 1, 0, 0, 0, 0, 1, 0])
    # t0: 0+3-1 = 2          t1: 2+3+2-1 = 6 ≥ 5 spike, 6-5 = 1     t2: 1-1 = 0
    # t3: 0-1 = -1 < -0, saturate to -β = 0                           t4: 0+3-1 = 2
    # t5: 2+3-1 = 4          t6: 4+3+2-1 = 8 spike, 8-5 = 3           t7: 3+3-1 = 5 spike, 0
    r = _both(p, x, 8)
    assert _trace(r, 0, 0) == [2, 1, 0, 0, 2, 4, 3, 0]
    assert _fired(r, 0, 0) == [0, 1, 0, 0, 0, 0, 1, 1]
    assert r.outputs[0, :, 0].tolist() == [0, 1, 0, 0, 0, 0, 1, 1]
    assert r.spike_count.tolist() == [3]
    # one connected neuron per axon: events = active axon-ticks = 1+2+0+0+1+1+2+1
    assert r.synaptic_events.tolist() == [8]
    assert _trace(r, 0, 1) == [0] * 8  # blank neurons stay at 0


def test_golden_vector_update_fires_exactly_at_threshold() -> None:
    """A core of 40 neurons (32 updated in one vector step, 8 one by one) climbing by 1 a tick
    (λ = −1) with α_j = j + 1 and an absolute reset to 0: neuron j reaches V − λ = α_j exactly
    and fires at ticks j, 2j + 1, 3j + 2, … — a spike only at V − λ > α would come a tick late.
    Neuron 38 resets linearly (V − α = 0), neuron 39 not at all (V stays ≥ α: it fires on)."""
    spec = CoreSpec(axons=8, neurons=40, axon_types=4, strength_min=-255, strength_max=255,
                    membrane_bits=20, max_delay=3, name="vector")
    n = spec.neurons
    p = Program.blank(1, num_outputs=n, spec=spec)
    mode = torch.full((1, n), int(ResetMode.ABSOLUTE), dtype=torch.uint8)
    mode[0, 38], mode[0, 39] = int(ResetMode.LINEAR), int(ResetMode.NONE)
    p = p.replace(leak=torch.full((1, n), -1, dtype=torch.int32),
                  threshold=torch.arange(1, n + 1, dtype=torch.int32)[None], reset_mode=mode,
                  dest_core=torch.full((1, n), -1, dtype=torch.int32),
                  dest_axon=torch.arange(n, dtype=torch.int32)[None])
    r = _both(p, torch.zeros((1, 0, 0), dtype=torch.bool), 90)
    for j in (0, 5, 31, 32, 37):
        assert [t for t, f in enumerate(_fired(r, 0, j)) if f] == list(range(j, 90, j + 1))
    assert _trace(r, 0, 38)[38] == 0 and _trace(r, 0, 39)[38] == 39
    assert _fired(r, 0, 39)[38:42] == [0, 1, 1, 1]  # from V − λ = 40 on, every tick


def test_golden_absolute_none_and_else_if() -> None:
    # Three neurons fed by axon 0 (S=3) every tick for 4 ticks, α=4, each to its own port.
    p = Program.blank(1, num_inputs=1, num_outputs=3, spec=GOLD)
    p = _edit(
        p,
        crossbar={(0, 0, 0): 1, (0, 0, 1): 1, (0, 0, 2): 1},
        strengths={(0, 0, 0): 3, (0, 1, 0): 3, (0, 2, 0): 3},
        threshold={(0, 0): 4, (0, 1): 4, (0, 2): 4},
        reset_mode={(0, 0): ResetMode.ABSOLUTE, (0, 1): ResetMode.NONE, (0, 2): ResetMode.ABSOLUTE},
        reset_value={(0, 0): 1, (0, 2): -2},
        neg_threshold={(0, 2): 1}, neg_mode={(0, 2): NegMode.RESET},
        dest_core={(0, 0): -1, (0, 1): -1, (0, 2): -1},
        dest_axon={(0, 0): 0, (0, 1): 1, (0, 2): 2},
    )
    p = _input_map(p, [(0, 0, 0)])
    r = _both(p, _spikes([1, 1, 1, 1]), 5)
    # n0 absolute R=1: 3 | 6 spike→1 | 4 spike→1 | 4 spike→1 | 1 (no input)
    assert _trace(r, 0, 0) == [3, 1, 1, 1, 1]
    assert r.outputs[0, :, 0].tolist() == [0, 1, 1, 1, 0]
    # n1 no reset: 3 | 6 spike | 9 spike | 12 spike | 12 still ≥ 4: spike
    assert _trace(r, 0, 1) == [3, 6, 9, 12, 12]
    assert r.outputs[0, :, 1].tolist() == [0, 1, 1, 1, 1]
    # n2 absolute R=-2, β=1 neg reset: 3 | 6 spike→-2 (a spike skips the negative check)
    #   | -2+3 = 1 | 4 spike→-2 | -2 < -1: V ← -R = 2
    assert _trace(r, 0, 2) == [3, -2, 1, -2, 2]
    assert r.outputs[0, :, 2].tolist() == [0, 1, 0, 1, 0]
    assert r.spike_count.tolist() == [3 + 4 + 2]
    assert r.synaptic_events.tolist() == [4 * 3]  # 4 active ticks × 3 connected neurons


def test_golden_negative_reset_vs_saturate() -> None:
    # Both neurons: axon 0 with S=-2 every tick, α=100, β=3, R=1; n0 neg reset, n1 saturate.
    p = Program.blank(1, num_inputs=1, spec=GOLD)
    p = _edit(
        p, crossbar={(0, 0, 0): 1, (0, 0, 1): 1}, strengths={(0, 0, 0): -2, (0, 1, 0): -2},
        threshold={(0, 0): 100, (0, 1): 100}, neg_threshold={(0, 0): 3, (0, 1): 3},
        reset_value={(0, 0): 1, (0, 1): 1},
        neg_mode={(0, 0): NegMode.RESET, (0, 1): NegMode.SATURATE},
    )
    p = _input_map(p, [(0, 0, 0)])
    r = _both(p, _spikes([1, 1, 1, 1]), 4)
    # n0: -2 | -4 < -3 → -R = -1 | -3 (not < -3) | -5 → -1
    assert _trace(r, 0, 0) == [-2, -1, -3, -1]
    # n1: -2 | -4 → -β = -3 | -5 → -3 | -5 → -3
    assert _trace(r, 0, 1) == [-2, -3, -3, -3]
    assert r.spike_count.tolist() == [0]


def test_golden_delay_three_between_cores() -> None:
    # core 0 neuron 0 (fed by input line 0) → core 1 axon 2 after 3 ticks; core 1 neuron 1
    # fires on that axon and drives output port 0.
    p = Program.blank(2, num_inputs=1, num_outputs=1, spec=GOLD)
    p = _edit(
        p, crossbar={(0, 0, 0): 1, (1, 2, 1): 1}, strengths={(0, 0, 0): 1, (1, 1, 0): 1},
        dest_core={(0, 0): 1, (1, 1): -1}, dest_axon={(0, 0): 2, (1, 1): 0}, delay={(0, 0): 3},
    )
    p = _input_map(p, [(0, 0, 0)])
    r = _both(p, _spikes([1, 0, 1]), 7)
    assert _fired(r, 0, 0) == [1, 0, 1, 0, 0, 0, 0]
    assert _fired(r, 1, 1) == [0, 0, 0, 1, 0, 1, 0]  # sent at 0 and 2, arrive at 3 and 5
    assert r.outputs[0, :, 0].tolist() == [0, 0, 0, 1, 0, 1, 0]
    assert r.synaptic_events.tolist() == [4]
    assert r.spike_count.tolist() == [4]


def test_golden_spikes_or_on_one_axon() -> None:
    # Neurons 0 and 1 fire at t0 and both target axon 3 (delay 1); input line 1 also hits axon
    # 3 at t1. Neuron 2 (S=5 from axon 3, α=100) sees ONE activation at t1: V = 5, not 10 or 15.
    p = Program.blank(1, num_inputs=2, spec=GOLD)
    p = _edit(
        p, crossbar={(0, 0, 0): 1, (0, 0, 1): 1, (0, 3, 2): 1},
        strengths={(0, 0, 0): 1, (0, 1, 0): 1, (0, 2, 0): 5}, threshold={(0, 2): 100},
        dest_core={(0, 0): 0, (0, 1): 0}, dest_axon={(0, 0): 3, (0, 1): 3},
    )
    p = _input_map(p, [(0, 0, 0), (1, 0, 3)])
    r = _both(p, _spikes([1, 0, 0], [0, 1, 0]), 3)
    assert _fired(r, 0, 0) == _fired(r, 0, 1) == [1, 0, 0]
    assert _trace(r, 0, 2) == [0, 5, 5]
    # t0: axon 0 → neurons 0 and 1 (2 events); t1: axon 3 → neuron 2 (1 event)
    assert r.synaptic_events.tolist() == [3]


def test_golden_spikes_add_on_one_output_port() -> None:
    p = Program.blank(1, num_inputs=1, num_outputs=2, spec=GOLD)
    p = _edit(
        p, crossbar={(0, 0, 0): 1, (0, 0, 1): 1, (0, 0, 2): 1},
        strengths={(0, 0, 0): 1, (0, 1, 0): 1, (0, 2, 0): 1},
        dest_core={(0, 0): -1, (0, 1): -1, (0, 2): -1}, dest_axon={(0, 0): 1, (0, 1): 1, (0, 2): 0},
    )
    p = _input_map(p, [(0, 0, 0)])
    r = _both(p, _spikes([0, 1]), 3)
    assert r.outputs[0].tolist() == [[0, 0], [1, 2], [0, 0]]


def test_golden_membrane_saturates_at_20_bits() -> None:
    vmax = GOLD.membrane_max
    assert vmax == 2**19 - 1 == 524287
    p = Program.blank(1, spec=GOLD)
    p = _edit(
        p,
        leak={(0, 0): -vmax, (0, 1): -vmax, (0, 2): vmax},  # a negative leak adds every tick
        threshold={(0, 0): vmax, (0, 1): 1, (0, 2): vmax},
        reset_mode={(0, 0): ResetMode.NONE, (0, 1): ResetMode.LINEAR},
        neg_threshold={(0, 2): vmax}, neg_mode={(0, 2): NegMode.SATURATE},
    )
    assert Simulator(p).dtype == torch.float32
    r = _both(p, torch.zeros(1, 0, 0, dtype=torch.bool), 3)
    # n0 none: 524287 spike | 1048574 spike → saturate 524287 | same
    assert _trace(r, 0, 0) == [vmax, vmax, vmax]
    assert _fired(r, 0, 0) == [1, 1, 1]
    # n1 linear α=1: 524287 → 524286 | 524286+524287-1 = 1048572 → 524287 | 1048573 → 524287
    assert _trace(r, 0, 1) == [vmax - 1, vmax, vmax]
    # n2: -524287 | -1048574 < -β → -β; V never falls below −β ≥ −2^19, the lower bound
    assert _trace(r, 0, 2) == [-vmax, -vmax, -vmax]


def test_golden_reset_below_negative_threshold_on_a_leak_free_core() -> None:
    # α=1, β=1, absolute reset R=−2 < −β, saturate, no leak: the input spike at t0 fires it,
    # the reset leaves V=−2 < −β, and the silent tick after saturates it to −β=−1. The event
    # engine must not skip the silent core at t1 (it did once: hypothesis found it).
    p = Program.blank(1, num_inputs=1, spec=GOLD)
    p = _edit(p, crossbar={(0, 0, 0): 1}, strengths={(0, 0, 0): 1}, threshold={(0, 0): 1},
              neg_threshold={(0, 0): 1}, reset_value={(0, 0): -2},
              neg_mode={(0, 0): NegMode.SATURATE})
    p = _input_map(p, [(0, 0, 0)])
    r = _both(p, _spikes([1, 0, 0]), 3)
    assert _trace(r, 0, 0) == [-2, -1, -1]
    assert _fired(r, 0, 0) == [1, 0, 0]


def test_golden_32_bit_membrane_takes_the_float64_path() -> None:
    spec = CoreSpec(axons=4, neurons=4, membrane_bits=32, name="wide")
    vmax = 2**31 - 1
    p = _edit(Program.blank(1, spec=spec), leak={(0, 0): -vmax}, threshold={(0, 0): vmax},
              reset_mode={(0, 0): ResetMode.LINEAR})
    sim = Simulator(p)
    assert sim.dtype == torch.float64  # 2^31 is beyond float32's exact integers
    r = _both(p, torch.zeros(2, 0, 0), 3)
    # vmax spike → 0 | vmax spike → 0 | ...
    assert r.membrane is not None and r.membrane[:, :, 0, 0].tolist() == [[0, 0, 0]] * 2
    p = _edit(p, reset_mode={(0, 0): ResetMode.NONE}, threshold={(0, 0): 1})
    assert _trace(_both(p, torch.zeros(1, 0, 0), 3), 0, 0) == [vmax] * 3


# ---- parity on random programs ----------------------------------------------------------------

def _dynamic_program(
    g: torch.Generator, spec: CoreSpec, cores: int, num_inputs: int, num_outputs: int,
    entries: int, quiet_cores: int = 0,
) -> Program:
    """A random valid program whose thresholds are small enough for neurons to fire; the first
    ``quiet_cores`` cores have no leak (the event engine skips such a core on silent ticks)."""
    c, a, n, t = cores, spec.axons, spec.neurons, spec.axon_types
    s, vmax = spec.strength_abs_max, spec.membrane_max
    reach = min(vmax, 2 * s)

    def ints(lo: int, hi: int, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        return torch.randint(lo, hi + 1, shape, generator=g, dtype=torch.int64).to(dtype)

    kinds = ints(0, 2, (c, n), torch.int32)  # 0 core, 1 output, 2 unused
    if num_outputs == 0:
        kinds = torch.where(kinds == 1, 0, kinds)
    dest_core = torch.where(kinds == 0, ints(0, c - 1, (c, n), torch.int32),
                            torch.where(kinds == 1, -1, -2)).to(torch.int32)
    dest_axon = torch.where(kinds == 1, ints(0, max(num_outputs - 1, 0), (c, n), torch.int32),
                            ints(0, a - 1, (c, n), torch.int32))
    k = entries if num_inputs else 0
    return Program(
        crossbar=torch.rand((c, a, n), generator=g) < 0.2 + 0.6 * torch.rand((), generator=g),
        axon_types=ints(0, t - 1, (c, a), torch.int8),
        strengths=ints(spec.strength_min, spec.strength_max, (c, n, t), torch.int16),
        leak=ints(-(reach // 4), reach // 4, (c, n), torch.int32)
        * (torch.arange(c) >= quiet_cores).to(torch.int32)[:, None],
        threshold=ints(1, reach, (c, n), torch.int32),
        neg_threshold=ints(0, reach, (c, n), torch.int32),
        reset_value=ints(-reach, reach, (c, n), torch.int32),
        reset_mode=ints(0, 2, (c, n), torch.uint8),
        neg_mode=ints(0, 1, (c, n), torch.uint8),
        dest_core=dest_core,
        dest_axon=dest_axon.to(torch.int32),
        delay=ints(1, spec.max_delay, (c, n), torch.uint8),
        input_line=ints(0, max(num_inputs - 1, 0), (k,), torch.int32),
        input_core=ints(0, c - 1, (k,), torch.int32),
        input_axon=ints(0, a - 1, (k,), torch.int32),
        num_inputs=num_inputs,
        num_outputs=num_outputs,
        spec=spec,
    )


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    axons=st.integers(8, 16), neurons=st.integers(8, 16), types=st.integers(1, 4),
    strength=st.sampled_from([1, 3, 20, 255]), bits=st.sampled_from([4, 6, 8, 20, 26]),
    max_delay=st.integers(1, 6), cores=st.integers(1, 4),
    num_inputs=st.integers(0, 6), num_outputs=st.integers(0, 4), entries=st.integers(0, 24),
    batch=st.integers(1, 3), ticks_in=st.integers(0, 12), extra=st.integers(0, 8),
    rate=st.floats(0.05, 0.9), quiet=st.integers(0, 4),
)
def test_fast_equals_reference_on_random_programs(
    seed: int, axons: int, neurons: int, types: int, strength: int, bits: int, max_delay: int,
    cores: int, num_inputs: int, num_outputs: int, entries: int, batch: int, ticks_in: int,
    extra: int, rate: float, quiet: int,
) -> None:
    spec = CoreSpec(axons=axons, neurons=neurons, axon_types=types, strength_min=-strength,
                    strength_max=strength, membrane_bits=bits, max_delay=max_delay, name="h")
    g = torch.Generator().manual_seed(seed)
    p = _dynamic_program(g, spec, cores, num_inputs, num_outputs, entries, quiet)
    x = torch.rand((batch, ticks_in, num_inputs), generator=g) < rate
    ticks = ticks_in + extra

    sim = Simulator(p)
    event(f"fast path {sim.dtype}")
    weights = torch.randint(0, 5, (cores, neurons), generator=g).to(torch.float64)
    fast = sim.run(x, ticks, record=True, spike_weights=weights)
    assert sim.calls == ticks  # the fast path ran, one call per tick for the whole batch
    ref = reference_simulate(p, x, ticks, record=True, spike_weights=weights)
    for f in FIELDS:
        _same(getattr(fast, f), getattr(ref, f), f)
    assert fast.outputs.shape == (batch, ticks, num_outputs) and fast.outputs.dtype == torch.int32
    assert fast.membrane is not None and fast.membrane.shape == (batch, ticks, cores, neurons)
    assert fast.spikes is not None and fast.spike_count.tolist() == fast.spikes.sum((1, 2, 3)).tolist()
    assert torch.equal(fast.core_spikes, fast.spikes.sum((1, 3)))
    assert torch.equal(fast.tick_spikes, fast.spikes.sum(3))
    assert fast.weighted_spikes is not None and torch.equal(
        fast.weighted_spikes, (fast.spikes.sum(1).to(torch.float64) * weights).sum((1, 2)))
    event("spiked" if int(fast.spike_count.sum()) else "silent")

    ev = EventSimulator(p)
    by_event = ev.run(x, ticks, record=True, spike_weights=weights)
    assert ev.calls == ticks * batch  # the event engine ran, frame by frame
    for f in FIELDS:
        _same(getattr(by_event, f), getattr(ref, f), f)

    for engine in ("dense", "event"):  # the one-call API, unrecorded
        plain = simulate(p, x, ticks, engine=engine)
        assert plain.spikes is None and plain.membrane is None
        for f in ("outputs", "tick_spikes", "tick_events"):
            assert torch.equal(getattr(plain, f), getattr(ref, f)), (engine, f)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), linear=st.booleans(), batch=st.integers(1, 2))
def test_event_engine_int16_membranes_when_the_program_bounds_them(
    seed: int, linear: bool, batch: int
) -> None:
    """Every neuron resetting to an absolute value bounds V by the program's constants, and a
    small core's rows add little in a tick: the event engine then stores membranes as int16,
    and still equals the reference exactly, every recorded membrane inside the settled range.
    One linear reset lifts that bound (V − α can stay above α): int32."""
    spec = CoreSpec(axons=16, neurons=8, axon_types=4, strength_min=-255, strength_max=255,
                    membrane_bits=20, max_delay=3, name="small")
    g = torch.Generator().manual_seed(seed)
    p = _dynamic_program(g, spec, cores=3, num_inputs=7, num_outputs=2, entries=20)
    mode = torch.full_like(p.reset_mode, int(ResetMode.ABSOLUTE))
    if linear:
        mode[0, 0] = int(ResetMode.LINEAR)
    p = p.replace(reset_mode=mode)
    ev = EventSimulator(p)
    np = event_engine.np
    assert ev.v_dtype == (np.int32 if linear else np.int16)
    x = torch.rand((batch, 8, 7), generator=g) < 0.5
    got = ev.run(x, 12, record=True)
    ref = reference_simulate(p, x, 12, record=True)
    for f in FIELDS:
        _same(getattr(got, f), getattr(ref, f), f)
    consts = {k: torch.from_numpy(v).long() for k, v in ev.consts.items()}
    lo, hi = event_engine.settled_range(p, consts)  # the recorded V is V after each update
    assert ref.membrane is not None and lo <= int(ref.membrane.min()) <= int(ref.membrane.max()) <= hi
    wide_lo, wide_hi = event_engine.membrane_range(p, consts)
    assert wide_lo <= lo and hi <= wide_hi


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), cores=st.integers(1, 7), chunk=st.integers(1, 4))
def test_column_sums_equal_those_of_the_effective_weights(seed: int, cores: int, chunk: int) -> None:
    """The membrane bound's column sums, counted per axon type in chunks of cores, equal the
    sums of the positive and negative entries of each column of W = B ∘ S(G)."""
    spec = CoreSpec(axons=16, neurons=8, axon_types=4, strength_min=-255, strength_max=255,
                    membrane_bits=20, max_delay=3, name="small")
    g = torch.Generator().manual_seed(seed)
    p = _dynamic_program(g, spec, cores=cores, num_inputs=7, num_outputs=2, entries=20)
    w = p.effective_weights().long()
    pos, neg = event_engine.column_sums(p, chunk=chunk)
    assert torch.equal(pos, w.clamp(min=0).sum(1))
    assert torch.equal(neg, w.clamp(max=0).sum(1))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), case=st.sampled_from([(14, 16), (20, 32), (32, 64)]),
       batch=st.integers(1, 2),
       neurons=st.sampled_from([8, 40]))
def test_event_engine_update_lane_is_the_narrowest_exact_one(
    seed: int, case: tuple[int, int], batch: int, neurons: int
) -> None:
    """The neuron update computes in int16, int32 or int64 lanes, the narrowest that holds
    every intermediate value (|V| + 2 × the largest constant). Constants as large as the
    membrane allows: with 14-bit membranes every value still fits int16, so the update runs in
    int16 lanes with the 14-bit saturation inside them; 20 bits need int32, 32 bits int64.
    Each equals the reference exactly, in cores of 8 neurons (updated one by one) and of 40
    (32 in one vector step, then 8 one by one)."""
    bits, lane = case
    spec = CoreSpec(axons=16, neurons=neurons, axon_types=4, strength_min=-255, strength_max=255,
                    membrane_bits=bits, max_delay=3, name="lanes")
    g = torch.Generator().manual_seed(seed)
    p = _dynamic_program(g, spec, cores=3, num_inputs=7, num_outputs=2, entries=20)
    top = spec.membrane_max

    def big(lo: int, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randint(lo, top + 1, shape, generator=g, dtype=torch.int64).to(torch.int32)

    # the constants span the membrane's range; a few neurons fire often (small α, λ < 0)
    shape = tuple(p.leak.shape)
    shrink = torch.randint(1, 64, shape, generator=g, dtype=torch.int32)
    p = p.replace(leak=big(spec.membrane_min, shape) // shrink,
                  threshold=torch.where(torch.rand(shape, generator=g) < 0.3, 1, big(1, shape)),
                  neg_threshold=big(0, shape), reset_value=big(-top, shape))
    ev = EventSimulator(p)
    assert ev.lane_bits == lane
    x = torch.rand((batch, 8, 7), generator=g) < 0.5
    got = ev.run(x, 12, record=True)
    ref = reference_simulate(p, x, 12, record=True)
    for f in FIELDS:
        _same(getattr(got, f), getattr(ref, f), f)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), axons=st.integers(65, 130), bits=st.sampled_from([20, 32]),
       batch=st.integers(1, 2))
def test_event_engine_wide_cores_and_membranes(seed: int, axons: int, bits: int, batch: int) -> None:
    """More than 64 axons per core (several flag words each, the last one part-used) and a
    32-bit membrane (whose update needs int64 and int32 per-neuron constants): the event
    engine still equals the reference exactly."""
    spec = CoreSpec(axons=axons, neurons=9, axon_types=4, strength_min=-255, strength_max=255,
                    membrane_bits=bits, max_delay=4, name="wide")
    g = torch.Generator().manual_seed(seed)
    p = _dynamic_program(g, spec, cores=2, num_inputs=11, num_outputs=3, entries=40)
    x = torch.rand((batch, 6, 11), generator=g) < 0.5
    ev = EventSimulator(p)
    assert ev.v_dtype == (event_engine.np.int64 if bits == 32 else event_engine.np.int32)
    got = ev.run(x, 10, record=True)
    ref = reference_simulate(p, x, 10, record=True)
    for f in FIELDS:
        _same(getattr(got, f), getattr(ref, f), f)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), neurons=st.sampled_from([32, 33, 40, 64, 70, 96]),
       strength=st.sampled_from([100, 255]), bits=st.sampled_from([10, 20, 32]),
       batch=st.integers(1, 2))
def test_event_engine_masked_adds_over_whole_words(
    seed: int, neurons: int, strength: int, bits: int, batch: int
) -> None:
    """Cores of 32 neurons or more integrate through the crossbar's 32-bit words (a masked
    vector add per word, bit by bit for a last partial word), with int8 or int16 strengths
    into int16, int32 or int64 membranes: still equal to the reference."""
    spec = CoreSpec(axons=24, neurons=neurons, axon_types=4, strength_min=-strength,
                    strength_max=strength, membrane_bits=bits, max_delay=3, name="words")
    g = torch.Generator().manual_seed(seed)
    p = _dynamic_program(g, spec, cores=3, num_inputs=9, num_outputs=3, entries=30)
    ev = EventSimulator(p)
    assert ev.crossbar_bits.shape == (3, 24, -(-neurons // 32))
    assert ev.strengths.dtype == (event_engine.np.int8 if strength < 128 else event_engine.np.int16)
    x = torch.rand((batch, 8, 9), generator=g) < 0.5
    got = ev.run(x, 12, record=True)
    ref = reference_simulate(p, x, 12, record=True)
    for f in FIELDS:
        _same(getattr(got, f), getattr(ref, f), f)


def test_parity_is_not_vacuous() -> None:
    """A fixed busy program: spikes, outputs, saturation and negative actions all happen."""
    spec = CoreSpec(axons=16, neurons=16, strength_min=-20, strength_max=20, membrane_bits=6,
                    max_delay=5, name="busy")
    g = torch.Generator().manual_seed(3)
    p = _dynamic_program(g, spec, cores=3, num_inputs=6, num_outputs=4, entries=24)
    x = torch.rand((2, 20, 6), generator=g) < 0.4
    r = _both(p, x, 30)
    assert r.membrane is not None and r.spikes is not None
    assert int(r.spike_count.min()) > 20 and int(r.outputs.sum()) > 0
    assert int(r.membrane.max()) == spec.membrane_max  # saturation reached
    assert int(r.membrane.min()) < 0
    assert not torch.equal(r.outputs[0], r.outputs[1])  # frames are independent
    for b in range(2):  # and each equals its own run alone
        alone = simulate(p, x[b : b + 1], 30, record=True)
        assert alone.membrane is not None and torch.equal(alone.membrane[0], r.membrane[b])


# ---- API details ------------------------------------------------------------------------------

@pytest.mark.skipif(event_engine.platform.machine().lower() not in ("x86_64", "amd64"),
                    reason="the phase clock reads rdtsc (x86-64)")
def test_event_engine_timing_changes_nothing_and_times_each_phase() -> None:
    """``timing`` adds each part of the tick's cycles to ``clock`` without changing a result;
    a second run adds to the same clock."""
    spec = CoreSpec(axons=16, neurons=16, strength_min=-20, strength_max=20, membrane_bits=8,
                    max_delay=5, name="busy")
    g = torch.Generator().manual_seed(5)
    p = _dynamic_program(g, spec, cores=3, num_inputs=6, num_outputs=4, entries=24)
    x = torch.rand((2, 12, 6), generator=g) < 0.4
    plain = EventSimulator(p).run(x, 16, record=True)
    sim = EventSimulator(p)
    sim.timing = True
    got = sim.run(x, 16, record=True)
    for f in FIELDS:
        _same(getattr(got, f), getattr(plain, f), f)
    first = sim.clock.copy()
    assert (first > 0).all(), dict(zip(event_engine.PHASES, first.tolist(), strict=True))
    sim.run(x, 16)
    assert (sim.clock > first).all()
    sec = sim.phase_seconds()
    assert list(sec) == list(event_engine.PHASES) and all(t > 0 for t in sec.values())


def test_event_engine_timing_refused_off_x86(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = CoreSpec(axons=16, neurons=16, strength_min=-20, strength_max=20, membrane_bits=8,
                    max_delay=5, name="busy")
    p = _dynamic_program(torch.Generator().manual_seed(5), spec, cores=2, num_inputs=6,
                         num_outputs=4, entries=24)
    sim = EventSimulator(p)
    sim.timing = True
    monkeypatch.setattr(event_engine.platform, "machine", lambda: "aarch64")
    with pytest.raises(SimulationError, match="rdtsc.*aarch64.*without timing"):
        sim.run(torch.zeros((1, 4, 6), dtype=torch.bool), 4)


def test_event_engine_in_small_chunks_equals_one_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = CoreSpec(axons=16, neurons=16, strength_min=-20, strength_max=20, membrane_bits=8,
                    max_delay=5, name="busy")
    g = torch.Generator().manual_seed(4)
    p = _dynamic_program(g, spec, cores=3, num_inputs=6, num_outputs=4, entries=24, quiet_cores=1)
    x = torch.rand((5, 12, 6), generator=g) < 0.4
    sim = EventSimulator(p)
    whole = sim.run(x, 16, record=True)
    assert 0 < sim.core_updates < 5 * 16 * 3  # the leak-free core was skipped on some ticks
    monkeypatch.setattr(event_engine, "STATE_BYTES", 1)  # one frame per chunk
    chunked = EventSimulator(p).run(x, 16, record=True)
    for f in FIELDS:
        _same(getattr(whole, f), getattr(chunked, f), f)


def test_make_simulator_picks_an_engine() -> None:
    p = Program.blank(1, spec=GOLD)
    assert isinstance(make_simulator(p, "dense"), Simulator)
    assert isinstance(make_simulator(p, "event"), EventSimulator)
    assert isinstance(make_simulator(p), EventSimulator)  # numba is installed for the tests
    with pytest.raises(SimulationError, match="engine 'fastest' is not one of auto, event, dense"):
        make_simulator(p, "fastest")


def test_calls_count_every_fast_tick() -> None:
    p = Program.blank(2, num_inputs=1, spec=GOLD)
    sim = Simulator(p)
    assert sim.calls == 0
    sim.run(torch.ones(3, 2, 1, dtype=torch.bool), 5)
    sim.run(torch.ones(1, 0, 1, dtype=torch.bool), 4)
    assert sim.calls == 9


def test_zero_ticks() -> None:
    p = Program.blank(1, num_inputs=2, num_outputs=3, spec=GOLD)
    r = simulate(p, torch.zeros(2, 0, 2, dtype=torch.bool), 0, record=True)
    assert r.outputs.shape == (2, 0, 3) and r.spike_count.tolist() == [0, 0]
    assert r.membrane is not None and r.membrane.shape == (2, 0, 1, 4)


def test_numeric_zero_one_inputs_equal_bool() -> None:
    p = _input_map(Program.blank(1, num_inputs=1, spec=GOLD), [(0, 0, 0)])
    p = _edit(p, crossbar={(0, 0, 0): 1}, strengths={(0, 0, 0): 2})
    xb = _spikes([1, 0, 1])
    a = simulate(p, xb, 3, record=True)
    for x in (xb.float(), xb.to(torch.int64), xb.to(torch.uint8)):
        b = simulate(p, x, 3, record=True)
        assert a.membrane is not None and b.membrane is not None
        assert torch.equal(a.membrane, b.membrane)


@pytest.mark.parametrize(
    ("inputs", "ticks", "words"),
    [
        (torch.zeros(1, 2, 3), 2, "3 input lines, the program has num_inputs 2"),
        (torch.zeros(2, 2), 2, "(batch, ticks_in, num_inputs)"),
        (torch.zeros(1, 5, 2), 4, "ticks 4 < the 5 ticks of input"),
        (torch.zeros(1, 1, 2), -1, "ticks -1"),
        (torch.full((1, 1, 2), 2.0), 1, "all 0 or 1"),
        (torch.full((1, 1, 2), 0.5), 1, "all 0 or 1"),
    ],
)
def test_bad_inputs(inputs: torch.Tensor, ticks: int, words: str) -> None:
    p = Program.blank(1, num_inputs=2, spec=GOLD)
    for run in (simulate, reference_simulate, EventSimulator(p).run, Simulator(p).run):
        with pytest.raises(SimulationError) as e:
            run(p, inputs, ticks) if run in (simulate, reference_simulate) else run(inputs, ticks)
        assert isinstance(e.value, NeurocoreError) and words in str(e.value)


def test_invalid_program_is_refused() -> None:
    p = _edit(Program.blank(1, spec=GOLD), threshold={(0, 2): 0})
    for run in (Simulator, EventSimulator, lambda q: reference_simulate(q, torch.zeros(1, 0, 0), 1)):
        with pytest.raises(ProgramError, match="core 0 neuron 2: threshold 0"):
            run(p)


def test_exact_dtype_follows_the_spec_bound() -> None:
    assert exact_dtype(GOLD, 1, 0) == torch.float32
    assert exact_dtype(CoreSpec(), 4096, 10_000) == torch.float32  # a full TrueNorth chip
    assert exact_dtype(CoreSpec(membrane_bits=24), 1, 0) == torch.float64
    wide = CoreSpec(axons=1024, strength_min=-32768, strength_max=32767)
    assert exact_dtype(wide, 1, 0) == torch.float64  # 1024 · 32768 = 2^25 > 2^24
    before = torch.get_float32_matmul_precision()
    try:  # reduced-precision float32 matmuls (TF32, bf16) are not exact: use float64
        torch.set_float32_matmul_precision("high")
        assert exact_dtype(GOLD, 1, 0) == torch.float64
    finally:
        torch.set_float32_matmul_precision(before)
