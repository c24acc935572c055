"""Simulator throughput: a full chip of random cores, or a compiled program on a data set,
beside dense integer matmuls of the same shapes.

    python benchmarks/simulator.py chip --cores 4096 --ticks 1000 --dense-ticks 50
    python benchmarks/simulator.py program runs/bench-mnist-truenorth/program.safetensors \\
        --data mnist --data-dir ../shared/data --frames 2000

``chip`` builds a TrueNorth-sized program of random cores that fires at a steady ~20 Hz:
crossbar density 0.5 (≈ 128 synapses per neuron), balanced strengths +1/+1/−1/−1 over four
random axon types, a leak of −1 per tick (V climbs by one every tick) and a threshold drawn
from 30..70 per neuron with an absolute reset to 0, so each neuron fires about every 50 ticks
whatever the network does, the balanced synaptic input jittering its phase; a floor at −α.
Every neuron goes to a random axon of a random core with a random delay 1–15, and a quarter of
the axons also receive a 20 Hz Poisson input. The leak keeps every core busy every tick — the
event engine cannot skip one — so this is an honest load, not a quiet one.

Each engine's ticks per second (batch 1) is measured after a warm-up run, and, in the same run,
the time of one dense integer (C, N, A) × (C, A, 1) matmul — the arithmetic a dense simulator
cannot avoid each tick — as a ratio. ``program`` times a compiled network classifying test
images (all frames of a batch advance together) and the dense int32 matmuls of its shapes.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from neurocore.data import load_dataset
from neurocore.hardware.corespec import TRUENORTH, NegMode, ResetMode
from neurocore.hardware.deploy import HostSide
from neurocore.hardware.event import PHASES, EventSimulator
from neurocore.hardware.program import Program
from neurocore.hardware.simulator import SimResult, make_simulator


def random_chip(cores: int, seed: int) -> Program:
    """A steady ~20 Hz chip (module doc)."""
    g = torch.Generator().manual_seed(seed)
    a, n = TRUENORTH.axons, TRUENORTH.neurons
    p = Program.blank(cores, num_inputs=cores * a // 4, num_outputs=0)
    strengths = torch.tensor([1, 1, -1, -1], dtype=torch.int16).expand(cores, n, 4).clone()
    threshold = torch.randint(30, 71, (cores, n), generator=g, dtype=torch.int32)
    line = torch.arange(cores * a // 4, dtype=torch.int32)
    return p.replace(
        crossbar=torch.rand((cores, a, n), generator=g) < 0.5,
        axon_types=torch.randint(0, 4, (cores, a), generator=g, dtype=torch.int8),
        strengths=strengths,
        threshold=threshold,
        leak=torch.full((cores, n), -1, dtype=torch.int32),
        neg_threshold=threshold.clone(),
        reset_mode=torch.full((cores, n), int(ResetMode.ABSOLUTE), dtype=torch.uint8),
        neg_mode=torch.full((cores, n), int(NegMode.SATURATE), dtype=torch.uint8),
        dest_core=torch.randint(0, cores, (cores, n), generator=g, dtype=torch.int32),
        dest_axon=torch.randint(0, a, (cores, n), generator=g, dtype=torch.int32),
        delay=torch.randint(1, 16, (cores, n), generator=g, dtype=torch.uint8),
        input_line=line,
        input_core=(line // (a // 4)).to(torch.int32),
        input_axon=(line % (a // 4)).to(torch.int32),
    )


def best_of(fn: object, reps: int) -> float:
    """Shortest wall time of ``reps`` calls of ``fn()`` (seconds)."""
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return min(times)


def dense_matmul_s(program: Program, batch: int) -> float:
    """One dense int32 (C, N, A) × (C, A, batch) matmul: the per-tick floor of a dense engine."""
    w = program.effective_weights().transpose(1, 2).contiguous()  # (C, N, A) int32
    act = (torch.rand((program.num_cores, program.spec.axons, batch)) < 0.05).to(torch.int32)
    torch.bmm(w, act)
    return best_of(lambda: torch.bmm(w, act), 5)


def timed_run(program: Program, engine: str, x: torch.Tensor, ticks: int,
              phases: bool = False, repeats: int = 1) -> tuple[float, SimResult]:
    """The median wall time of ``repeats`` runs of ``ticks`` ticks (seconds), and the result."""
    sim = make_simulator(program, engine)
    sim.run(x[:, : min(ticks, 5)], min(ticks, 5))  # warm-up (and numba's compile or cache load)
    if phases and isinstance(sim, EventSimulator):
        sim.timing = True
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = sim.run(x[:, :ticks], ticks)
        times.append(time.perf_counter() - t0)
    if phases and isinstance(sim, EventSimulator):
        print_phases(sim, ticks * repeats)
    return statistics.median(times), res


def print_phases(sim: EventSimulator, ticks: int) -> None:
    """The event engine's own split of a tick (``EventSimulator.timing``), ms per tick."""
    sec = sim.phase_seconds()
    own = sum(sec[p] for p in ("scan", "integrate", "update", "route"))
    parts = [f"{p} {sec[p] / ticks * 1e3:.3f}" for p in PHASES if p != "cores"]
    print(f"phases, ms per tick (per-core phases: a thread's mean): {', '.join(parts)}; "
          f"waiting for the other thread {(sec['cores'] - own) / ticks * 1e3:.3f}")


