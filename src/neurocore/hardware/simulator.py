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
integers, line by line as above. :func:`simulate` (and :class:`Simulator`) runs all frames and
cores at once: the synaptic input of every core is one batched matrix product of the activity
(C, A, B) with W = B ∘ S(G) (C, A, N), computed in float32. Every number the fast path forms is
an integer of magnitude below 2^24 (bound :func:`exact_dtype` checks from the spec), so float32
arithmetic on it is exact; beyond that bound it uses float64 (exact to 2^53) rather than int64,
which CUDA matmuls do not support. Routing is a ring buffer of ``max_delay + 1`` slots written by
``index_add_`` (counts, clamped to 1 when read: that is the OR).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from neurocore.errors import NeurocoreError
from neurocore.hardware.corespec import DEST_OUTPUT, CoreSpec, NegMode, ResetMode
from neurocore.hardware.program import Program

FLOAT32_EXACT = 2**24  # every integer of magnitude ≤ 2^24 is a float32
FLOAT64_EXACT = 2**53


class SimulationError(NeurocoreError):
    """The inputs or tick count handed to a simulator do not fit the program."""


@dataclass(frozen=True, eq=False)
class SimResult:
    """What a simulation returns (both simulators, same dtypes)."""

    outputs: torch.Tensor  # (B, ticks, num_outputs) int32: spikes per output port per tick
    spike_count: torch.Tensor  # (B,) int64: all spikes of all neurons, per frame
    synaptic_events: torch.Tensor  # (B,) int64: Σ_t Σ_c Σ_i A_ci(t) · Σ_j B_cij, per frame
    spikes: torch.Tensor | None  # (B, ticks, C, N) bool when recorded, else None
    membrane: torch.Tensor | None  # (B, ticks, C, N) int32, V after each tick, else None


