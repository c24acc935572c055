"""The event-driven simulator: the equations of :mod:`neurocore.hardware.simulator`, in
compiled loops that touch only what spikes reach.

Same results as :class:`~neurocore.hardware.simulator.Simulator` and
:func:`~neurocore.hardware.simulator.reference_simulate` (the tests hold all three equal with
``torch.equal``); the work per tick follows the activity instead of the chip's size:

- axon activity is a ring of (largest delay + 1) slots of bits, one bit per axon (a flag set
  twice is the OR); a core reads its slot's words, lists the set bits and clears them;
- step 2 adds, for each *active* axon i only, its row of W = B ∘ S(G) into the membranes, from
  the core's own form: the crossbar row B_i as 32-bit words (32 bytes for 256 neurons) selects
  which of the strengths S_j[G_i] are added — one masked vector add per 32 neurons (an LLVM
  select, a masked add on AVX-512), four rows per load and store of the membranes. The
  crossbar rows are read at random from a large table (32 MiB for a full chip, where rows of W
  in bytes would take 256 MiB), so a thread lists the next core's active axons before it
  integrates the current one and prefetches their rows meanwhile;
- steps 2–5 run on a core only when something can change there: it received input this tick,
  or one of its neurons is *unsettled* — a tick without input would make it spike or move its
  membrane (V − λ ≥ α, or the negative action and saturation of V − λ differ from V). Each
  update records whether its core is left settled (and at construction, whether it is at
  V = 0); a settled core without input is skipped, which is exact by that very definition.
  Leak-free cores and the memoryless neurons of compiled networks (λ ≥ 0, floor at 0) settle,
  so only the cores a spike reaches cost anything. The update itself has no branch (resets
  and the negative threshold are selects over per-neuron constants): 32 neurons per explicit
  vector step (one 512-bit instruction per operation on AVX-512 with int16 lanes), in the
  narrowest of int16, int32 and int64 lanes in which every intermediate value is exact
  (``EventSimulator.lane_bits``), which yields a 32-bit mask of the neurons that fired;
- step 6: the neurons that fired are listed from those masks as the update goes, and where
  each spike goes (an axon flag ``delay`` slots on, or an output port, one number per neuron:
  :meth:`EventSimulator.sends`) is prefetched; they are routed into a bucket per destination
  range of cores after the next core's update, when those targets are in.
  Then each range's thread delivers the buckets addressed to it (the flag words prefetched a
  few spikes ahead). The synaptic events of a tick are counted from the active axons' rows
  (their set bits).

One compiled call runs every tick of a chunk of frames. Each frame's cores are split into one
contiguous range per thread (numba ``prange``; threads as ``numba.set_num_threads``): a thread
updates its range's cores and alone sets their flags, so no two threads write one flag word;
external inputs are set in parallel over pieces of the input lines, with an atomic OR. The
membrane is stored in the narrowest of int16, int32 and int64 that holds every value the
program can reach (:func:`membrane_range`), the per-neuron constants in the narrowest integer
type that holds them all — all exact. Frames run in chunks bounded in memory
(:data:`STATE_BYTES`).

numba is the optional extra ``neurocore[fast]``; :func:`available` says whether it is installed,
and :func:`~neurocore.hardware.simulator.make_simulator` falls back to the dense engine without
it.
"""

from __future__ import annotations

import importlib.util
import platform
import time
from typing import Any

import numpy as np
import torch

from neurocore.hardware.corespec import DEST_OUTPUT, NegMode, ResetMode
from neurocore.hardware.program import Program
from neurocore.hardware.simulator import SimResult, SimulationError, check_inputs

STATE_BYTES = 256 * 2**20  # per chunk of frames: membranes, input sums and axon flags

_KERNELS: dict[str, Any] = {}

