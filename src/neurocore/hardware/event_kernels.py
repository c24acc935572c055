"""The compiled loops of the event-driven engine (:mod:`neurocore.hardware.event`, whose
docstring describes them). A module of its own, imported only when numba is installed
(extra ``neurocore[fast]``), so that every kernel is a module-level function: numba's disk cache
(``cache=True``) then reloads them in later processes instead of compiling them again.
"""

from __future__ import annotations

import numpy as np
from numba import get_num_threads, njit, prange

from neurocore.hardware.event import NOWHERE

__all__ = ["get_num_threads", "run_ticks", "unsettled_at_rest"]

# The index of a 64-bit word's lowest set bit x = w & −w: LOWEST[(x · DEBRUIJN) >> 58]
DEBRUIJN = np.uint64(0x03F79D71B4CB0A89)
LOWEST = np.zeros(64, np.int64)
LOWEST[[((1 << i) * int(DEBRUIJN) % 2**64) >> 58 for i in range(64)]] = np.arange(64)


@njit(cache=True, inline="always")
def moves(vj, lk, alpha, nbeta, negv, v_lo, v_hi):
    # whether a tick without input would make a neuron at V = vj spike or move V
    u = vj - lk
    rest = min(max(negv if u < nbeta else u, v_lo), v_hi)
    return (u >= alpha) | (rest != vj)


@njit(parallel=True, cache=True)
def unsettled_at_rest(leak, alpha, nbeta, negv, v_lo, v_hi, out):
    for c in prange(leak.shape[0]):  # V = 0 everywhere before the first tick
        moving = False
        for j in range(leak.shape[1]):
            moving |= moves(0, leak[c, j], alpha[c, j], nbeta[c, j], negv[c, j], v_lo, v_hi)
        out[c] = moving


@njit(cache=True)
def update(b, c, v, fired, leak, alpha, nbeta, negv, keep, add, v_lo, v_hi):
    # steps 2–5 for the neurons of core c of frame b once their input is in v,
    # branch-free so that it vectorizes; whether a next tick without input could spike
    # or move V
    moving = False
    for j in range(v.shape[2]):
        lk = leak[c, j]
        vj = v[b, c, j] - lk
        f = vj >= alpha[c, j]
        after = (vj & keep[c, j]) + add[c, j]  # the reset: R, V − α or V
        below = negv[c, j] if vj < nbeta[c, j] else vj  # the negative threshold
        vj = min(max(after if f else below, v_lo), v_hi)
        v[b, c, j] = vj
        fired[b, c, j] = f
        moving |= moves(vj, lk, alpha[c, j], nbeta[c, j], negv[c, j], v_lo, v_hi)
    return moving


@njit(cache=True, inline="always")
def set_flag(ring, b, flag):  # a flag set twice is the OR
    ring[b, flag >> 6] |= np.uint64(1) << np.uint64(flag & 63)


