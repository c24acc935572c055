"""Tick-exact simulation of a :class:`~neurocore.hardware.program.Program`: fast and reference.

The update, for every core c, neuron j and tick t = 0, 1, ... (stated here once):

1. axon activity  A_ci(t) ∈ {0, 1} is 1 when a spike routed to axon i of core c arrives at t
   (sent at t − delay) OR an external input line mapped to (c, i) spikes at t;
2. V_cj ← V_cj + Σ_i A_ci(t) · B_cij · S_cj[G_ci] − λ_cj;
3. if V_cj ≥ α_cj: neuron j spikes, then resets: absolute V ← R, linear V ← V − α, none;
4. else if V_cj < −β_cj: negative reset V ← −R, or saturate V ← −β;
5. V_cj saturates to the membrane range [−2^(bits−1), 2^(bits−1) − 1];
6. a spike at t reaches its destination (core, axon) at t + delay (spikes meeting on one axon
   OR), or adds 1 to its output port at tick t (spikes meeting on one port add).

Initially every V is 0 and no spike is in flight; external input lines are silent at and after
``ticks_in``; spikes still in flight after the last tick are dropped. A synaptic event is one
(active axon, connected crossbar point) pair: a tick's events are Σ_c Σ_i A_ci(t) · Σ_j B_cij.

:func:`reference_simulate` loops over frames, ticks, cores, neurons and axons in plain Python
integers, line by line as above. Two fast engines give the same results (:func:`make_simulator`
picks one): the event-driven one of :mod:`neurocore.hardware.event`, whose work follows the
spikes, and the dense one here. :class:`Simulator` (the dense engine) advances all frames
and cores together, one tick per loop iteration: steps 1–2 are one batched ``V + Wᵀ·A`` over the
cores (``baddbmm`` of W = B ∘ S(G) with the activity, (C, N, A) × (C, A, B)), steps 3–5 a few
elementwise ops, step 6 one ``scatter_add_`` of all spikes into a ring buffer of (largest
delay + 1) slots, read back clamped to 1 (that is the OR), and into the output counts.
Membranes and sums are held in float32: every number the fast path forms is an integer of
magnitude below 2^24 (:func:`exact_bound`, from the spec), so float32 arithmetic on it is exact.
Beyond that bound, or when float32 matmuls are allowed reduced precision (TF32, bf16), it uses
float64, exact to 2^53, rather than int64, which CUDA matmuls lack. A tick's synaptic events in
a core are its active axons' fan-outs, Σ_i A_ci(t) · Σ_j B_cij (one (C, 1, A) × (C, A, B)
matmul); spikes, events and weighted spikes are all kept per frame, tick and core.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from neurocore.errors import NeurocoreError
from neurocore.hardware.corespec import DEST_OUTPUT, CoreSpec, NegMode, ResetMode
from neurocore.hardware.program import Program

if TYPE_CHECKING:
    from neurocore.hardware.event import EventSimulator

FLOAT32_EXACT = 2**24  # every integer of magnitude ≤ 2^24 is a float32
FLOAT64_EXACT = 2**53


class SimulationError(NeurocoreError):
    """The inputs or tick count handed to a simulator do not fit the program."""


@dataclass(frozen=True, eq=False)
class SimResult:
    """What a simulation returns (every engine, same dtypes). Counts are kept per frame, tick and
    core, so a caller can attribute them (``deploy`` counts each layer at its own tick); the
    totals are properties."""

    outputs: torch.Tensor  # (B, ticks, num_outputs) int32: spikes per output port per tick
    tick_spikes: torch.Tensor  # (B, ticks, C) int64: spikes of each core's neurons
    tick_events: torch.Tensor  # (B, ticks, C) int64: Σ_i A_ci(t) · Σ_j B_cij, each core
    spikes: torch.Tensor | None  # (B, ticks, C, N) bool when recorded, else None
    membrane: torch.Tensor | None  # (B, ticks, C, N) int32, V after each tick, else None
    tick_weighted: torch.Tensor | None = None  # (B, ticks, C) float64: Σ spikes · spike_weights

    @property
    def spike_count(self) -> torch.Tensor:
        """(B,) int64: all spikes of all neurons, per frame."""
        return self.tick_spikes.sum((1, 2))

    @property
    def core_spikes(self) -> torch.Tensor:
        """(B, C) int64: spikes of each core's neurons, per frame."""
        return self.tick_spikes.sum(1)

    @property
    def synaptic_events(self) -> torch.Tensor:
        """(B,) int64: Σ_t Σ_c Σ_i A_ci(t) · Σ_j B_cij, per frame."""
        return self.tick_events.sum((1, 2))

    @property
    def weighted_spikes(self) -> torch.Tensor | None:
        """(B,) float64: Σ spikes · spike_weights, per frame (None without weights)."""
        return None if self.tick_weighted is None else self.tick_weighted.sum((1, 2))