# The parts of a tick that ``EventSimulator.timing`` times, in the kernel's clock columns:
# input (step 1, all threads), then per core, by each range's thread: scan (list the active
# axons, prefetch the next core's rows), integrate (step 2, the synaptic events counted),
# update (steps 2–5, the fired neurons listed), route (the previous core's spikes into their
# buckets); deliver (step 6, all threads);
# cores: the wall time of the whole per-core loop, so that cores minus the per-core phases is
# what a thread waits for the other
PHASES = ("input", "scan", "integrate", "update", "route", "deliver", "cores")
_WALL = (0, 5, 6)  # the columns timed as a whole, in row 0
NOWHERE = -(2**31)  # the spike target of a neuron whose spikes go nowhere (DEST_UNUSED)


def zeros(shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """``np.zeros``, but with the zeros written at once: numpy then allocates large arrays in
    huge pages, and this machine's first touch of a fresh 4 KiB page costs ≈ 10 µs (the
    per-tick statistics of a long full-chip run cost ≈ 0.15 ms per tick that way:
    docs/benchmarks.md)."""
    out: np.ndarray = np.empty(shape, dtype)
    out.fill(0)
    return out


def available() -> bool:
    """Whether numba (extra ``neurocore[fast]``) is installed."""
    return importlib.util.find_spec("numba") is not None


def _kernels() -> dict[str, Any]:
    """Compile (or load from numba's cache) the engine's kernels, once per process."""
    if _KERNELS:
        return _KERNELS
    if not available():
        raise SimulationError(
            "the event-driven engine needs numba: pip install 'neurocore[fast]', or use "
            "engine='dense'"
        )
    from neurocore.hardware import event_kernels as kernels

    _KERNELS.update(run_ticks=kernels.run_ticks, unsettled_at_rest=kernels.unsettled_at_rest,
                    threads=kernels.get_num_threads, cycles=kernels.cycles)
    return _KERNELS


def settled_range(program: Program, consts: dict[str, torch.Tensor]) -> tuple[int, int]:
    """Bounds on V after any update (and before the first tick, V = 0); ``consts``: the folded
    per-neuron constants of ``EventSimulator``.

    The update clamps V to the membrane's range. Where every neuron resets to an absolute value
    (keep = 0) the bounds are tighter: a neuron that fired holds R (``add``); one that did not
    has V − λ < α, so V ≤ α − 1, and either V ≥ −β (``nbeta``) or V was set to ``negv`` (−R or
    −β). A linear or no reset can leave V − α or V above α, so then only the clamp bounds it.
    """
    spec = program.spec
    lo, hi = spec.membrane_min, spec.membrane_max
    if program.num_cores and bool((consts["keep"] == 0).all()):
        floor = torch.stack([consts["add"], consts["nbeta"], consts["negv"]])
        top = torch.stack([consts["add"], consts["alpha"] - 1, consts["negv"]])
        lo, hi = max(lo, min(0, int(floor.min()))), min(hi, max(0, int(top.max())))
    return lo, hi


def column_sums(program: Program, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """The sums of the positive and of the negative weights of each neuron's column of
    W = B ∘ S(G), as two (C, N) int64 tensors, without W itself (4 bytes per synapse, 1 GiB for
    a full chip): per core, how many of a neuron's synapses sit on an axon of each type (an
    exact float32 matmul of one-hot types by the crossbar, ``chunk`` cores at a time) times
    that type's strength."""
    c, _, n = program.crossbar.shape
    types = program.spec.axon_types
    pos = torch.zeros((c, n), dtype=torch.int64)
    neg = torch.zeros((c, n), dtype=torch.int64)
    for lo in range(0, c, chunk):
        hi = min(c, lo + chunk)
        one_hot = torch.nn.functional.one_hot(program.axon_types[lo:hi].long(), types)
        counts = torch.bmm(one_hot.transpose(1, 2).float(), program.crossbar[lo:hi].float())
        counts = counts.round().long()  # (c, T, N) synapses per type; exact below 2**24
        s = program.strengths[lo:hi].long().transpose(1, 2)  # (c, T, N)
        pos[lo:hi] = (counts * s.clamp(min=0)).sum(1)
        neg[lo:hi] = (counts * s.clamp(max=0)).sum(1)
    return pos, neg


def membrane_range(program: Program, consts: dict[str, torch.Tensor]) -> tuple[int, int]:
    """Bounds on every value the event engine stores in a membrane: the settled range
    (:func:`settled_range`) widened by what one tick's rows can add before the next update.
    Each axon adds its row at most once a tick, so the input sum of neuron j lies between the
    sums of the negative and of the positive weights of its column of W
    (:func:`column_sums`)."""
    lo, hi = settled_range(program, consts)
    if not program.num_cores:
        return lo, hi
    pos, neg = column_sums(program)
    return lo + int(neg.min()), hi + int(pos.max())


class EventSimulator:
    """The event-driven engine for one program (module doc); same API as ``Simulator``.

    ``calls`` counts frame-ticks run (frames × ticks), so tests can prove this engine ran;
    ``core_updates`` counts the (frame, tick, core) updates it did not skip. With ``timing``
    set, each run also adds the processor cycles of each part of the tick to ``clock``
    (:data:`PHASES`; :meth:`phase_seconds` gives them in seconds): a profile of the engine
    itself, on x86-64 only (it reads ``rdtsc``).
    """

    def __init__(self, program: Program) -> None:
        program.validate()
        spec = program.spec
        self.program = program
        self.calls = 0
        self.core_updates = 0
        self.timing = False
        self.clock = np.zeros(len(PHASES), np.int64)
        self.kernels = _kernels()
        c, a, n = program.num_cores, spec.axons, spec.neurons
        self.sizes = (c, a, n)

        def arr(x: torch.Tensor, dtype: type) -> np.ndarray:
            return np.ascontiguousarray(x.numpy().astype(dtype))

        # W = B ∘ S(G) as the core holds it: the crossbar as bits, (C, A, ⌈N/32⌉) 32-bit words
        # (bit j % 32 of word j // 32: neuron j), whose rows of the active axons are read at
        # random every tick (32 bytes for 256 neurons, an eighth of a row of W in bytes), and
        # the strengths as (C, T, N) rows, S_j[g] for each type g, in int8 where they fit
        words = -(-n // 32)
        padded = torch.zeros((c, a, words * 32), dtype=torch.bool)
        padded[:, :, :n] = program.crossbar
        self.crossbar_bits = np.ascontiguousarray(np.packbits(
            padded.numpy(), axis=-1, bitorder="little").view("<u4").astype(np.uint32))
        st = program.strengths.transpose(1, 2)
        small = st.numel() == 0 or (int(st.min()) >= -128 and int(st.max()) <= 127)
        self.strengths = arr(st, np.int8 if small else np.int16)
        self.axon_types = arr(program.axon_types, np.int8)
        # per-neuron constants of steps 2–5, folded so that the update has no branch:
        # reset = (V & keep) + add (absolute: keep 0, add R; linear: keep −1, add −α;
        # none: keep −1, add 0), and below −β (nbeta) V becomes negv (−R or −β)
        alpha, beta = program.threshold.long(), program.neg_threshold.long()
        reset = program.reset_value.long()
        mode = program.reset_mode.long()
        absolute = mode == int(ResetMode.ABSOLUTE)
        linear = mode == int(ResetMode.LINEAR)
        neg_reset = program.neg_mode.long() == int(NegMode.RESET)
        consts = {
            "leak": program.leak.long(),
            "alpha": alpha,
            "nbeta": -beta,
            "negv": torch.where(neg_reset, -reset, -beta),
            "keep": torch.where(absolute, 0, -1),
            "add": torch.where(absolute, reset, torch.where(linear, -alpha, 0)),
        }
        # in the narrowest integer type that holds them all (the update streams them every
        # tick; one type for all six keeps numba to one compiled variant per type)
        lo = min((int(t.min()) for t in consts.values() if t.numel()), default=0)
        hi = max((int(t.max()) for t in consts.values() if t.numel()), default=0)
        width = next(b for b in (8, 16, 32, 64) if -(2 ** (b - 1)) <= lo and hi < 2 ** (b - 1))
        self.consts = q = {k: arr(t, np.dtype(f"int{width}").type) for k, t in consts.items()}
        # the stored membrane: its value after an update, plus one tick's input sum while the
        # rows are added (the update computes in ``lane_bits`` lanes), in the narrowest of
        # int16, int32 and int64 that holds every value the program can reach
        v_lo, v_hi = membrane_range(program, consts)
        self.v_dtype = next(t for t in (np.int16, np.int32, np.int64)
                            if np.iinfo(t).min <= v_lo and v_hi <= np.iinfo(t).max)
        # the integer lane the update computes in: with |V| ≤ m and every constant ≤ k in
        # size, V − λ is within m + k and the reset (V − λ) & keep + add within m + 2k, so the
        # narrowest type that holds ±(m + 2k) is exact; the clamp to the membrane's range is
        # then the same as a clamp to that range within the lane
        bound = max(abs(v_lo), abs(v_hi)) + 2 * max(abs(lo), abs(hi))
        self.lane_bits = next(b for b in (16, 32, 64) if bound < 2 ** (b - 1))
        top = 2 ** (self.lane_bits - 1)
        self.clamp = max(spec.membrane_min, -top), min(spec.membrane_max, top - 1)
        # the axon flags: one bit per axon, wpc 64-bit words per core, in a ring of slots
        self.wpc = -(-a // 64)
        routed = program.dest_core >= 0
        self.slots = int(program.delay[routed].max()) + 1 if bool(routed.any()) else 1
        # where each neuron's spikes go (sends): its axon's flag within a slot, −1 − port for
        # an output port, NOWHERE for none
        dest, axon = program.dest_core.long(), program.dest_axon.long()
        flag_type = np.int32 if self.slots * c * self.wpc * 64 < 2**31 else np.int64
        self.target = torch.where(routed, dest * (self.wpc * 64) + axon, torch.where(
            dest == DEST_OUTPUT, -1 - axon, torch.full_like(dest, NOWHERE)))
        self._sends: dict[int, tuple[np.ndarray, int]] = {}
        # the flags each input line sets: line_flag[line_ptr[l] : line_ptr[l + 1]]. Every tick
        # reads them at random for each active line: int32 takes half the cache of int64 (the
        # full-chip benchmark ran about 11 % faster with it: docs/benchmarks.md)
        lines = program.input_line.long()
        order = torch.argsort(lines, stable=True)
        self.line_ptr = arr(torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(
            torch.bincount(lines, minlength=program.num_inputs), 0)]),
            np.int32 if lines.numel() < 2**31 else np.int64)
        in_flag = program.input_core.long() * (self.wpc * 64) + program.input_axon.long()
        self.line_flag = arr(in_flag[order], flag_type)
        self.at_rest = np.zeros(c, np.bool_)  # cores that change with no input from V = 0
        self.kernels["unsettled_at_rest"](q["leak"], q["alpha"], q["nbeta"], q["negv"],
                                          spec.membrane_min, spec.membrane_max, self.at_rest)

    def phase_seconds(self) -> dict[str, float]:
        """``clock`` in seconds, each phase's name to its time summed over the runs since
        ``clock`` was last zeroed (per-core phases: a thread's mean). The cycle counter's rate
        is measured against the wall clock on each call (≈ 50 ms)."""
        c0, t0 = self.kernels["cycles"](), time.perf_counter()
        time.sleep(0.05)
        rate = (self.kernels["cycles"]() - c0) / (time.perf_counter() - t0)
        return {name: float(n) / rate for name, n in zip(PHASES, self.clock, strict=True)}

    def sends(self, parts: int) -> tuple[np.ndarray, int]:
        """Each neuron's spike target as the kernel reads it when a chunk's cores are split
        into ``parts`` ranges (one per thread), and how many low bits name the range.

        One number per neuron, so that listing a spike costs one random read: for a neuron
        that sends to an axon, (its flag in the ring slot ``delay`` ticks after slot 0)
        shifted left by ``bits``, OR the range of cores that owns that flag; −1 − port for an
        output port; NOWHERE for none."""
        if parts not in self._sends:
            c = self.sizes[0]
            bits = (parts - 1).bit_length()
            owner = torch.empty(c, dtype=torch.long)  # the same ranges as run_ticks
            for p in range(parts):
                owner[c * p // parts : c * (p + 1) // parts] = p
            span = self.wpc * 64
            ahead = self.program.delay.long() * (c * span) + self.target
            code = torch.where(self.target >= 0,
                               (ahead << bits) | owner[self.target.clamp(min=0) // span],
                               self.target)
            kind = np.int32 if (self.slots * c * span) << bits < 2**31 else np.int64
            self._sends[parts] = (np.ascontiguousarray(code.numpy().astype(kind)), bits)
        return self._sends[parts]

    def run(self, inputs: torch.Tensor, ticks: int, *, record: bool = False,
            spike_weights: torch.Tensor | None = None) -> SimResult:
        """Simulate ``ticks`` ticks of every frame of ``inputs`` (B, ticks_in, num_inputs)."""
        x = check_inputs(self.program, inputs, ticks).numpy()
        c, a, n = self.sizes
        k = self.kernels
        batch, ticks_in = x.shape[0], x.shape[1]
        p = self.program.num_outputs
        weight = np.zeros((0, 0), np.float64)  # read only when given
        if spike_weights is not None:
            weight = np.ascontiguousarray(spike_weights.reshape(c, n).to(torch.float64).numpy())
        outputs = zeros((batch, ticks, p), np.int32)
        core_spikes = zeros((batch, ticks, c), np.int64)  # per tick and core
        events = zeros((batch, ticks, c), np.int64)
        weighted = zeros((batch, ticks if spike_weights is not None else 0, c), np.float64)
        updates = zeros((batch, c), np.int64)
        rec_shape = (batch, ticks, c, n) if record else (batch, 0, 0, 0)
        rec_spk = zeros(rec_shape, np.bool_)
        rec_v = zeros(rec_shape, np.int32)

        # per frame and core: membranes, the spike buckets and the axon flags
        parts = k["threads"]()
        send, bits = self.sends(parts)
        state = ((np.dtype(self.v_dtype).itemsize + send.itemsize) * n
                 + 8 * self.slots * self.wpc)
        chunk = max(1, min(batch, STATE_BYTES // (c * state)))
        q = self.consts
        x = x.view(np.uint8)
        if self.timing and platform.machine().lower() not in ("x86_64", "amd64"):
            raise SimulationError(
                f"EventSimulator.timing reads the x86-64 cycle counter (rdtsc); this machine is "
                f"{platform.machine()}: run without timing"
            )
        for lo in range(0, batch, chunk):
            hi = min(batch, lo + chunk)
            nb = hi - lo
            clock = zeros((nb * parts if self.timing else 0, len(PHASES)), np.int64)
            k["run_ticks"](
                ticks, ticks_in, self.slots, parts,
                np.ascontiguousarray(x[lo:hi]), self.line_ptr, self.line_flag, record,
                *self.clamp, self.crossbar_bits, self.axon_types, self.strengths,
                q["leak"], q["alpha"], q["nbeta"], q["negv"], q["keep"], q["add"],
                self.lane_bits, send, bits, weight,
                zeros((nb, c, n), self.v_dtype),  # membranes
                zeros((nb, self.slots * c * self.wpc), np.uint64),  # the ring of axon flags
                np.repeat(self.at_rest[None], nb, axis=0),  # unsettled cores
                outputs[lo:hi], events[lo:hi], core_spikes[lo:hi], weighted[lo:hi],
                updates[lo:hi], rec_spk[lo:hi], rec_v[lo:hi], clock,
            )
            if self.timing:  # per-core phases: the mean over threads (each ran nb rows)
                per_core = clock.sum(0) // parts
                per_core[list(_WALL)] = clock[0, list(_WALL)]
                self.clock += per_core
            self.calls += nb * ticks
        self.core_updates += int(updates.sum())
        return SimResult(
            outputs=torch.from_numpy(outputs),
            tick_spikes=torch.from_numpy(core_spikes),
            tick_events=torch.from_numpy(events),
            spikes=torch.from_numpy(rec_spk) if record else None,
            membrane=torch.from_numpy(rec_v) if record else None,
            tick_weighted=torch.from_numpy(weighted) if spike_weights is not None else None,
        )
