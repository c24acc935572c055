"""Speed of BlockCirculantLinear against nn.Linear, forward and forward+backward, on pinned threads.

    python benchmarks/circulant.py                       # the full table, 4096 × 4096, 2 threads
    python benchmarks/circulant.py --blocks 256 --batches 64       # the headline only
    python benchmarks/circulant.py --rounds 5    # on a busy machine: min over five passes

For every batch size, nn.Linear(features, features) is timed, and beside it
BlockCirculantLinear(features, features, block) for every block size. "forward" is inference:
eval mode under torch.no_grad() (the weight spectra are cached). "f+b" is a training step without
the optimizer: train mode, an input that requires grad, ``y.backward(g)`` with a fixed random g,
the parameter and input gradients reset to None before each run. Each figure is the minimum over
all runs: at least ``--repeats`` runs and ``--seconds`` of runs after two warm-up runs, in each
of ``--rounds`` passes through all cases (the machine is shared; the minimum is the least
disturbed run). "MAC ratio" is dense MACs / frequency-domain real MACs, ≈ block/2: the
arithmetic bound on the speed-up. Then the crossover: per batch and mode, the smallest block size
from which every larger block is faster than dense; last the headline case, beside two plain
formulations that let autograd differentiate through torch.fft (einsum; one complex bmm), and
the minor page faults per training step of dense and of the headline layer: the dense step's
time includes first touching a fresh weight gradient, which glibc's default settings map anew
each step (docs/circulant.md, "Why the dense step moves").
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from datetime import date

import torch
from torch import nn

from neurocore.layers import BlockCirculantLinear


def best_ms(fn: Callable[[], object], repeats: int, seconds: float) -> float:
    """Minimum time of ``fn`` in ms over at least ``repeats`` runs and ``seconds`` (≤ 1000 runs)."""
    for _ in range(2):
        fn()
    best, runs, start = float("inf"), 0, time.perf_counter()
    while runs < repeats or (time.perf_counter() - start < seconds and runs < 1000):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        runs += 1
    return best * 1e3


def forward(m: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    def run() -> object:
        with torch.no_grad():
            return m(x)

    return run


def forward_backward(m: nn.Module, x: torch.Tensor, g: torch.Tensor) -> Callable[[], object]:
    def run() -> object:
        m.zero_grad(set_to_none=True)
        x.grad = None
        m(x).backward(g)
        return None

    return run


class EinsumCirculant(nn.Module):
    """The plain formulation, for comparison: autograd through rfft, einsum, irfft."""

    def __init__(self, blocks: torch.Tensor, batched_gemm: bool) -> None:
        super().__init__()
        self.blocks = nn.Parameter(blocks.detach().clone())
        self.batched_gemm = batched_gemm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows, b = x.shape[0], self.blocks.shape[-1]
        spec_w = torch.fft.rfft(self.blocks, dim=-1)  # (q_out, q_in, F)
        if self.batched_gemm:  # frequency as the batch dimension of one complex bmm
            spec_x = torch.fft.rfft(x.reshape(rows, -1, b).permute(2, 0, 1), dim=0)  # (F, R, q_in)
            spec_y = torch.bmm(spec_x, spec_w.permute(2, 1, 0)).permute(1, 2, 0)  # (R, q_out, F)
        else:
            spec_x = torch.fft.rfft(x.reshape(rows, -1, b), dim=-1)  # (R, q_in, F)
            spec_y = torch.einsum("rjf,ijf->rif", spec_x, spec_w)
        return torch.fft.irfft(spec_y, n=b, dim=-1).reshape(rows, -1)


def faults_per_run(fn: Callable[[], object], runs: int = 10) -> float:
    """Minor page faults per call of ``fn`` (after one warm-up call), from getrusage."""
    fn()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(runs):
        fn()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / runs


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def time_layer(layer: nn.Module, x: torch.Tensor, g: torch.Tensor, repeats: int,
               seconds: float) -> tuple[float, float]:
    """(forward ms, fwd+bwd ms) of ``layer``."""
    layer.eval()
    fwd = best_ms(forward(layer, x), repeats, seconds)
    layer.train()
    fb = best_ms(forward_backward(layer, x, g), repeats, seconds)
    return fwd, fb


def crossover(blocks: list[int], speedups: list[float]) -> str:
    """The smallest block from which every larger block beats dense, or 'none'."""
    start = None
    for b, s in zip(blocks, speedups, strict=True):
        if s > 1.0:
            start = b if start is None else start
        else:
            start = None
    return "none" if start is None else str(start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--features", type=int, default=4096)
    ap.add_argument("--blocks", default="4,8,16,32,64,128,256,512")
    ap.add_argument("--batches", default="1,32,256")
    ap.add_argument("--headline", default="256,64", help="block,batch of the headline case")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10, help="at least this many runs per figure")
    ap.add_argument("--seconds", type=float, default=1.0, help="and at least this long")
    ap.add_argument("--rounds", type=int, default=1, help="time everything this many times")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    n = args.features
    blocks = [int(b) for b in args.blocks.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    head_block, head_batch = (int(v) for v in args.headline.split(","))
    cases = {batch: list(blocks) for batch in batches}  # batch -> block sizes timed
    cases.setdefault(head_batch, [])
    if head_block not in cases[head_batch]:
        cases[head_batch].append(head_block)

    print(f"date {date.today()}; {cpu_model()}, {os.cpu_count()} CPUs, {platform.platform()}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, {n}×{n}; "
          f"each figure: min over {args.rounds} round(s) of ≥ {args.repeats} runs and "
          f"≥ {args.seconds:g} s; load average at start {os.getloadavg()[0]:.2f}")
    dense = nn.Linear(n, n)
    layers = {b: BlockCirculantLinear(n, n, b) for bs in cases.values() for b in bs}
    plain = {name: EinsumCirculant(layers[head_block].blocks, batched)
             for name, batched in (("einsum + autograd", False), ("complex bmm + autograd", True))}
    best: dict[tuple[str, int], tuple[float, float]] = {}  # (layer, batch) -> (fwd, f+b) ms

    def measure(name: str, layer: nn.Module, x: torch.Tensor, g: torch.Tensor) -> None:
        fwd, fb = time_layer(layer, x, g, args.repeats, args.seconds)
        old = best.get((name, x.shape[0]), (float("inf"), float("inf")))
        best[(name, x.shape[0])] = (min(old[0], fwd), min(old[1], fb))

    for r in range(args.rounds):
        for batch, batch_blocks in cases.items():
            x = torch.randn(batch, n, requires_grad=True)
            g = torch.randn(batch, n)
            measure("dense", dense, x, g)
            for b in batch_blocks:
                measure(str(b), layers[b], x, g)
            if batch == head_batch:
                for name, layer in plain.items():
                    measure(name, layer, x, g)
        print(f"round {r + 1}/{args.rounds} done, load average {os.getloadavg()[0]:.2f}",
              file=sys.stderr, flush=True)

    print()
    print("| block | batch | dense fwd ms | circ fwd ms | fwd × | dense f+b ms | circ f+b ms "
          "| f+b × | MAC ratio |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for batch in batches:
        d_fwd, d_fb = best[("dense", batch)]
        for b in blocks:
            c_fwd, c_fb = best[(str(b), batch)]
            mac_ratio = n * n / (4 * (n // b) ** 2 * (b // 2 + 1))
            print(f"| {b} | {batch} | {d_fwd:.2f} | {c_fwd:.3f} | {d_fwd / c_fwd:.1f} | "
                  f"{d_fb:.2f} | {c_fb:.3f} | {d_fb / c_fb:.1f} | {mac_ratio:.1f} |")
    print()
    for batch in batches:
        d_fwd, d_fb = best[("dense", batch)]
        for mode, i in (("fwd", 0), ("f+b", 1)):
            dense_ms = (d_fwd, d_fb)[i]
            speedups = [dense_ms / best[(str(b), batch)][i] for b in blocks]
            print(f"crossover batch {batch} {mode}: circulant faster from block "
                  f"{crossover(blocks, speedups)}")
    d_fwd, d_fb = best[("dense", head_batch)]
    c_fwd, c_fb = best[(str(head_block), head_batch)]
    print(f"headline {n}×{n}, block {head_block}, batch {head_batch}: forward {d_fwd:.2f} ms → "
          f"{c_fwd:.3f} ms ({d_fwd / c_fwd:.1f}×); forward+backward {d_fb:.2f} ms → "
          f"{c_fb:.3f} ms ({d_fb / c_fb:.1f}×; target ≥ 40×)")
    x, g = torch.randn(head_batch, n, requires_grad=True), torch.randn(head_batch, n)
    dense.train()
    layers[head_block].train()
    print(f"  minor page faults per forward+backward: dense "
          f"{faults_per_run(forward_backward(dense, x, g)):.0f}, circulant "
          f"{faults_per_run(forward_backward(layers[head_block], x, g)):.0f} (each step allocates "
          f"fresh gradients; the dense one is {n * n * 4 / 2**20:.0f} MiB: docs/circulant.md)")
    for name in plain:
        a_fb = best[(name, head_batch)][1]
        print(f"  same case, {name} (no custom backward): forward+backward {a_fb:.3f} ms "
              f"({d_fb / a_fb:.1f}×)")
    print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
