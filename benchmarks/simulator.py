"""Simulator throughput on a full chip of random cores, beside a dense integer matmul.

    python benchmarks/simulator.py --cores 4096 --ticks 200

Builds a TrueNorth-sized program of random cores (crossbar density 0.5 ≈ 128 synapses per
neuron, strengths +1/+1/+1/−1, every neuron sent to a random axon of a random core with a random
delay 1–15) and a 20 Hz Poisson input on a quarter of the axons; the thresholds are set so that
neurons fire at about 20 Hz. It reports the simulator's ticks per second (batch 1) and, measured
in the same run, the time of one dense integer (C, N, A) × (C, A, 1) matmul — the arithmetic a
dense simulator cannot avoid each tick — as a ratio.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from neurocore.hardware.corespec import TRUENORTH, NegMode, ResetMode
from neurocore.hardware.program import Program
from neurocore.hardware.simulator import Simulator


def random_chip(cores: int, seed: int, threshold: int) -> Program:
    g = torch.Generator().manual_seed(seed)
    a, n = TRUENORTH.axons, TRUENORTH.neurons
    p = Program.blank(cores, num_inputs=cores * a // 4, num_outputs=0)
    strengths = torch.tensor([1, 1, 1, -1], dtype=torch.int16).expand(cores, n, 4).clone()
    line = torch.arange(cores * a // 4, dtype=torch.int32)
    return p.replace(
        crossbar=torch.rand((cores, a, n), generator=g) < 0.5,
        axon_types=torch.randint(0, 4, (cores, a), generator=g, dtype=torch.int8),
        strengths=strengths,
        threshold=torch.full((cores, n), threshold, dtype=torch.int32),
        leak=torch.zeros((cores, n), dtype=torch.int32),
        neg_threshold=torch.zeros((cores, n), dtype=torch.int32),
        reset_mode=torch.full((cores, n), int(ResetMode.ABSOLUTE), dtype=torch.uint8),
        neg_mode=torch.full((cores, n), int(NegMode.SATURATE), dtype=torch.uint8),
        dest_core=torch.randint(0, cores, (cores, n), generator=g, dtype=torch.int32),
        dest_axon=torch.randint(0, a, (cores, n), generator=g, dtype=torch.int32),
        delay=torch.randint(1, 16, (cores, n), generator=g, dtype=torch.uint8),
        input_line=line,
        input_core=(line // (a // 4)).to(torch.int32),
        input_axon=(line % (a // 4)).to(torch.int32),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cores", type=int, default=4096)
    ap.add_argument("--ticks", type=int, default=200)
    ap.add_argument("--threshold", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    program = random_chip(args.cores, args.seed, args.threshold)
    sim = Simulator(program)
    g = torch.Generator().manual_seed(args.seed + 1)
    x = torch.rand((1, args.ticks, program.num_inputs), generator=g) < 0.02  # 20 Hz at 1 kHz
    sim.run(x[:, :10], 10)  # warm-up
    t0 = time.perf_counter()
    res = sim.run(x, args.ticks)
    sim_s = time.perf_counter() - t0
    rate_hz = float(res.spike_count[0]) / (args.cores * TRUENORTH.neurons) / (args.ticks * 1e-3)

    w = program.effective_weights().transpose(1, 2).contiguous()  # (C, N, A) int32
    act = (torch.rand((args.cores, TRUENORTH.axons, 1), generator=g) < 0.05).to(torch.int32)
    torch.bmm(w, act)
    reps = 5
    t0 = time.perf_counter()
    for _ in range(reps):
        torch.bmm(w, act)
    int_s = (time.perf_counter() - t0) / reps
    wf, af = w.float(), act.float()
    t0 = time.perf_counter()
    for _ in range(reps):
        torch.bmm(wf, af)
    f32_s = (time.perf_counter() - t0) / reps
    tick_s = sim_s / args.ticks
    print(f"cores {args.cores}, ticks {args.ticks}, mean firing {rate_hz:.1f} Hz, "
          f"synaptic events/tick {float(res.synaptic_events[0]) / args.ticks:.0f}")
    print(f"simulator: {args.ticks / sim_s:.1f} ticks/s ({tick_s * 1e3:.2f} ms/tick; real time "
          f"needs 1000 ticks/s)")
    print(f"dense int32 bmm of the same shapes: {int_s * 1e3:.2f} ms "
          f"(simulator tick / int matmul = {tick_s / int_s:.2f}); float32 bmm {f32_s * 1e3:.2f} ms "
          f"(ratio {tick_s / f32_s:.2f})")


if __name__ == "__main__":
    main()