def exact_bound(spec: CoreSpec, num_cores: int, num_map_entries: int) -> int:
    """Largest magnitude of any number the fast path forms for programs of this shape."""
    return max(
        2**spec.membrane_bits + spec.axons * spec.strength_abs_max,  # |V + Σ − λ|, |V − α|
        num_cores * spec.neurons + num_map_entries,  # spikes on one axon or port in one tick
        spec.axons * spec.neurons,  # synaptic events of one core in one tick
    )


def exact_dtype(spec: CoreSpec, num_cores: int, num_map_entries: int) -> torch.dtype:
    """float32 when :func:`exact_bound` < 2^24 (and matmuls run at full float32 precision),
    else float64."""
    bound = exact_bound(spec, num_cores, num_map_entries)
    if bound < FLOAT32_EXACT and torch.get_float32_matmul_precision() == "highest":
        return torch.float32
    if bound < FLOAT64_EXACT:
        return torch.float64
    raise SimulationError(
        f"spec {spec.name!r}: values up to {bound} cannot be simulated exactly (limit 2^53)"
    )


def check_inputs(program: Program, inputs: torch.Tensor, ticks: int) -> torch.Tensor:
    """Validate external input spikes (B, ticks_in, num_inputs) against ``program``; as bool."""
    if not isinstance(inputs, torch.Tensor) or inputs.dim() != 3:
        shape = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__
        raise SimulationError(f"inputs must be a (batch, ticks_in, num_inputs) tensor, got {shape}")
    if inputs.shape[2] != program.num_inputs:
        raise SimulationError(
            f"inputs have {inputs.shape[2]} input lines, the program has num_inputs "
            f"{program.num_inputs}"
        )
    if isinstance(ticks, bool) or not isinstance(ticks, int) or ticks < 0:
        raise SimulationError(f"ticks {ticks!r} must be an integer ≥ 0")
    if ticks < inputs.shape[1]:
        raise SimulationError(f"ticks {ticks} < the {inputs.shape[1]} ticks of input given")
    if inputs.dtype != torch.bool:
        if inputs.is_complex() or not bool(((inputs == 0) | (inputs == 1)).all()):
            raise SimulationError("inputs must be spikes: bool, or numbers that are all 0 or 1")
    return inputs.to(torch.bool)


