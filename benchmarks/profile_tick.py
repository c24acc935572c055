"""Where the event engine's tick goes, by sampling: the machine code of the compiled kernel
annotated with how often each instruction was the one running (issue 4).

    python benchmarks/profile_tick.py --cores 4096 --ticks 2000 --out runs/profile

Builds the random ~20 Hz chip of ``benchmarks/simulator.py``, runs it once to compile, then
runs ``--ticks`` ticks while ``perf record -e cpu-clock`` samples this process (a software
clock: it works in VMs without hardware counters). numba's code has no symbols, so the
executable memory mappings that hold the samples are dumped from this process and
disassembled with ``objdump``. Writes ``OUT/annotated.asm`` (samples, address, instruction)
and prints the sampled share of the hottest 256-byte blocks and instructions. A timer sample
lands on the instruction *after* the one that stalled (usually a load). Needs ``perf`` (with
``kernel.perf_event_paranoid`` ≤ 2) and ``objdump``; x86-64.
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from simulator import random_chip  # noqa: E402

from neurocore.hardware.event import EventSimulator  # noqa: E402


def sample(sim: EventSimulator, x: torch.Tensor, ticks: int, data: Path) -> float:
    """Run ``ticks`` ticks under ``perf record``; ticks per second while sampled."""
    perf = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "20000", "-p",
                             str(os.getpid()), "-o", str(data)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # perf attaches
    t0 = time.perf_counter()
    sim.run(x, ticks)
    rate = ticks / (time.perf_counter() - t0)
    perf.send_signal(signal.SIGINT)
    perf.wait()
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cores", type=int, default=4096)
    ap.add_argument("--ticks", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    program = random_chip(args.cores, args.seed)
    sim = EventSimulator(program)
    g = torch.Generator().manual_seed(args.seed + 1)
    x = torch.rand((1, args.ticks, program.num_inputs), generator=g) < 0.02
    sim.run(x[:, :5], 5)  # compile or load the kernels
    data = args.out / "perf.data"
    print(f"{sample(sim, x, args.ticks, data):.1f} ticks/s while sampled")
    lines = subprocess.run(["perf", "script", "-i", str(data), "-F", "ip,sym"],
                           capture_output=True, text=True, check=True).stdout.splitlines()
    named: collections.Counter[str] = collections.Counter()
    ips: collections.Counter[int] = collections.Counter()
    for line in lines:
        parts = line.split()
        if len(parts) > 1 and parts[1] != "[unknown]":
            named[parts[1]] += 1
        elif parts:
            ips[int(parts[0], 16)] += 1
    total = sum(named.values()) + sum(ips.values())
    print(f"{total} samples; without a symbol (JIT code) {sum(ips.values())}; named, top 5: "
          + ", ".join(f"{k} {n}" for k, n in named.most_common(5)))
    asm = []
    for entry in Path(f"/proc/{os.getpid()}/maps").read_text().splitlines():
        span, perms = entry.split()[:2]
        lo, hi = (int(a, 16) for a in span.split("-"))
        if "x" not in perms or not any(lo <= ip < hi for ip in ips):
            continue
        code = args.out / f"code_{lo:x}.bin"
        code.write_bytes(ctypes.string_at(lo, hi - lo))
        asm += subprocess.run(["objdump", "-D", "-b", "binary", "-mi386:x86-64",
                               f"--adjust-vma={lo:#x}", str(code)],
                              capture_output=True, text=True, check=True).stdout.splitlines()
    annotated, blocks = [], collections.Counter()
    for line in asm:
        m = re.match(r"\s*([0-9a-f]+):", line)
        if m:
            at = int(m.group(1), 16)
            annotated.append((ips.get(at, 0), line))
            blocks[at >> 8] += ips.get(at, 0)
    (args.out / "annotated.asm").write_text("\n".join(f"{n:7d} {ln}" for n, ln in annotated))
    print("hottest 256-byte blocks of code:")
    for block, n in blocks.most_common(args.top):
        print(f"  {block << 8:#x}  {100 * n / total:5.1f} %")
    print("hottest instructions (a sample lands just after the one that stalled):")
    for n, line in sorted(annotated, key=lambda p: -p[0])[: args.top]:
        print(f"  {100 * n / total:5.1f} % {line.strip()}")


if __name__ == "__main__":
    main()