def exact_bound(spec: CoreSpec, num_cores: int, num_map_entries: int) -> int:
    """Largest magnitude of any number the fast path forms for programs of this shape."""
    return max(
        2**spec.membrane_bits + spec.axons * spec.strength_abs_max,  # |V + Σ − λ|, |V − α|
        spec.axons * spec.neurons,  # one core's synaptic events in one tick
        num_cores * spec.neurons + num_map_entries,  # spikes landing on one axon in one tick
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

        # Synaptic matrix, transposed, with one extra row counting connections: (C, N + 1, A).
        w = program.effective_weights().to(dev, torch.int64)  # (C, A, N)
        fanout = program.crossbar.to(dev, torch.int64).sum(2, keepdim=True)  # (C, A, 1)
        self.wt = torch.cat([w, fanout], 2).transpose(1, 2).to(dt).contiguous()  # (C, N+1, A)

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

        # Routing: flat source neuron c·N + j -> ring-buffer row (slot·C·A + core·A + axon).
        dest = program.dest_core.to(dev, torch.int64).reshape(-1)  # (C·N,)
        daxon = program.dest_axon.to(dev, torch.int64).reshape(-1)
        routed = dest >= 0
        self.route_src = routed.nonzero().squeeze(1)  # (M,)
        self.all_routed = bool(routed.all())
        delay = program.delay.to(dev, torch.int64).reshape(-1)[routed]  # (M,)
        self.slots = int(delay.max()) + 1 if delay.numel() else 1
        target = dest[routed] * a + daxon[routed]  # (M,)
        phase = torch.arange(self.slots, device=dev)[:, None]  # (S, 1)
        self.route_row = ((phase + delay) % self.slots) * (c * a) + target  # (S, M)
        out = dest == DEST_OUTPUT
        self.out_src = out.nonzero().squeeze(1)  # (P,)
        self.out_port = daxon[out]  # (P,)

        # External input map: entry k feeds flat axon core·A + axon from line input_line[k].
        self.in_line = program.input_line.to(dev, torch.int64)  # (K,)
        self.in_row = (
            program.input_core.to(dev, torch.int64) * a + program.input_axon.to(dev, torch.int64)
        )  # (K,)

    def run(self, inputs: torch.Tensor, ticks: int, *, record: bool = False) -> SimResult:
        """Simulate ``ticks`` ticks of every frame of ``inputs`` (B, ticks_in, num_inputs)."""
        x = check_inputs(self.program, inputs, ticks)
        if exact_dtype(self.program.spec, self.sizes[0], len(self.in_line)) != self.dtype:
            raise SimulationError("float32 matmul precision changed since the Simulator was built")
        c, a, n = self.sizes
        b, ticks_in = int(x.shape[0]), int(x.shape[1])
        dev, dt = self.device, self.dtype
        s = self.slots
        p = self.program.num_outputs
        xin = x.to(dev).permute(1, 2, 0)[:, self.in_line].to(dt).contiguous()  # (ticks_in, K, B)
        has_inputs = len(self.in_line) > 0
        has_routes = len(self.route_src) > 0
        has_outputs = len(self.out_src) > 0

        v = torch.zeros((c, n, b), dtype=dt, device=dev)  # membranes (C, N, B)
        buf = torch.zeros((s, c * a, b), dtype=dt, device=dev)  # arrivals per slot (S, C·A, B)
        buf_rows = buf.view(s * c * a, b)
        outputs = torch.zeros((ticks, p, b), dtype=dt, device=dev)  # (ticks, P, B)
        spikes_per_neuron = torch.zeros((c * n, b), dtype=torch.float64, device=dev)
        events_per_core = torch.zeros((c, b), dtype=torch.float64, device=dev)
        spk_rec = torch.zeros((ticks, c, n, b) if record else (0,), dtype=torch.bool, device=dev)
        v_rec = torch.zeros((ticks, c, n, b) if record else (0,), dtype=dt, device=dev)

        for t in range(ticks):
            phase = t % s
            slot = buf[phase]  # (C·A, B)
            if has_inputs and t < ticks_in:
                slot.index_add_(0, self.in_row, xin[t])
            act = slot.clamp_(max=1.0).view(c, a, b)  # A(t): OR of arrivals and inputs
            syn = torch.bmm(self.wt, act)  # (C, N + 1, B): Σ_i A_i W_ij, and events per core
            events_per_core.add_(syn[:, n])
            v.add_(syn[:, :n]).sub_(self.leak)
            slot.zero_()
            spk = v >= self.alpha  # (C, N, B)
            neg = v < self.neg_beta  # disjoint from spk since α ≥ 1 > 0 ≥ −β
            v = torch.where(spk, torch.addcmul(self.off, v, self.keep), v)
            v = torch.where(neg, self.neg_value, v).clamp_(self.vmin, self.vmax)
            sf = spk.view(c * n, b).to(dt)  # (C·N, B)
            spikes_per_neuron.add_(sf)
            if has_routes:
                src = sf if self.all_routed else sf.index_select(0, self.route_src)
                buf_rows.index_add_(0, self.route_row[phase], src)
            if has_outputs:
                outputs[t].index_add_(0, self.out_port, sf.index_select(0, self.out_src))
            if record:
                spk_rec[t] = spk
                v_rec[t] = v
            self.calls += 1

        return SimResult(
            outputs=outputs.permute(2, 0, 1).to(torch.int32).cpu(),
            spike_count=spikes_per_neuron.sum(0).to(torch.int64).cpu(),
            synaptic_events=events_per_core.sum(0).to(torch.int64).cpu(),
            spikes=spk_rec.permute(3, 0, 1, 2).cpu() if record else None,
            membrane=v_rec.permute(3, 0, 1, 2).to(torch.int32).cpu() if record else None,
        )


def simulate(
    program: Program, inputs: torch.Tensor, ticks: int, *, record: bool = False
) -> SimResult:
    """Fast, exact simulation of ``program`` on a batch of input spike trains (module doc)."""
    return Simulator(program).run(inputs, ticks, record=record)


def reference_simulate(
    program: Program, inputs: torch.Tensor, ticks: int, *, record: bool = False
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
    spike_count = [0] * batch
    synaptic_events = [0] * batch
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
                            synaptic_events[b] += 1
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
                        spike_count[b] += 1
                        if dest_core[c][j] >= 0:
                            key = (dest_core[c][j], dest_axon[c][j])
                            arriving.setdefault(t + delay[c][j], set()).add(key)
                        elif dest_core[c][j] == DEST_OUTPUT:
                            outputs[b][t][dest_axon[c][j]] += 1

    shape = (batch, ticks, cores, neurons)
    return SimResult(
        outputs=torch.tensor(outputs, dtype=torch.int32).reshape(batch, ticks,
                                                                  program.num_outputs),
        spike_count=torch.tensor(spike_count, dtype=torch.int64),
        synaptic_events=torch.tensor(synaptic_events, dtype=torch.int64),
        spikes=torch.tensor(spikes, dtype=torch.bool).reshape(shape) if record else None,
        membrane=torch.tensor(membrane, dtype=torch.int32).reshape(shape) if record else None,
    )
