"""Memory bandwidth of this machine for the access patterns of the event engine (issue 4).

    python benchmarks/bandwidth.py                  # numba's threads: all cores
    NUMBA_NUM_THREADS=2 python benchmarks/bandwidth.py

Three kernels, each the minimum over ``--repeats`` runs after a warm-up, compiled with numba
(extra ``neurocore[fast]``) and run in parallel over numba's threads:

- stream read: the sum of an int32 array (4 MiB, 16 MiB and 256 MiB: inside L2, inside L3,
  and far beyond the 32 MiB L3 of the machine this was written on);
- stream read+write: every element of the same arrays incremented (bytes read plus written);
- row gather: the int32 sum of ``--rows`` random 256-byte int8 rows of a 256 MiB table, the way
  the event engine adds the weight rows of a full chip's active axons (26,000 rows ≈ the
  3.3 M synaptic events per tick of ``benchmarks/simulator.py chip`` at density 0.5).

numpy asks the kernel for transparent huge pages for arrays this large (``madvise``), so the
256 MiB table is mapped like the engine's own weight table.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from datetime import date

import numpy as np
from numba import get_num_threads, njit, prange


@njit(parallel=True, cache=True)
def stream_read(a: np.ndarray) -> int:
    s = 0
    for i in prange(a.size):
        s += a[i]
    return s


@njit(parallel=True, cache=True)
def stream_read_write(a: np.ndarray) -> None:
    for i in prange(a.size):
        a[i] += 1


@njit(parallel=True, cache=True)
def row_gather(table: np.ndarray, rows: np.ndarray, parts: int, out: np.ndarray) -> None:
    width = table.shape[1]
    for p in prange(parts):
        acc = np.zeros(width, np.int32)
        for k in range(p, rows.size, parts):
            r = rows[k]
            for j in range(width):
                acc[j] += table[r, j]
        out[p] = acc


def best_s(fn: Callable[[], object], repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=26_000)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    threads = get_num_threads()
    print(f"date {date.today()}; {platform.machine()}, {os.cpu_count()} CPUs, {threads} numba "
          f"threads")
    for mib in (4, 16, 256):
        a = np.ones(mib * 2**20 // 4, np.int32)
        r = best_s(lambda a=a: stream_read(a), args.repeats)
        rw = best_s(lambda a=a: stream_read_write(a), args.repeats)
        print(f"{mib:4d} MiB: stream read {mib * 2**20 / r / 1e9:6.1f} GB/s, read+write "
              f"{2 * mib * 2**20 / rw / 1e9:6.1f} GB/s")
    table = np.ones((2**20, 256), np.int8)  # 256 MiB
    out = np.zeros((threads, 256), np.int32)
    g = np.random.default_rng(args.seed)
    for _ in range(3):
        rows = g.integers(0, table.shape[0], args.rows).astype(np.int64)
        s = best_s(lambda rows=rows: row_gather(table, rows, threads, out), args.repeats)
        print(f"row gather: {args.rows} random 256-byte rows of a 256 MiB table in "
              f"{s * 1e3:.3f} ms ({args.rows * 256 / s / 1e9:.1f} GB/s)")


if __name__ == "__main__":
    main()
