"""The compiled loops of the event-driven engine (:mod:`neurocore.hardware.event`, whose
docstring describes them). A module of its own, imported only when numba is installed
(extra ``neurocore[fast]``), so that every kernel is a module-level function: numba's disk cache
(``cache=True``) then reloads them in later processes instead of compiling them again.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import get_num_threads, njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from neurocore.hardware.event import NOWHERE

AHEAD = 16  # spikes delivered ahead of the one in hand whose flag word is prefetched

__all__ = ["cycles", "get_num_threads", "run_ticks", "unsettled_at_rest"]

def _item_pointer(context, builder, sig, args):
    # the address of ary[idx] for a 1-D array ``ary``: the intrinsics' first two arguments
    aryty, idxty = sig.args[0], sig.args[1]
    ary = context.make_array(aryty)(context, builder, args[0])
    idx = context.cast(builder, args[1], idxty, types.intp)
    return cgutils.get_item_pointer(context, builder, aryty, ary, [idx])


def _one_dim(ary, idx) -> bool:
    return isinstance(ary, types.Array) and ary.ndim == 1 and isinstance(idx, types.Integer)


@intrinsic
def atomic_or(typingctx, ary, idx, val):
    """ary[idx] |= val as one atomic instruction (``lock or``): threads may set bits of one
    word at once. Relaxed ordering: the end of the parallel loop orders it."""
    if not _one_dim(ary, idx):
        return None

    def codegen(context, builder, sig, args):
        builder.atomic_rmw("or", _item_pointer(context, builder, sig, args), args[2], "monotonic")
        return context.get_dummy_value()

    return types.void(ary, idx, ary.dtype), codegen


def _prefetch(ary, idx, write):
    # the typing and code of prefetch and prefetch_write: LLVM's llvm.prefetch of &ary[idx]
    # (keep in all cache levels)
    if not _one_dim(ary, idx):
        return None

    def codegen(context, builder, sig, args):
        byte_ptr, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_ptr, i32, i32, i32]),
            "llvm.prefetch.p0")
        address = builder.bitcast(_item_pointer(context, builder, sig, args), byte_ptr)
        builder.call(fn, [address, i32(int(write)), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(ary, idx), codegen


@intrinsic
def prefetch(typingctx, ary, idx):
    """A hint that ary[idx] will be read soon (``prefetcht0``); no effect on any value."""
    return _prefetch(ary, idx, False)


@intrinsic
def prefetch_write(typingctx, ary, idx):
    """A hint that ary[idx] will be written soon (``prefetchw``); no effect on any value."""
    return _prefetch(ary, idx, True)


def _masked_adds(v, vi, s, offsets, masks):
    # the typing and code of masked_add32 and masked_add32x4: v[vi : vi + 32] += the sum over
    # k of s[offsets[k] : offsets[k] + 32] where bit j of masks[k] is set
    def bits(t):  # an integer type's width, else 0 (numba's stubs lack Integer.bitwidth)
        return t.bitwidth if isinstance(t, types.Integer) else 0  # type: ignore[attr-defined]

    ok = (
        _one_dim(v, vi) and isinstance(s, types.Array) and s.ndim == 1 and v.layout == "C"
        and s.layout == "C" and 0 < bits(s.dtype) <= bits(v.dtype)
        and all(isinstance(o, types.Integer) for o in offsets)
        and all(bits(m) == 32 for m in masks)
    )
    if not ok:
        return None
    k = len(offsets)

    def codegen(context, builder, sig, args):
        vt, st = sig.args[0], sig.args[2]
        lanes_v = ir.VectorType(ir.IntType(vt.dtype.bitwidth), 32)
        lanes_s = ir.VectorType(ir.IntType(st.dtype.bitwidth), 32)
        vp = builder.bitcast(_item_pointer(context, builder, sig, args), lanes_v.as_pointer())
        acc = old = builder.load(vp, align=vt.dtype.bitwidth // 8)
        s_ary = context.make_array(st)(context, builder, args[2])
        for at, mask, at_ty in zip(args[3 : 3 + k], args[3 + k :], sig.args[3 : 3 + k],
                                   strict=True):
            idx = context.cast(builder, at, at_ty, types.intp)
            sp = cgutils.get_item_pointer(context, builder, st, s_ary, [idx])
            add = builder.load(builder.bitcast(sp, lanes_s.as_pointer()),
                               align=st.dtype.bitwidth // 8)
            if st.dtype.bitwidth < vt.dtype.bitwidth:
                add = builder.sext(add, lanes_v)
            on = builder.bitcast(mask, ir.VectorType(ir.IntType(1), 32))
            acc = builder.select(on, builder.add(acc, add), acc)
        if acc is not old:
            builder.store(acc, vp, align=vt.dtype.bitwidth // 8)
        return context.get_dummy_value()

    return types.void(v, vi, s, *offsets, *masks), codegen


@intrinsic
def masked_add32(typingctx, v, vi, s, si, mask):
    """v[vi : vi + 32] += s[si : si + 32] where bit j of the 32-bit ``mask`` is set (j = 0 the
    lowest), as one vector select over 32 lanes in v's integer type (s is sign-extended to it):
    on AVX-512, a masked add. v and s: contiguous 1-D integer arrays, s no wider than v."""
    return _masked_adds(v, vi, s, (si,), (mask,))


@intrinsic
def masked_add32x4(typingctx, v, vi, s, s0, s1, s2, s3, m0, m1, m2, m3):
    """Four masked adds (``masked_add32``) into one load and store of v[vi : vi + 32]."""
    return _masked_adds(v, vi, s, (s0, s1, s2, s3), (m0, m1, m2, m3))


def _bit_count(name, word):
    # the typing and code of trailing_zeros and popcount: LLVM's llvm.<name> on one integer
    # (cttz and ctpop: one tzcnt or popcnt instruction on x86-64), as an int64
    if not isinstance(word, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        ty = args[0].type
        extra = [ir.IntType(1)(1)] if name == "cttz" else []  # cttz(0) is never asked
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ty, [ty] + [e.type for e in extra]),
            f"llvm.{name}.i{ty.width}")
        count = builder.call(fn, [args[0], *extra])
        return builder.zext(count, ir.IntType(64)) if ty.width < 64 else count

    return types.int64(word), codegen


@intrinsic
def trailing_zeros(typingctx, word):
    """The index of the lowest set bit of a nonzero integer (``tzcnt``)."""
    return _bit_count("cttz", word)


@intrinsic
def popcount(typingctx, word):
    """How many bits of an integer are set (``popcnt``)."""
    return _bit_count("ctpop", word)


@intrinsic
def nonzero_bits64(typingctx, ary, idx):
    """A uint64 whose bit k says whether ary[idx + k] ≠ 0, for the 64 bytes of a contiguous 1-D
    uint8 or bool array from idx on: one vector compare (AVX-512: ``vptestmb``, AVX2: two
    ``vpmovmskb``)."""
    if not (_one_dim(ary, idx) and ary.layout == "C" and ary.dtype in (types.uint8,
                                                                       types.boolean)):
        return None

    def codegen(context, builder, sig, args):
        lanes = ir.VectorType(ir.IntType(8), 64)
        ptr = builder.bitcast(_item_pointer(context, builder, sig, args), lanes.as_pointer())
        on = builder.icmp_unsigned("!=", builder.load(ptr, align=1), lanes(None))
        return builder.bitcast(on, ir.IntType(64))

    return types.uint64(ary, idx), codegen


@intrinsic
def read_cycles(typingctx):
    """The processor's cycle counter (LLVM's ``llvm.readcyclecounter``: ``rdtsc`` on x86-64,
    which counts at a constant rate; on other processors it may not be readable)."""

    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.IntType(64), []), "llvm.readcyclecounter")
        return builder.call(fn, [])

    return types.int64(), codegen


@njit(cache=True)
def cycles():  # the cycle counter, for Python (to relate it to wall time)
    return read_cycles()  # type: ignore[call-arg]


@njit(cache=True, inline="always")
def moves(vj, lk, alpha, nbeta, negv, v_lo, v_hi, lane):
    # whether a tick without input would make a neuron at V = vj spike or move V; ``lane``
    # (np.int16, np.int32 or np.int64) is the integer type it computes in (``update``)
    u = lane(vj - lk)
    rest = min(max(negv if u < nbeta else u, v_lo), v_hi)
    return (u >= alpha) | (rest != vj)


@njit(parallel=True, cache=True)
def unsettled_at_rest(leak, alpha, nbeta, negv, v_lo, v_hi, out):
    for c in prange(leak.shape[0]):  # V = 0 everywhere before the first tick
        moving = False
        for j in range(leak.shape[1]):
            moving |= moves(0, leak[c, j], alpha[c, j], nbeta[c, j], negv[c, j], v_lo, v_hi,
                            np.int64)
        out[c] = moving


@njit(cache=True)
def update(vc, fc, c, leak, alpha, nbeta, negv, keep, add, v_lo, v_hi, lane):
    # steps 2–5 for the neurons of core c once their input is in vc (its membranes; fc gets
    # whether each fired), branch-free so that it vectorizes; whether a next tick without
    # input could spike or move V. ``lane`` is the integer type it computes in, the narrowest
    # of np.int16, np.int32 and np.int64 in which every intermediate value is exact
    # (``EventSimulator.lane_bits``; narrower lanes are more per vector, and numba would widen
    # each result to int64 unless it is cast); v_lo and v_hi are the clamp, within the lane
    lo, hi = lane(v_lo), lane(v_hi)
    lkc, alc, nbc, ngc, kpc, adc = leak[c], alpha[c], nbeta[c], negv[c], keep[c], add[c]
    moving = False
    for j in range(vc.shape[0]):
        lk, al, nb, ng = lane(lkc[j]), lane(alc[j]), lane(nbc[j]), lane(ngc[j])
        u = lane(lane(vc[j]) - lk)
        f = u >= al
        after = lane(lane(u & lane(kpc[j])) + lane(adc[j]))  # the reset: R, V − α or V
        below = ng if u < nb else u  # the negative threshold
        vj = min(max(after if f else below, lo), hi)
        vc[j] = vj
        fc[j] = f
        moving |= moves(vj, lk, al, nb, ng, lo, hi, lane)
    return moving


@njit(cache=True, inline="always")
def set_flag(words, flag):  # a flag set twice is the OR
    words[flag >> 6] |= np.uint64(1) << np.uint64(flag & 63)


@njit(cache=True, inline="always")
def list_bits(words, lo, hi, out, n):
    # append the index of every set bit of words[lo:hi] (relative to lo) to out[n:], clear
    # those words; how many there are now. Lowest bit first
    for q in range(lo, hi):
        word = words[q]
        if word:
            words[q] = 0
            while word:
                out[n] = (q - lo) * 64 + trailing_zeros(word)  # type: ignore[call-arg]
                n += 1
                word &= word - np.uint64(1)
    return n


@njit(cache=True, inline="always")
def route(c, fired, n_fired, b, p, phase, plane, flags, mask, bits, send, bucket, bucket_at,
          filled, weigh, spike_weight, weighted, t):
    # step 6 for the neurons fired[:n_fired] of core c, in range p: each spike's target into
    # the bucket (p, its destination range)
    spent = 0.0
    for n in range(n_fired):
        j = fired[n]
        if weigh:
            spent += spike_weight[c, j]
        goes = send[c, j]  # an output port −1 − port: range 0 counts it
        d = 0
        if goes >= 0:  # an axon flag, in the slot ``delay`` ticks on
            d = goes & mask
            goes = (goes >> bits) + phase * plane
            if goes >= flags:
                goes -= flags
        if goes != NOWHERE:
            bucket[b, bucket_at[p, d] + filled[b, p, d]] = goes
            filled[b, p, d] += 1
    if weigh:
        weighted[b, t, c] = spent


@njit(parallel=True, cache=True)
def run_ticks(  # every tick of one chunk of frames (module doc of event.py: steps 1–6)
    ticks, ticks_in, slots, parts, x, line_ptr, line_flag, record, v_lo, v_hi, xbits, axon_type,
    strength, leak, alpha, nbeta, negv, keep, add, lane_bits, send, bits, spike_weight,
    v, ring, unsettled, outputs, events, core_spikes, weighted, updates, rec_spk, rec_v, clock,
):
    nb, nc, nn = v.shape
    na, nw = xbits.shape[1], xbits.shape[2]  # axons; 32-bit crossbar words per axon
    whole = nn // 32  # neurons in whole words of 32
    wpc = ring.shape[1] // (slots * nc)  # 64-bit words of axon flags per core and slot
    span = wpc * 64  # flags per core and slot
    plane = nc * span  # flags per slot
    x_words = x.view(np.uint64)  # input lines, 8 per read
    rows = xbits.reshape(-1)  # for prefetching
    targets = send.reshape(-1)
    strengths = strength.reshape(nc, -1)  # a core's S_j[g] at g * nn + j
    weigh = weighted.shape[1] > 0  # energy weights were given
    # the cycles of each phase (``event.PHASES``) when clock has rows: the input, per-core and
    # delivery loops as a whole in row 0, the per-core phases by each range's thread in its
    # own row
    timed = clock.shape[0] > 0
    pieces = max(1, min(16 * parts, x_words.shape[2]))  # of the input lines, per frame
    # Each frame's cores are split into ``parts`` ranges, one per thread. A spike goes into
    # the bucket of its source range and destination range (an output port: range 0); each
    # bucket holds at most one spike of each neuron that sends there, so it is sized by them
    mask = (1 << bits) - 1  # ``send``: the destination range in the low bits (event.py)
    flags = slots * plane  # in the ring
    room = np.zeros((parts, parts), np.int64)  # neurons that send from range s to range d
    for p in range(parts):
        for c in range(nc * p // parts, nc * (p + 1) // parts):
            for j in range(nn):
                code = send[c, j]
                if code != NOWHERE:
                    room[p, code & mask if code >= 0 else 0] += 1
    bucket_at = np.empty((parts, parts), np.int64)  # where bucket (s, d) starts
    start = 0
    for s in range(parts):
        for d in range(parts):
            bucket_at[s, d] = start
            start += room[s, d]
    bucket = np.empty((nb, max(1, start)), send.dtype)
    # spikes in each bucket this tick, filled[b, s, d]; each (b, s) row on cache lines of its
    # own (128 bytes at least), as one thread counts into it while the others count into theirs
    filled = np.empty((nb, parts, max(parts, 16)), np.int64)
    listed = np.empty((nb * parts, 2, na), np.int64)  # active axons: this core's, the next's
    # whether each neuron of the core in hand fired, per thread (bytes of 0 or 1, in whole
    # 64-byte words whose padding stays 0)
    fired = np.zeros((nb * parts, -(-nn // 64) * 64), np.uint8)
    # which neurons fired, per thread: in one half the core in hand's, in the other those of
    # the core before it whose spikes wait to be routed
    spiked = np.empty((nb * parts, 2, nn), np.int64)
    for t in range(ticks):
        phase = t % slots
        began = read_cycles() if timed else 0  # type: ignore[call-arg]
        if t < ticks_in:  # 1. external inputs, in parallel over pieces of the input lines
            for kp in prange(nb * pieces):
                b, p = kp // pieces, kp % pieces
                words = ring[b]
                n_words = x_words.shape[2]
                for q in range(n_words * p // pieces, n_words * (p + 1) // pieces):
                    if x_words[b, t, q]:
                        for line in range(8 * q, 8 * q + 8):
                            if x[b, t, line]:
                                for m in range(line_ptr[line], line_ptr[line + 1]):
                                    flag = phase * plane + line_flag[m]
                                    bit = np.uint64(1) << np.uint64(flag & 63)
                                    atomic_or(words, flag >> 6, bit)  # type: ignore[call-arg]
        if timed:
            now = read_cycles()  # type: ignore[call-arg,var-annotated]
            clock[0, 0] += now - began
            began = now
        for kp in prange(nb * parts):  # 2–6, the cores of one range of one frame
            b, p = kp // parts, kp % parts
            last = read_cycles() if timed else 0  # type: ignore[call-arg]
            lo, hi = nc * p // parts, nc * (p + 1) // parts
            words = ring[b]
            for d in range(parts):
                filled[b, p, d] = 0
            following = 0  # the next core's active axons, listed one core ahead
            # the last core with spikes not yet routed, how many, and its half of spiked
            held, n_held, hs = -1, 0, 0
            if lo < hi:
                at = (phase * nc + lo) * wpc
                following = list_bits(words, at, at + wpc, listed[kp, 0], 0)
            for c in range(lo, hi):
                mine = listed[kp, (c - lo) & 1]
                n_active = following
                if c + 1 < hi:  # list the next core's axons; start fetching their rows
                    at = (phase * nc + c + 1) * wpc
                    nxt = listed[kp, (c + 1 - lo) & 1]
                    following = list_bits(words, at, at + wpc, nxt, 0)
                    for n in range(following):
                        row = ((c + 1) * na + nxt[n]) * nw
                        for o in range(0, nw, 64 // xbits.itemsize):  # each cache line
                            prefetch(rows, row + o)  # type: ignore[call-arg]
                if timed:
                    now = read_cycles()  # type: ignore[call-arg]
                    clock[kp, 1] += now - last
                    last = now
                # 2. integrate: V_j += S_j[G_i] where B_ij, for each active axon i: a masked
                # add per 32 neurons, bit by bit for the last ones
                vc, sc = v[b, c], strengths[c]  # sc: S_j[g] at g * nn + j
                n = 0
                while n + 4 <= n_active:  # four rows per load and store of V
                    i0, i1, i2, i3 = mine[n], mine[n + 1], mine[n + 2], mine[n + 3]
                    r0, r1, r2, r3 = xbits[c, i0], xbits[c, i1], xbits[c, i2], xbits[c, i3]
                    g0, g1 = axon_type[c, i0] * nn, axon_type[c, i1] * nn
                    g2, g3 = axon_type[c, i2] * nn, axon_type[c, i3] * nn
                    for q in range(whole):
                        o = 32 * q
                        masked_add32x4(vc, o, sc, g0 + o, g1 + o, g2 + o,  # type: ignore[call-arg]
                                       g3 + o, r0[q], r1[q], r2[q], r3[q])
                    n += 4
                for m in range(n, n_active):
                    i = mine[m]
                    row, g = xbits[c, i], axon_type[c, i] * nn
                    for q in range(whole):
                        masked_add32(vc, 32 * q, sc, g + 32 * q, row[q])  # type: ignore[call-arg]
                for n in range(n_active if whole < nw else 0):  # neurons past whole words
                    i = mine[n]
                    word, g = xbits[c, i, whole], axon_type[c, i] * nn
                    for j in range(32 * whole, nn):
                        if (word >> np.uint32(j - 32 * whole)) & np.uint32(1):
                            vc[j] += sc[g + j]
                if timed:
                    now = read_cycles()  # type: ignore[call-arg]
                    clock[kp, 2] += now - last
                    last = now
                n_events = 0  # the synapses of the active axons: their rows' set bits
                for n in range(n_active):
                    row = xbits[c, mine[n]]
                    for q in range(nw):
                        n_events += popcount(row[q])  # type: ignore[call-arg]
                events[b, t, c] = n_events
                if timed:
                    now = read_cycles()  # type: ignore[call-arg]
                    clock[kp, 3] += now - last
                    last = now
                if not (n_active or unsettled[b, c]):  # settled and no input: nothing changes
                    if record:
                        for j in range(nn):
                            rec_v[b, t, c, j] = v[b, c, j]
                    if timed:
                        now = read_cycles()  # type: ignore[call-arg]
                        clock[kp, 4] += now - last
                        last = now
                    continue
                updates[b, c] += 1
                fc = fired[kp]
                if lane_bits == 16:
                    moving = update(vc, fc, c, leak, alpha, nbeta, negv, keep, add, v_lo, v_hi,
                                    np.int16)
                elif lane_bits == 32:
                    moving = update(vc, fc, c, leak, alpha, nbeta, negv, keep, add, v_lo, v_hi,
                                    np.int32)
                else:
                    moving = update(vc, fc, c, leak, alpha, nbeta, negv, keep, add, v_lo, v_hi,
                                    np.int64)
                unsettled[b, c] = moving
                if record:
                    for j in range(nn):
                        rec_v[b, t, c, j] = vc[j]
                        rec_spk[b, t, c, j] = fc[j]
                if timed:
                    now = read_cycles()  # type: ignore[call-arg]
                    clock[kp, 4] += now - last
                    last = now
                # 6. route the spikes of the core updated before this one, whose targets are in
                # by now; then list the neurons that fired here and start fetching their targets
                if held >= 0:
                    route(held, spiked[kp, hs], n_held, b, p, phase, plane, flags, mask, bits,
                          send, bucket, bucket_at, filled, weigh, spike_weight, weighted, t)
                held = -1
                n_fired = 0
                out = spiked[kp, 1 - hs]
                for q in range(0, fc.shape[0], 64):
                    word = nonzero_bits64(fc, q)  # type: ignore[call-arg]
                    while word:  # neuron q + k fired where bit k is set
                        j = q + trailing_zeros(word)
                        word &= word - np.uint64(1)
                        out[n_fired] = j
                        n_fired += 1
                        prefetch(targets, c * nn + j)
                core_spikes[b, t, c] = n_fired
                if n_fired:
                    held, n_held, hs = c, n_fired, 1 - hs
                if timed:
                    now = read_cycles()  # type: ignore[call-arg]
                    clock[kp, 5] += now - last
                    last = now
            if held >= 0:  # the range's last spikes
                route(held, spiked[kp, hs], n_held, b, p, phase, plane, flags, mask, bits, send,
                      bucket, bucket_at, filled, weigh, spike_weight, weighted, t)
            if timed:
                clock[kp, 5] += read_cycles() - last  # type: ignore[call-arg]
        if timed:  # the per-core loop's wall time, its threads' wait included
            now = read_cycles()  # type: ignore[call-arg]
            clock[0, 7] += now - began
            began = now
        # 6. deliver, into a slot other than this tick's (delay ≥ 1): each range's thread
        # sets the flags of its own cores only, so no two threads write one word
        for kp in prange(nb * parts):
            b, d = kp // parts, kp % parts
            words = ring[b]
            for s in range(parts):
                end = bucket_at[s, d] + filled[b, s, d]
                for n in range(bucket_at[s, d], end):
                    if n + AHEAD < end and bucket[b, n + AHEAD] >= 0:
                        prefetch_write(words, bucket[b, n + AHEAD] >> 6)  # type: ignore[call-arg]
                    goes = bucket[b, n]
                    if goes >= 0:
                        set_flag(words, goes)
                    else:  # output port −1 − goes
                        outputs[b, t, -1 - goes] += 1
        if timed:
            clock[0, 6] += read_cycles() - began  # type: ignore[call-arg]
