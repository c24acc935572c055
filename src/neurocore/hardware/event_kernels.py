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

__all__ = ["cycles", "get_num_threads", "run_ticks", "unsettled_at_rest"]

AHEAD = 16  # spikes delivered ahead of the one in hand whose flag word is prefetched


def _item_pointer(context, builder, sig, args):
    # the address of ary[idx] for a 1-D array ``ary``: the intrinsics' first two arguments
    aryty, idxty = sig.args[0], sig.args[1]
    ary = context.make_array(aryty)(context, builder, args[0])
    idx = context.cast(builder, args[1], idxty, types.intp)
    return cgutils.get_item_pointer(context, builder, aryty, ary, [idx])


def _bits(t) -> int:  # an integer type's width, else 0 (numba's stubs lack Integer.bitwidth)
    return t.bitwidth if isinstance(t, types.Integer) else 0  # type: ignore[attr-defined]


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
    ok = (
        _one_dim(v, vi) and isinstance(s, types.Array) and s.ndim == 1 and v.layout == "C"
        and s.layout == "C" and 0 < _bits(s.dtype) <= _bits(v.dtype)
        and all(isinstance(o, types.Integer) for o in offsets)
        and all(_bits(m) == 32 for m in masks)
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
def update32(typingctx, v, vi, leak, alpha, nbeta, negv, keep, add, ki, lo, hi):
    """Steps 2–5 of 32 neurons at once (``step``, one lane each): V = v[vi : vi + 32] with
    their constants leak[ki : ki + 32] … add[ki : ki + 32], computed in the integer type of
    ``lo`` and ``hi`` (the clamp; v and the constants are sign-extended to it: the caller
    picks a type at least as wide as both, as ``EventSimulator.lane_bits`` does). Stores the
    new V; returns a uint64 whose low 32 bits say which neurons fired (bit k: neuron vi + k)
    and whose bit 32 says whether any of them would spike or move with no input next tick
    (``moves``). On AVX-512 with int16 lanes, each operation is one 512-bit instruction."""
    consts = (leak, alpha, nbeta, negv, keep, add)

    ok = (
        _one_dim(v, vi) and v.layout == "C" and isinstance(ki, types.Integer) and lo == hi
        and all(isinstance(k, types.Array) and k.ndim == 1 and k.layout == "C"
                and k.dtype == leak.dtype for k in consts)
        and _bits(v.dtype) > 0 and _bits(leak.dtype) > 0 and _bits(lo) > 0
    )
    if not ok:
        return None

    def codegen(context, builder, sig, args):
        i32 = ir.IntType(32)
        lane = ir.VectorType(ir.IntType(sig.args[9].bitwidth), 32)

        def at(ary_ty, ary, idx, idx_ty):  # <32 x ary's type>* at ary[idx]
            a = context.make_array(ary_ty)(context, builder, ary)
            i = context.cast(builder, idx, idx_ty, types.intp)
            ptr = cgutils.get_item_pointer(context, builder, ary_ty, a, [i])
            own = ir.VectorType(ir.IntType(ary_ty.dtype.bitwidth), 32)
            return builder.bitcast(ptr, own.as_pointer()), ary_ty.dtype.bitwidth // 8

        def to(x, ty):  # the same integers as type ty (sign-extended or truncated)
            have, want = x.type.element.width, ty.element.width
            return x if have == want else (builder.sext if have < want else builder.trunc)(x, ty)

        def load(ary_ty, ary, idx, idx_ty):  # 32 values in the lane's type
            ptr, align = at(ary_ty, ary, idx, idx_ty)
            return to(builder.load(ptr, align=align), lane)

        def splat(x):
            one = builder.insert_element(ir.Constant(lane, ir.Undefined), x, i32(0))
            return builder.shuffle_vector(one, ir.Constant(lane, ir.Undefined),
                                          ir.Constant(ir.VectorType(i32, 32), [0] * 32))

        def select_lt(a, b, then, other):  # then where a < b, else other
            return builder.select(builder.icmp_signed("<", a, b), then, other)

        lo, hi = splat(args[9]), splat(args[10])

        def clamp(x):
            x = select_lt(x, lo, lo, x)
            return select_lt(hi, x, hi, x)

        vt, kt, kit = sig.args[0], sig.args[2], sig.args[8]
        v = load(vt, args[0], args[1], sig.args[1])
        lk, al, nb, ng, kp, ad = (load(kt, k, args[8], kit) for k in args[2:8])
        u = builder.sub(v, lk)
        fired = builder.icmp_signed(">=", u, al)
        after = builder.add(builder.and_(u, kp), ad)  # the reset: R, V − α or V
        below = select_lt(u, nb, ng, u)  # the negative threshold
        vj = clamp(builder.select(fired, after, below))
        ptr, align = at(vt, args[0], args[1], sig.args[1])
        builder.store(to(vj, ptr.type.pointee), ptr, align=align)
        u = builder.sub(vj, lk)  # moves: would a tick without input spike or move V?
        rest = clamp(select_lt(u, nb, ng, u))
        moving = builder.or_(builder.icmp_signed(">=", u, al), builder.icmp_signed("!=", rest, vj))
        i64 = ir.IntType(64)
        fired_bits = builder.zext(builder.bitcast(fired, i32), i64)
        any_moving = builder.icmp_unsigned("!=", builder.bitcast(moving, i32), i32(0))
        return builder.or_(fired_bits, builder.shl(builder.zext(any_moving, i64), i64(32)))

    return types.uint64(v, vi, leak, alpha, nbeta, negv, keep, add, ki, lo, hi), codegen


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


@njit(cache=True, inline="always")
def step(vj, lk, al, nb, ng, kp, ad, lo, hi, lane):
    # steps 2–5 of one neuron whose input is in V = vj, with its constants: leak, α, −β, the
    # value below −β, and the reset (V & keep) + add; lo and hi the clamp. Its new V, whether
    # it fired, and whether a next tick without input could spike or move V. ``lane`` is the
    # integer type it computes in (``update``); numba would widen each result to int64 unless
    # it is cast
    u = lane(lane(vj) - lk)
    f = u >= al
    after = lane(lane(u & kp) + ad)  # the reset: R, V − α or V
    below = ng if u < nb else u  # the negative threshold
    vj = min(max(after if f else below, lo), hi)
    return vj, f, moves(vj, lk, al, nb, ng, lo, hi, lane)


@njit(cache=True)
def update(vc, c, leak, alpha, nbeta, negv, keep, add, v_lo, v_hi, lane, out, targets):
    # steps 2–5 for the neurons of core c once their input is in vc (its membranes): 32 at a
    # time (update32), the last ones one by one (step). Lists the neurons that fired in out
    # and prefetches their spike targets (targets: send as one row); returns how many fired
    # and whether a next tick without input could spike or move V anywhere in the core.
    # ``lane`` is the integer type it computes in, the narrowest of np.int16, np.int32 and
    # np.int64 in which every intermediate value is exact (``EventSimulator.lane_bits``);
    # v_lo and v_hi are the clamp, within the lane. leak … add: the (C·N,) constants
    nn = vc.shape[0]
    lo, hi = lane(v_lo), lane(v_hi)
    n_fired = 0
    moving = np.uint64(0)
    for o in range(0, nn - 31, 32):
        got: np.uint64 = update32(vc, o, leak, alpha, nbeta, negv,  # type: ignore[call-arg]
                                  keep, add, c * nn + o, lo, hi)
        moving |= got >> np.uint64(32)
        fired = got & np.uint64(0xFFFFFFFF)
        while fired:  # neuron o + k fired where bit k is set
            j = o + trailing_zeros(fired)
            fired &= fired - np.uint64(1)
            out[n_fired] = j
            n_fired += 1
            prefetch(targets, c * nn + j)
    for j in range(nn - nn % 32, nn):
        at = c * nn + j
        vj, f, m = step(vc[j], lane(leak[at]), lane(alpha[at]), lane(nbeta[at]),
                        lane(negv[at]), lane(keep[at]), lane(add[at]), lo, hi, lane)
        vc[j] = vj
        moving |= np.uint64(m)
        if f:
            out[n_fired] = j
            n_fired += 1
            prefetch(targets, c * nn + j)  # type: ignore[call-arg]
    return n_fired, moving != 0


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
    n_lines = x.shape[2]
    blocks = -(-n_lines // 64)  # of 64 input lines
    rows = xbits.reshape(-1)  # for prefetching
    targets = send.reshape(-1)
    strengths = strength.reshape(nc, -1)  # a core's S_j[g] at g * nn + j
    # the per-neuron constants of the update as (C·N,) rows
    leak1, alpha1, nbeta1 = leak.reshape(-1), alpha.reshape(-1), nbeta.reshape(-1)
    negv1, keep1, add1 = negv.reshape(-1), keep.reshape(-1), add.reshape(-1)
    weigh = weighted.shape[1] > 0  # energy weights were given
    # the cycles of each phase (``event.PHASES``) when clock has rows: the input, per-core and
    # delivery loops as a whole in row 0, the per-core phases by each range's thread in its
    # own row
    timed = clock.shape[0] > 0
    pieces = max(1, min(16 * parts, blocks))  # of the input lines, per frame
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
    # which neurons fired, per thread: in one half the core in hand's, in the other those of
    # the core before it whose spikes wait to be routed
    spiked = np.empty((nb * parts, 2, nn), np.int64)
    for t in range(ticks):
        phase = t % slots
        began = read_cycles() if timed else 0  # type: ignore[call-arg]
        if t < ticks_in:  # 1. external inputs, in parallel over pieces of the input lines
            for kp in prange(nb * pieces):
                b, p = kp // pieces, kp % pieces
                words, xt = ring[b], x[b, t]
                for q in range(blocks * p // pieces, blocks * (p + 1) // pieces):
                    at = 64 * q  # 64 lines per vector compare, the last ones one by one
                    active = np.uint64(0)
                    if at + 64 <= n_lines:
                        active = nonzero_bits64(xt, at)  # type: ignore[call-arg]
                    else:
                        for line in range(at, n_lines):
                            if xt[line]:
                                active |= np.uint64(1) << np.uint64(line - at)
                    while active:  # line at + k is active where bit k is set
                        line = at + trailing_zeros(active)  # type: ignore[call-arg]
                        active &= active - np.uint64(1)
                        for m in range(line_ptr[line], line_ptr[line + 1]):
                            flag = phase * plane + line_flag[m]
                            bit = np.uint64(1) << np.uint64(flag & 63)
                            atomic_or(words, flag >> 6, bit)
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
                # add per 32 neurons, bit by bit for the last ones; the synaptic events are the
                # set bits of those rows
                vc, sc = v[b, c], strengths[c]  # sc: S_j[g] at g * nn + j
                n = n_events = 0
                while n + 4 <= n_active:  # four rows per load and store of V
                    i0, i1, i2, i3 = mine[n], mine[n + 1], mine[n + 2], mine[n + 3]
                    r0, r1, r2, r3 = xbits[c, i0], xbits[c, i1], xbits[c, i2], xbits[c, i3]
                    g0, g1 = axon_type[c, i0] * nn, axon_type[c, i1] * nn
                    g2, g3 = axon_type[c, i2] * nn, axon_type[c, i3] * nn
                    for q in range(whole):
                        o = 32 * q
                        masked_add32x4(vc, o, sc, g0 + o, g1 + o, g2 + o,  # type: ignore[call-arg]
                                       g3 + o, r0[q], r1[q], r2[q], r3[q])
                        n_events += (popcount(r0[q]) + popcount(r1[q])
                                     + popcount(r2[q]) + popcount(r3[q]))
                    n += 4
                for m in range(n, n_active):
                    i = mine[m]
                    row, g = xbits[c, i], axon_type[c, i] * nn
                    for q in range(whole):
                        masked_add32(vc, 32 * q, sc, g + 32 * q, row[q])  # type: ignore[call-arg]
                        n_events += popcount(row[q])
                for n in range(n_active if whole < nw else 0):  # neurons past whole words
                    i = mine[n]
                    word, g = xbits[c, i, whole], axon_type[c, i] * nn
                    n_events += popcount(word)  # type: ignore[call-arg]
                    for j in range(32 * whole, nn):
                        if (word >> np.uint32(j - 32 * whole)) & np.uint32(1):
                            vc[j] += sc[g + j]
                events[b, t, c] = n_events
                if timed:
                    now = read_cycles()  # type: ignore[call-arg]
                    clock[kp, 2] += now - last
                    last = now
                if not (n_active or unsettled[b, c]):  # settled and no input: nothing changes
                    if record:
                        for j in range(nn):
                            rec_v[b, t, c, j] = v[b, c, j]
                    if timed:
                        now = read_cycles()  # type: ignore[call-arg]
                        clock[kp, 3] += now - last
                        last = now
                    continue
                updates[b, c] += 1
                # 2–5, the fired neurons listed in one half of spiked, their targets fetched
                out = spiked[kp, 1 - hs]
                if lane_bits == 16:
                    n_fired, moving = update(vc, c, leak1, alpha1, nbeta1, negv1, keep1, add1,
                                             v_lo, v_hi, np.int16, out, targets)
                elif lane_bits == 32:
                    n_fired, moving = update(vc, c, leak1, alpha1, nbeta1, negv1, keep1, add1,
                                             v_lo, v_hi, np.int32, out, targets)
                else:
                    n_fired, moving = update(vc, c, leak1, alpha1, nbeta1, negv1, keep1, add1,
                                             v_lo, v_hi, np.int64, out, targets)
                unsettled[b, c] = moving
                if record:
                    for j in range(nn):
                        rec_v[b, t, c, j] = vc[j]
                    for n in range(n_fired):
                        rec_spk[b, t, c, out[n]] = True
                if timed:
                    now = read_cycles()  # type: ignore[call-arg]
                    clock[kp, 3] += now - last
                    last = now
                # 6. route the spikes of the core updated before this one, whose targets are in
                # by now (those of this core are routed after the next update)
                if held >= 0:
                    route(held, spiked[kp, hs], n_held, b, p, phase, plane, flags, mask, bits,
                          send, bucket, bucket_at, filled, weigh, spike_weight, weighted, t)
                held = -1
                core_spikes[b, t, c] = n_fired
                if n_fired:
                    held, n_held, hs = c, n_fired, 1 - hs
                if timed:
                    now = read_cycles()  # type: ignore[call-arg]
                    clock[kp, 4] += now - last
                    last = now
            if held >= 0:  # the range's last spikes
                route(held, spiked[kp, hs], n_held, b, p, phase, plane, flags, mask, bits, send,
                      bucket, bucket_at, filled, weigh, spike_weight, weighted, t)
            if timed:
                clock[kp, 4] += read_cycles() - last  # type: ignore[call-arg]
        if timed:  # the per-core loop's wall time, its threads' wait included
            now = read_cycles()  # type: ignore[call-arg]
            clock[0, 6] += now - began
            began = now
        # 6. deliver, into a slot other than this tick's (delay ≥ 1): each range's thread
        # sets the flags of its own cores only, so no two threads write one word
        for kp in prange(nb * parts):
            b, d = kp // parts, kp % parts
            words = ring[b]
            for s in range(parts):
                end = bucket_at[s, d] + filled[b, s, d]
                for n in range(bucket_at[s, d], end):
                    ahead = bucket[b, n + AHEAD] if n + AHEAD < end else -1
                    if ahead >= 0:
                        prefetch_write(words, ahead >> 6)  # type: ignore[call-arg]
                    goes = bucket[b, n]
                    if goes >= 0:
                        set_flag(words, goes)
                    else:  # output port −1 − goes
                        outputs[b, t, -1 - goes] += 1
        if timed:
            clock[0, 5] += read_cycles() - began  # type: ignore[call-arg]