class Simulator:
    """The fast simulator for one program; precomputes weights and routing once.

    ``calls`` counts fast ticks run (all frames of a batch advance together in one tick), so
    tests can prove the fast path ran.
    """

    def __init__(self, program: Program, device: torch.device | str = "cpu") -> None:
        program.validate()
        self.program = program
        self.device = torch.device(device)
        self.calls = 0
        spec = program.spec
        c, a, n = program.num_cores, spec.axons, spec.neurons
        k = int(program.input_line.shape[0])
        self.sizes = (c, a, n)
        self.dtype = exact_dtype(spec, c, k)
        dev, dt = self.device, self.dtype

        def col(x: torch.Tensor) -> torch.Tensor:  # (C, N) -> (C, N, 1) in compute dtype
            return x.to(dev, torch.int64)[:, :, None].to(dt)

        # Synaptic matrix, transposed: (C, N, A); connections per axon for synaptic events.
        w = program.effective_weights().to(dev, torch.int64)  # (C, A, N)
        self.wt = w.transpose(1, 2).to(dt).contiguous()  # (C, N, A)
        fanout = program.crossbar.to(dev, torch.int64).sum(2)  # (C, A) connections per axon
        self.fanout = fanout[:, None, :].to(dt)  # (C, 1, A)

        # Neuron parameters, (C, N, 1) to broadcast over the batch.
        mode = program.reset_mode.to(dev, torch.int64)
        alpha = program.threshold
        reset = program.reset_value
        self.leak = col(program.leak)
        self.alpha = col(alpha)
        # Reset as V ← V · keep + off: absolute (0, R), linear (1, −α), none (1, 0).
        absolute = (mode == ResetMode.ABSOLUTE)[:, :, None]
        linear = (mode == ResetMode.LINEAR)[:, :, None]
        self.keep = (~absolute).to(dt)
        self.off = torch.where(absolute, col(reset), torch.where(linear, -col(alpha), 0.0))
        self.neg_beta = -col(program.neg_threshold)
        neg_reset = (program.neg_mode.to(dev, torch.int64) == NegMode.RESET)[:, :, None]
        self.neg_value = torch.where(neg_reset, -col(reset), self.neg_beta)
        self.vmin, self.vmax = float(spec.membrane_min), float(spec.membrane_max)

        # Where each neuron's spike goes, as a row of the per-run target buffer
        #   [ring: S slots × C·A axons | outputs: ticks × P ports | one discard row]:
        # a core destination at phase p (= t mod S) -> ((p + delay) mod S)·C·A + core·A + axon,
        # output port k -> S·C·A + t·P + k, unused -> the discard row (filled in per run).
        dest = program.dest_core.to(dev, torch.int64).reshape(-1)  # (C·N,)
        daxon = program.dest_axon.to(dev, torch.int64).reshape(-1)  # (C·N,)
        delay = program.delay.to(dev, torch.int64).reshape(-1)  # (C·N,)
        routed, output = dest >= 0, dest == DEST_OUTPUT
        self.slots = int(delay[routed].max()) + 1 if bool(routed.any()) else 1
        ring = self.slots * c * a
        phase = torch.arange(self.slots, device=dev)[:, None]  # (S, 1)
        to_axon = ((phase + delay) % self.slots) * (c * a) + dest * a + daxon  # (S, C·N)
        self.target_row = torch.where(routed, to_axon, torch.where(output, ring + daxon, -1))
        self.unused = ~(routed | output)  # (C·N,)
        self.out_step = output.to(torch.int64) * program.num_outputs  # (C·N,) rows per tick
        self.any_target = bool((routed | output).any())
        self.any_output = bool(output.any())

        # External input map: entry k feeds flat axon core·A + axon from line input_line[k].
        self.in_line = program.input_line.to(dev, torch.int64)  # (K,)
        self.in_row = (
            program.input_core.to(dev, torch.int64) * a + program.input_axon.to(dev, torch.int64)
        )  # (K,)

    def run(self, inputs: torch.Tensor, ticks: int, *, record: bool = False,
            spike_weights: torch.Tensor | None = None) -> SimResult:
        """Simulate ``ticks`` ticks of every frame of ``inputs`` (B, ticks_in, num_inputs).

        ``spike_weights`` (C, N), if given, weighs each neuron's spikes into
        ``weighted_spikes`` (e.g. router hops per spike). Runs on ``self.device``; the result's
        tensors are always on the CPU.
        """
        x = check_inputs(self.program, inputs, ticks)
        if exact_dtype(self.program.spec, self.sizes[0], len(self.in_line)) != self.dtype:
            raise SimulationError("float32 matmul precision changed since the Simulator was built")
        c, a, n = self.sizes
        b, ticks_in = int(x.shape[0]), int(x.shape[1])
        p = self.program.num_outputs
        dev, dt = self.device, self.dtype
        ring = self.slots * c * a
        discard = ring + ticks * p

        v = torch.zeros((c, n, b), dtype=dt, device=dev)  # membranes (C, N, B)
        target = torch.zeros((discard + 1, b), dtype=dt, device=dev)  # spikes landing, per row
        outputs = target[ring:discard].view(ticks, p, b)  # (ticks, P, B)
        tick_spikes = torch.zeros((ticks, c, b), dtype=dt, device=dev)  # per tick and core
        tick_events = torch.zeros((ticks, c, b), dtype=dt, device=dev)
        weight = None
        if spike_weights is not None:
            weight = spike_weights.to(dev, torch.float64).reshape(c, n, 1)
        tick_weighted = torch.zeros((ticks, c, b) if weight is not None else (0,),
                                    dtype=torch.float64, device=dev)
        spk_rec = torch.zeros((ticks, c, n, b) if record else (0,), dtype=torch.bool, device=dev)
        v_rec = torch.zeros((ticks, c, n, b) if record else (0,), dtype=dt, device=dev)

        # Fetched once: Python list indexing is cheaper than a tensor select per tick.
        slots = list(target[:ring].view(self.slots, c * a, b).unbind(0))  # S × (C·A, B)
        rows = torch.where(self.unused, discard, self.target_row)  # (S, C·N)
        rows_b = [r[:, None].expand(c * n, b) for r in rows.unbind(0)]  # S × (C·N, B)
        xin = list(  # ticks_in × (K, B): the external spikes of each map entry
            x.to(dev).permute(1, 2, 0)[:, self.in_line].to(dt).unbind(0)
        )
        in_rows = self.in_row[:, None].expand(len(self.in_row), b)  # (K, B)
        has_inputs = len(self.in_line) > 0

        for t in range(ticks):
            phase = t % self.slots
            slot = slots[phase]  # (C·A, B)
            if has_inputs and t < ticks_in:
                slot.scatter_add_(0, in_rows, xin[t])
            act = slot.clamp_(max=1.0).view(c, a, b)  # A(t): OR of arrivals and inputs
            torch.bmm(self.fanout, act, out=tick_events[t].view(c, 1, b))
            v.baddbmm_(self.wt, act).sub_(self.leak)  # V + Σ_i A_i W_ij − λ, (C, N, B)
            slot.zero_()
            spk = v >= self.alpha  # (C, N, B)
            neg = v < self.neg_beta  # disjoint from spk since α ≥ 1 > 0 ≥ −β
            v = torch.where(spk, torch.addcmul(self.off, v, self.keep), v)
            v = torch.where(neg, self.neg_value, v).clamp_(self.vmin, self.vmax)
            sf = spk.view(c * n, b).to(dt)  # (C·N, B)
            tick_spikes[t] = sf.view(c, n, b).sum(1)
            if weight is not None:
                tick_weighted[t] = (spk * weight).sum(1)
            if self.any_target:
                if self.any_output:  # output rows move on by P every tick
                    rows_t = torch.add(rows[phase], self.out_step, alpha=t)
                    target.scatter_add_(0, rows_t[:, None].expand(c * n, b), sf)
                else:
                    target.scatter_add_(0, rows_b[phase], sf)
            if record:
                spk_rec[t] = spk
                v_rec[t] = v
            self.calls += 1

        return SimResult(
            outputs=outputs.permute(2, 0, 1).to(torch.int32).cpu(),
            tick_spikes=tick_spikes.permute(2, 0, 1).to(torch.int64).cpu(),
            tick_events=tick_events.permute(2, 0, 1).to(torch.int64).cpu(),
            spikes=spk_rec.permute(3, 0, 1, 2).cpu() if record else None,
            membrane=v_rec.permute(3, 0, 1, 2).to(torch.int32).cpu() if record else None,
            tick_weighted=tick_weighted.permute(2, 0, 1).cpu() if weight is not None else None,
        )


