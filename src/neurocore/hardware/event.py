"""The event-driven simulator: the equations of :mod:`neurocore.hardware.simulator`, in
compiled loops that touch only what spikes reach.

Same results as :class:`~neurocore.hardware.simulator.Simulator` and
:func:`~neurocore.hardware.simulator.reference_simulate` (the tests hold all three equal with
``torch.equal``); the work per tick follows the activity instead of the chip's size:

- step 2 adds, for each *active* axon only, its row of W = B ∘ S(G) (int16, precomputed) into
  its core's input sums; a core whose axons are all silent is not read;
- steps 2–5 run on a core only when something can change there: it received input this tick,
  or one of its neurons is *unsettled* — a tick without input would make it spike or move its
  membrane (V − λ ≥ α, or the negative action and saturation of V − λ differ from V). Each
  update records whether its core is left settled (and at construction, whether it is at
  V = 0); a settled core without input is skipped, which is exact by that very definition.
  Leak-free cores and the memoryless neurons of compiled networks (λ ≥ 0, floor at 0) settle,
  so only the cores a spike reaches cost anything;
- step 6 writes each spike into a ring of (largest delay + 1) axon-flag slots (a flag set twice
  is the OR) or adds it to its output port.

Frames and cores are independent within a tick, so every tick runs one parallel loop over
(frame, core) pairs for steps 1–5 and one over frames for step 6 (numba ``prange``; threads as
``numba.set_num_threads``). Weight rows are int8 when every strength fits, else int16; input
sums int32 when A · max|S| < 2^31, else int64; the membrane update is done in int64 and stored
as int32 — all exact. Frames run in chunks bounded in memory (:data:`STATE_BYTES`).

numba is the optional extra ``neurocore[fast]``; :func:`available` says whether it is installed,
and :func:`~neurocore.hardware.simulator.make_simulator` falls back to the dense engine without
it.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import torch

from neurocore.hardware.corespec import DEST_OUTPUT, NegMode, ResetMode
from neurocore.hardware.program import Program
from neurocore.hardware.simulator import SimResult, SimulationError, check_inputs

STATE_BYTES = 256 * 2**20  # per chunk of frames: membranes, input sums and axon flags

_KERNELS: dict[str, Any] = {}


def available() -> bool:
    """Whether numba (extra ``neurocore[fast]``) is installed."""
    return importlib.util.find_spec("numba") is not None


def _kernels() -> dict[str, Any]:
    """Compile (or load from numba's cache) the two per-tick kernels, once per process."""
    if _KERNELS:
        return _KERNELS
    if not available():
        raise SimulationError(
            "the event-driven engine needs numba: pip install 'neurocore[fast]', or use "
            "engine='dense'"
        )
    import numba

    absolute, linear = int(ResetMode.ABSOLUTE), int(ResetMode.LINEAR)
    neg_reset = int(NegMode.RESET)

    @numba.njit(cache=True, inline="always")
    def settled(vj, leak, alpha, beta, reset_value, neg_mode, v_lo, v_hi):
        # whether a tick with no input leaves V = vj as it is and spikes nothing (steps 2–5)
        u = vj - leak
        if u >= alpha:
            return False
        if u < -beta:
            u = -reset_value if neg_mode == neg_reset else -beta
        return min(max(u, v_lo), v_hi) == vj

    @numba.njit(parallel=True, cache=True)
    def unsettled_at_rest(leak, alpha, beta, reset_value, neg_mode, v_lo, v_hi, out):
        for c in numba.prange(leak.shape[0]):  # V = 0 everywhere before the first tick
            for j in range(leak.shape[1]):
                if not settled(np.int64(0), np.int64(leak[c, j]), alpha[c, j], beta[c, j],
                               reset_value[c, j], neg_mode[c, j], v_lo, v_hi):
                    out[c] = True

    @numba.njit(parallel=True, cache=True)
    def integrate_fire(  # steps 1–5 for every (frame, core) of one tick
        t, phase, record, v_lo, v_hi, w, fanout, leak, alpha, beta, reset_value, reset_mode,
        neg_mode, v, acc, pending, unsettled, spk, nspk, events, core_spikes, updates, rec_spk,
        rec_v,
    ):
        nb, nc, nn = v.shape
        na = w.shape[1]
        for k in numba.prange(nb * nc):
            b, c = k // nc, k % nc
            slot = pending[b, phase]
            base = c * na
            active = False
            for i in range(na):
                if slot[base + i]:
                    slot[base + i] = 0
                    active = True
                    events[b, t, c] += fanout[c, i]
                    for j in range(nn):
                        acc[b, c, j] += w[c, i, j]
            nspk[b, c] = 0
            if not (active or unsettled[b, c]):
                if record:
                    for j in range(nn):
                        rec_v[b, t, c, j] = v[b, c, j]
                continue
            updates[b, c] += 1
            n_fired = 0
            unsettled_core = False
            for j in range(nn):
                lk = np.int64(leak[c, j])
                vj = np.int64(v[b, c, j]) + acc[b, c, j] - lk
                acc[b, c, j] = 0
                fired = vj >= alpha[c, j]
                if fired:
                    if reset_mode[c, j] == absolute:
                        vj = reset_value[c, j]
                    elif reset_mode[c, j] == linear:
                        vj -= alpha[c, j]
                    spk[b, c, n_fired] = j
                    n_fired += 1
                elif vj < -beta[c, j]:
                    vj = -reset_value[c, j] if neg_mode[c, j] == neg_reset else -beta[c, j]
                vj = min(max(vj, v_lo), v_hi)
                v[b, c, j] = vj
                if not unsettled_core and not settled(vj, lk, alpha[c, j], beta[c, j],
                                                      reset_value[c, j], neg_mode[c, j],
                                                      v_lo, v_hi):
                    unsettled_core = True
                if record:
                    rec_v[b, t, c, j] = vj
                    rec_spk[b, t, c, j] = fired
            nspk[b, c] = n_fired
            core_spikes[b, t, c] = n_fired
            unsettled[b, c] = unsettled_core

    @numba.njit(parallel=True, cache=True)
    def route(  # step 6 for every frame of one tick
        t, slots, spk, nspk, dest_core, dest_axon, delay, spike_weight, pending, outputs,
        weighted,
    ):
        nb, nc = nspk.shape
        na = pending.shape[2] // nc
        for b in numba.prange(nb):
            for c in range(nc):
                for k in range(nspk[b, c]):
                    j = spk[b, c, k]
                    weighted[b, t, c] += spike_weight[c, j]
                    d = dest_core[c, j]
                    if d >= 0:
                        pending[b, (t + delay[c, j]) % slots, d * na + dest_axon[c, j]] = 1
                    elif d == DEST_OUTPUT:
                        outputs[b, t, dest_axon[c, j]] += 1

    @numba.njit(parallel=True, cache=True)
    def inject(phase, x_t, line, flat, pending):  # external inputs of one tick
        for b in numba.prange(pending.shape[0]):
            for k in range(line.shape[0]):
                if x_t[b, line[k]]:
                    pending[b, phase, flat[k]] = 1

    _KERNELS.update(integrate_fire=integrate_fire, route=route, inject=inject,
                    unsettled_at_rest=unsettled_at_rest)
    return _KERNELS


class EventSimulator:
    """The event-driven engine for one program (module doc); same API as ``Simulator``.

    ``calls`` counts frame-ticks run (frames × ticks), so tests can prove this engine ran;
    ``core_updates`` counts the (frame, tick, core) updates it did not skip.
    """

    def __init__(self, program: Program) -> None:
        program.validate()
        spec = program.spec
        self.program = program
        self.calls = 0
        self.core_updates = 0
        self.kernels = _kernels()
        c, a, n = program.num_cores, spec.axons, spec.neurons
        self.sizes = (c, a, n)

        def arr(x: torch.Tensor, dtype: type) -> np.ndarray:
            return np.ascontiguousarray(x.numpy().astype(dtype))

        # (C, A, N) rows of W in the narrowest exact dtype: memory traffic is the cost here
        small = spec.strength_abs_max <= 127
        self.w = arr(program.effective_weights(), np.int8 if small else np.int16)
        # input sums: |Σ_i W_ij| ≤ A · max|S|
        self.acc_dtype = np.int32 if spec.axons * spec.strength_abs_max < 2**31 else np.int64
        self.fanout = arr(program.crossbar.sum(2), np.int64)  # (C, A)
        self.leak = arr(program.leak, np.int32)
        self.alpha = arr(program.threshold, np.int32)
        self.beta = arr(program.neg_threshold, np.int32)
        self.reset_value = arr(program.reset_value, np.int32)
        self.reset_mode = arr(program.reset_mode, np.uint8)
        self.neg_mode = arr(program.neg_mode, np.uint8)
        self.dest_core = arr(program.dest_core, np.int64)
        self.dest_axon = arr(program.dest_axon, np.int64)
        self.delay = arr(program.delay, np.int64)
        routed = program.dest_core >= 0
        self.slots = int(program.delay[routed].max()) + 1 if bool(routed.any()) else 1
        self.in_line = arr(program.input_line, np.int64)
        self.in_flat = arr(program.input_core.long() * a + program.input_axon.long(), np.int64)
        self.at_rest = np.zeros(c, np.bool_)  # cores that change with no input from V = 0
        self.kernels["unsettled_at_rest"](self.leak, self.alpha, self.beta, self.reset_value,
                                          self.neg_mode, spec.membrane_min, spec.membrane_max,
                                          self.at_rest)

    def run(self, inputs: torch.Tensor, ticks: int, *, record: bool = False,
            spike_weights: torch.Tensor | None = None) -> SimResult:
        """Simulate ``ticks`` ticks of every frame of ``inputs`` (B, ticks_in, num_inputs)."""
        x = check_inputs(self.program, inputs, ticks).numpy()
        c, a, n = self.sizes
        k = self.kernels
        spec = self.program.spec
        batch, ticks_in = x.shape[0], x.shape[1]
        p = self.program.num_outputs
        weight = np.zeros((c, n), np.float64)
        if spike_weights is not None:
            weight = np.ascontiguousarray(spike_weights.reshape(c, n).to(torch.float64).numpy())
        outputs = np.zeros((batch, ticks, p), np.int32)
        core_spikes = np.zeros((batch, ticks, c), np.int64)  # per tick and core
        events = np.zeros((batch, ticks, c), np.int64)
        weighted = np.zeros((batch, ticks, c), np.float64)
        updates = np.zeros((batch, c), np.int64)
        rec_shape = (batch, ticks, c, n) if record else (batch, 0, 0, 0)
        rec_spk = np.zeros(rec_shape, np.bool_)
        rec_v = np.zeros(rec_shape, np.int32)

        per_frame = c * n * (4 + 8 + 8) + self.slots * c * a + c
        chunk = max(1, min(batch, STATE_BYTES // per_frame))
        for lo in range(0, batch, chunk):
            hi = min(batch, lo + chunk)
            nb = hi - lo
            v = np.zeros((nb, c, n), np.int32)
            acc = np.zeros((nb, c, n), self.acc_dtype)
            pending = np.zeros((nb, self.slots, c * a), np.uint8)
            unsettled = np.repeat(self.at_rest[None], nb, axis=0)
            spk = np.zeros((nb, c, n), np.int32)
            nspk = np.zeros((nb, c), np.int64)
            xs = x[lo:hi]
            for t in range(ticks):
                phase = t % self.slots
                if t < ticks_in:
                    k["inject"](phase, np.ascontiguousarray(xs[:, t]), self.in_line,
                                self.in_flat, pending)
                k["integrate_fire"](
                    t, phase, record, spec.membrane_min, spec.membrane_max, self.w, self.fanout,
                    self.leak, self.alpha, self.beta, self.reset_value,
                    self.reset_mode, self.neg_mode, v, acc, pending, unsettled, spk, nspk,
                    events[lo:hi], core_spikes[lo:hi], updates[lo:hi], rec_spk[lo:hi],
                    rec_v[lo:hi],
                )
                k["route"](t, self.slots, spk, nspk, self.dest_core, self.dest_axon, self.delay,
                           weight, pending, outputs[lo:hi], weighted[lo:hi])
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