def chip(args: argparse.Namespace) -> None:
    program = random_chip(args.cores, args.seed)
    g = torch.Generator().manual_seed(args.seed + 1)
    ticks = max(args.ticks, args.dense_ticks)
    x = torch.rand((1, ticks, program.num_inputs), generator=g) < 0.02  # 20 Hz at 1 kHz
    mm = dense_matmul_s(program, 1)
    print(f"dense int32 (C, N, A) x (C, A, 1) bmm: {mm * 1e3:.2f} ms")
    for engine, n in (("event", args.ticks), ("dense", args.dense_ticks)):
        if n == 0:
            continue
        s, res = timed_run(program, engine, x, n, args.phases,
                           args.repeats if engine == "event" else 1)
        median = f"; median of {args.repeats} runs" if engine == "event" and args.repeats > 1 \
            else ""
        hz = float(res.spike_count[0]) / (args.cores * TRUENORTH.neurons) / (n * 1e-3)
        tick = s / n
        print(f"{engine:5s}: {n} ticks, mean firing {hz:.1f} Hz, synaptic events/tick "
              f"{float(res.synaptic_events[0]) / n:.0f}: {n / s:.1f} ticks/s "
              f"({tick * 1e3:.2f} ms/tick, {tick / mm:.3g}x the dense matmul; "
              f"real time needs 1000 ticks/s{median})")


def program_mode(args: argparse.Namespace) -> None:
    program = Program.load(args.path)
    host = HostSide.of(program)
    data = load_dataset(args.data, args.data_dir)
    xs = [x for x, _ in data.test.batches(args.batch_size, data.info.max_value)]
    frames = torch.cat(xs)[: args.frames]
    inputs = host.encode(frames)
    ticks = host.latency_ticks
    batches = -(-len(frames) // args.batch_size)
    mm = dense_matmul_s(program, args.batch_size) * ticks * batches
    print(f"{program.num_cores} cores, {ticks} ticks per frame, {len(frames)} frames in batches "
          f"of {args.batch_size}; dense int32 matmuls of the same shapes: {mm:.2f} s")
    for engine in args.engines:
        sim = make_simulator(program, engine)
        sim.run(inputs[:2], ticks)  # warm-up
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            for lo in range(0, len(frames), args.batch_size):
                sim.run(inputs[lo : lo + args.batch_size], ticks)
            times.append(time.perf_counter() - t0)
        s = statistics.median(times)
        print(f"{engine:5s}: {len(frames) / s:.0f} frames/s ({s:.3f} s, {s / mm:.2f}x the dense "
              f"matmuls{f'; median of {args.repeats} runs' if args.repeats > 1 else ''})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    cp = sub.add_parser("chip", help="a full chip of random cores at ~20 Hz")
    cp.add_argument("--cores", type=int, default=4096)
    cp.add_argument("--ticks", type=int, default=1000, help="ticks for the event engine")
    cp.add_argument("--dense-ticks", type=int, default=50, help="ticks for the dense engine")
    cp.add_argument("--seed", type=int, default=0)
    cp.add_argument("--repeats", type=int, default=1,
                    help="run the event engine's ticks this many times and give the median")
    cp.add_argument("--phases", action="store_true",
                    help="also time the event engine's parts of a tick (x86-64 only)")
    pp = sub.add_parser("program", help="a compiled program classifying test images")
    pp.add_argument("path", type=Path)
    pp.add_argument("--data", required=True)
    pp.add_argument("--data-dir", default=None)
    pp.add_argument("--frames", type=int, default=2000)
    pp.add_argument("--batch-size", type=int, default=500)
    pp.add_argument("--engines", nargs="+", default=["event", "dense"])
    pp.add_argument("--repeats", type=int, default=1,
                    help="run the frames this many times and give the median")
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} torch threads")
    chip(args) if args.mode == "chip" else program_mode(args)


if __name__ == "__main__":
    main()