ENGINES = ("auto", "event", "dense")


def make_simulator(program: Program, engine: str = "auto") -> Simulator | EventSimulator:
    """A fast simulator for ``program``: ``"event"`` (:mod:`neurocore.hardware.event`, CPU,
    needs numba), ``"dense"`` (:class:`Simulator`, any torch device), or ``"auto"``: event when
    numba is installed, else dense. Both give identical results."""
    from neurocore.hardware import event

    if engine not in ENGINES:
        raise SimulationError(f"engine {engine!r} is not one of {', '.join(ENGINES)}")
    if engine == "event" or (engine == "auto" and event.available()):
        return event.EventSimulator(program)
    return Simulator(program)


def simulate(
    program: Program, inputs: torch.Tensor, ticks: int, *, record: bool = False,
    spike_weights: torch.Tensor | None = None, engine: str = "auto",
) -> SimResult:
    """Fast, exact simulation of ``program`` on a batch of input spike trains (module doc)."""
    sim = make_simulator(program, engine)
    return sim.run(inputs, ticks, record=record, spike_weights=spike_weights)


def reference_simulate(
    program: Program, inputs: torch.Tensor, ticks: int, *, record: bool = False,
    spike_weights: torch.Tensor | None = None,
) -> SimResult:
    """Slow, obvious simulation in Python integers: the equations of the module doc, verbatim."""
    program.validate()
    x = check_inputs(program, inputs, ticks).tolist()  # [b][t][line] bool
    spec = program.spec
    cores, axons, neurons = program.num_cores, spec.axons, spec.neurons
    crossbar = program.crossbar.tolist()  # [c][i][j]
    axon_type = program.axon_types.tolist()  # [c][i]
    strength = program.strengths.tolist()  # [c][j][type]
    leak = program.leak.tolist()  # [c][j]
    alpha = program.threshold.tolist()
    beta = program.neg_threshold.tolist()
    reset_value = program.reset_value.tolist()
    reset_mode = program.reset_mode.tolist()
    neg_mode = program.neg_mode.tolist()
    dest_core = program.dest_core.tolist()
    dest_axon = program.dest_axon.tolist()
    delay = program.delay.tolist()
    input_map = list(
        zip(program.input_line.tolist(), program.input_core.tolist(),
            program.input_axon.tolist(), strict=True)
    )
    vmin, vmax = spec.membrane_min, spec.membrane_max
    batch = len(x)
    ticks_in = int(inputs.shape[1])

    outputs = [[[0] * program.num_outputs for _ in range(ticks)] for _ in range(batch)]
    weight = spike_weights.tolist() if spike_weights is not None else None  # [c][j]
    tick_spikes = [[[0] * cores for _ in range(ticks)] for _ in range(batch)]
    tick_events = [[[0] * cores for _ in range(ticks)] for _ in range(batch)]
    tick_weighted = [[[0.0] * cores for _ in range(ticks)] for _ in range(batch)]
    spikes = [[[[False] * neurons for _ in range(cores)] for _ in range(ticks)] for _ in x]
    membrane = [[[[0] * neurons for _ in range(cores)] for _ in range(ticks)] for _ in x]

    for b in range(batch):
        v = [[0] * neurons for _ in range(cores)]
        arriving: dict[int, set[tuple[int, int]]] = {}  # tick -> {(core, axon)}
        for t in range(ticks):
            # 1. axon activity
            active = [[False] * axons for _ in range(cores)]
            for c, i in arriving.pop(t, set()):
                active[c][i] = True
            if t < ticks_in:
                for line, c, i in input_map:
                    if x[b][t][line]:
                        active[c][i] = True
            for c in range(cores):
                for j in range(neurons):
                    # 2. integrate and leak
                    total = 0
                    for i in range(axons):
                        if active[c][i] and crossbar[c][i][j]:
                            total += strength[c][j][axon_type[c][i]]
                            tick_events[b][t][c] += 1
                    vj = v[c][j] + total - leak[c][j]
                    # 3. spike and reset; 4. negative threshold
                    fired = vj >= alpha[c][j]
                    if fired:
                        if reset_mode[c][j] == ResetMode.ABSOLUTE:
                            vj = reset_value[c][j]
                        elif reset_mode[c][j] == ResetMode.LINEAR:
                            vj = vj - alpha[c][j]
                    elif vj < -beta[c][j]:
                        if neg_mode[c][j] == NegMode.RESET:
                            vj = -reset_value[c][j]
                        else:
                            vj = -beta[c][j]
                    # 5. saturate
                    vj = min(max(vj, vmin), vmax)
                    v[c][j] = vj
                    membrane[b][t][c][j] = vj
                    # 6. route
                    if fired:
                        spikes[b][t][c][j] = True
                        tick_spikes[b][t][c] += 1
                        if weight is not None:
                            tick_weighted[b][t][c] += weight[c][j]
                        if dest_core[c][j] >= 0:
                            key = (dest_core[c][j], dest_axon[c][j])
                            arriving.setdefault(t + delay[c][j], set()).add(key)
                        elif dest_core[c][j] == DEST_OUTPUT:
                            outputs[b][t][dest_axon[c][j]] += 1

    shape = (batch, ticks, cores, neurons)
    per_tick = (batch, ticks, cores)
    return SimResult(
        outputs=torch.tensor(outputs, dtype=torch.int32).reshape(batch, ticks,
                                                                  program.num_outputs),
        tick_spikes=torch.tensor(tick_spikes, dtype=torch.int64).reshape(per_tick),
        tick_events=torch.tensor(tick_events, dtype=torch.int64).reshape(per_tick),
        spikes=torch.tensor(spikes, dtype=torch.bool).reshape(shape) if record else None,
        membrane=torch.tensor(membrane, dtype=torch.int32).reshape(shape) if record else None,
        tick_weighted=(torch.tensor(tick_weighted, dtype=torch.float64).reshape(per_tick)
                       if weight is not None else None),
    )
