"""Run recipes end to end and print one Markdown row per run for docs/benchmarks.md.

    python benchmarks/recipes.py recipes/mnist-whetstone-dense.yaml --data-dir ../shared/data

Each run goes through `neurocore.pipeline.run_recipe` exactly as `neurocore run` does; the row
gives the measured test accuracy (as trained and fully binary where the recipe is binary), the
training wall time and the machine. Run folders land in runs/bench-<recipe name>.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
from pathlib import Path

import torch

from neurocore.config import load_recipe
from neurocore.pipeline import run_recipe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipes", nargs="+", type=Path)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args()
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, " \
              f"{torch.get_num_threads()} threads"
    print(f"date {dt.date.today()}, machine: {machine}")
    print("| recipe | test acc (as trained) | test acc (fully binary) | before binarization "
          "| fold mismatches | epochs | wall s |")
    print("|---|---|---|---|---|---|---|")
    for path in args.recipes:
        recipe = load_recipe(path, args.overrides)
        report = run_recipe(recipe, Path("runs") / f"bench-{recipe.name}", data_dir=args.data_dir,
                            overwrite=True, progress=False)
        data = report.to_json()
        binary = data.get("binary", {})
        print(
            f"| {recipe.name} | {data['test_accuracy']:.4f} "
            f"| {data.get('test_accuracy_binary', float('nan')):.4f} "
            f"| {binary.get('test_accuracy_before_binarization') or float('nan'):.4f} "
            f"| {binary.get('fold', {}).get('mismatches', '—')} "
            f"| {len(data['training']['history'])} | {data['wall_seconds']:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