@njit(cache=True, inline="always")
def share(kp, parts, nc, span):
    # frame b and the axon flags [lo, hi) of the p-th of ``parts`` ranges of its cores
    b, p = kp // parts, kp % parts
    return b, (nc * p // parts) * span, (nc * (p + 1) // parts) * span


@njit(parallel=True, cache=True)
def run_ticks(  # every tick of one chunk of frames (module doc: steps 1–6)
    ticks, ticks_in, slots, parts, x, line_ptr, line_flag, record, v_lo, v_hi, w, fanout, leak,
    alpha, nbeta, negv, keep, add, target_of, delay, spike_weight, v, ring, active,
    unsettled, fired, targets, n_targets, outputs, events, core_spikes, weighted, updates,
    rec_spk, rec_v,
):
    nb, nc, nn = v.shape
    wpc = ring.shape[1] // (slots * nc)  # 64-bit words of axon flags per core and slot
    plane = nc * wpc * 64  # flags per slot
    x_words = x.view(np.uint64)  # input lines, 8 per read
    fired_words = fired.view(np.uint64)  # neurons, 8 per read
    weigh = weighted.shape[1] > 0  # energy weights were given
    for t in range(ticks):
        phase = t % slots
        if t < ticks_in:  # 1. external inputs
            for kp in prange(nb * parts):
                b, lo, hi = share(kp, parts, nc, wpc * 64)
                for q in range(x_words.shape[2]):
                    if x_words[b, t, q]:
                        for line in range(8 * q, 8 * q + 8):
                            if x[b, t, line]:
                                for m in range(line_ptr[line], line_ptr[line + 1]):
                                    flag = line_flag[m]
                                    if lo <= flag < hi:
                                        set_flag(ring, b, phase * plane + flag)
        for k in prange(nb * nc):
            b = k // nc
            c = k - b * nc
            n_active = 0  # this core's active axons; their flags are cleared
            for q in range(wpc):
                at = (phase * nc + c) * wpc + q
                word = ring[b, at]
                if word:
                    ring[b, at] = 0
                    while word:  # each set bit, lowest first (de Bruijn)
                        low = word & (~word + np.uint64(1))
                        active[k, n_active] = q * 64 + LOWEST[(low * DEBRUIJN) >> np.uint64(58)]
                        n_active += 1
                        word ^= low
            # 2. integrate: V += row i of W for each active axon i, four rows at a
            # time (four independent memory streams over rows scattered in a large table)
            n = 0
            while n + 4 <= n_active:
                i0, i1 = active[k, n], active[k, n + 1]
                i2, i3 = active[k, n + 2], active[k, n + 3]
                for j in range(nn):
                    v[b, c, j] += (np.int32(w[c, i0, j]) + np.int32(w[c, i1, j])
                                   + np.int32(w[c, i2, j]) + np.int32(w[c, i3, j]))
                n += 4
            while n < n_active:
                i0 = active[k, n]
                for j in range(nn):
                    v[b, c, j] += w[c, i0, j]
                n += 1
            n_events = 0
            for n in range(n_active):
                n_events += fanout[c, active[k, n]]
            events[b, t, c] = n_events
            n_targets[b, c] = 0
            if not (n_active or unsettled[b, c]):  # settled and no input: nothing changes
                if record:
                    for j in range(nn):
                        rec_v[b, t, c, j] = v[b, c, j]
                continue
            updates[b, c] += 1
            unsettled[b, c] = update(b, c, v, fired, leak, alpha, nbeta, negv, keep, add,
                                     v_lo, v_hi)
            if record:
                for j in range(nn):
                    rec_v[b, t, c, j] = v[b, c, j]
                    rec_spk[b, t, c, j] = fired[b, c, j]
            n_fired = 0
            n_out = 0
            spent = 0.0
            for q in range(fired_words.shape[2]):  # 6. where each spike goes
                if fired_words[b, c, q]:
                    for j in range(8 * q, 8 * q + 8):
                        if fired[b, c, j]:
                            n_fired += 1
                            if weigh:
                                spent += spike_weight[c, j]
                            goes = target_of[c, j]
                            if goes >= 0:  # an axon flag, in the slot `delay` ticks on
                                goes += ((t + delay[c, j]) % slots) * plane
                            if goes != NOWHERE:
                                targets[b, c, n_out] = goes
                                n_out += 1
            n_targets[b, c] = n_out
            core_spikes[b, t, c] = n_fired
            if weigh:
                weighted[b, t, c] = spent
        # 6. deliver, into a slot other than this tick's (delay ≥ 1). Each thread owns
        # the flags of a range of cores (lo ≤ flag < hi), so no two write one word.
        for kp in prange(nb * parts):
            b, lo, hi = share(kp, parts, nc, wpc * 64)
            for c in range(nc):
                for n in range(n_targets[b, c]):
                    goes = targets[b, c, n]
                    if goes >= 0:
                        if lo <= goes % plane < hi:
                            set_flag(ring, b, goes)
                    elif kp % parts == 0:  # output port −1 − goes: the first part
                        outputs[b, t, -1 - goes] += 1
