"""Block-circulant networks on MNIST: parameters and accuracy against their dense twins.

    python benchmarks/circulant_mnist.py --data-dir ../shared/data
    python benchmarks/circulant_mnist.py --data-dir ../shared/data --pairs lenet \
        --set data.shift=1 --set train.epochs=40 --set train.optimizer.lr=0.003

For each pair (dense recipe, block-circulant recipe) it trains the dense twin, trains the
block-circulant recipe from scratch, converts the dense run with `neurocore convert`
(`neurocore.convert.convert_run`, the recipe's block size) and fine-tunes it with the same
training section, and converts it with ADMM first: the dense run is fine-tuned for
`--admm-epochs` (default: half the recipe's epochs) with an `admm` section (block size as above,
the section's default ρ schedule; neurocore.training.admm), then converted and fine-tuned for the
remaining epochs, so both converted nets train as many epochs after the dense twin as the one
from scratch. Every run goes through `neurocore.pipeline.run_recipe` as `neurocore run` does;
`--set` overrides apply to all of them. One Markdown row per run: test accuracy, its loss
against the dense twin, and the parameters (weights and biases) of the layers that are
block-circulant, dense against structured. Run folders land in runs/bench-circ-<name>
(`--runs DIR` for another folder, e.g. to run two seeds side by side).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
from pathlib import Path

import torch
from torch import nn

from neurocore.config import load_recipe
from neurocore.convert import convert_run
from neurocore.layers import BlockCirculantConv2d, BlockCirculantLinear
from neurocore.pipeline import model_for_inspection, run_recipe
from neurocore.training.checkpoint import read_history

PAIRS = {
    "lenet": ("recipes/mnist-lenet.yaml", "recipes/mnist-lenet-circulant.yaml"),
    "conv": ("recipes/mnist-conv-fc.yaml", "recipes/mnist-conv-circulant.yaml"),
    "lenet-bn": ("recipes/mnist-lenet-bn.yaml", "recipes/mnist-lenet-bn-circulant.yaml"),
}
STRUCTURED = (BlockCirculantLinear, BlockCirculantConv2d)


def _params(model: nn.Module, names: list[str]) -> int:
    return sum(p.numel() for n in names for p in getattr(model, n).parameters())


def _run(recipe_path: Path, out: Path, overrides: list[str], data_dir: str | None) -> float:
    recipe = load_recipe(recipe_path, overrides)
    report = run_recipe(recipe, out, data_dir=data_dir, overwrite=True, progress=False)
    return float(report.to_json()["wall_seconds"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", nargs="+", choices=sorted(PAIRS), default=sorted(PAIRS))
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--admm-epochs", type=int, default=None)
    ap.add_argument("--runs", type=Path, default=Path("runs"), help="where the run folders go")
    args = ap.parse_args()
    print(f"date {dt.date.today()}; {platform.machine()}, {os.cpu_count()} CPUs, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads; --set {args.overrides}")
    print("| run | test acc | loss vs dense (points) | params in those layers, dense → "
          "structured | × fewer | wall s |")
    print("|---|---|---|---|---|---|")
    for pair in args.pairs:
        dense_path, circ_path = (Path(p) for p in PAIRS[pair])
        entries = [s.model_dump() for s in load_recipe(circ_path).model.layers]
        block_size = next(int(e["block_size"]) for e in entries if "block_size" in e)
        runs = {}
        dense_dir = args.runs / f"bench-circ-{pair}-dense"
        wall = _run(dense_path, dense_dir, args.overrides, args.data_dir)
        runs["dense"] = (dense_dir, wall)
        scratch_dir = args.runs / f"bench-circ-{pair}-scratch"
        runs["scratch"] = (scratch_dir, _run(circ_path, scratch_dir, args.overrides,
                                             args.data_dir))
        conv_dir = args.runs / f"bench-circ-{pair}-converted"
        conv = convert_run(dense_dir, "block-circulant", block_size, conv_dir,
                           overrides=args.overrides, data_dir=args.data_dir, overwrite=True,
                           evaluate_test=True)
        runs["converted"] = (conv_dir, _run(conv.recipe_path, conv_dir, [], args.data_dir))
        epochs = load_recipe(dense_path, args.overrides).train.epochs
        admm_epochs = epochs // 2 if args.admm_epochs is None else args.admm_epochs
        admm_dir = args.runs / f"bench-circ-{pair}-admm"
        admm_wall = _run(dense_path, admm_dir, [
            *args.overrides, f"model.init={(dense_dir / 'model.safetensors').resolve()}",
            f"admm={{block_size: {block_size}}}", f"train.epochs={admm_epochs}",
        ], args.data_dir)
        admm_conv_dir = args.runs / f"bench-circ-{pair}-admm-converted"
        admm_conv = convert_run(admm_dir, "block-circulant", block_size, admm_conv_dir,
                                overrides=[*args.overrides, f"train.epochs={epochs - admm_epochs}"],
                                data_dir=args.data_dir, overwrite=True, evaluate_test=True)
        runs["admm"] = (admm_conv_dir, admm_wall + _run(admm_conv.recipe_path, admm_conv_dir, [],
                                                        args.data_dir))
        _, dense_model, _ = model_for_inspection(dense_dir, [], args.data_dir)
        dense_acc = None
        for variant, (run_dir, wall) in runs.items():
            recipe, model, _ = model_for_inspection(run_dir, [], args.data_dir)
            acc = float(json.loads((run_dir / "report.json").read_text())["test_accuracy"])
            if variant == "dense":
                dense_acc = acc
                print(f"| {recipe.name} (dense twin) | {acc:.4f} | — | — | — | {wall:.0f} |",
                      flush=True)
                continue
            names = [n for n, m in model.named_children() if isinstance(m, STRUCTURED)]
            before, after = _params(dense_model, names), _params(model, names)
            assert dense_acc is not None
            if variant == "scratch":
                how = "from scratch"
            elif variant == "converted":
                how = (f"converted (right after projection {conv.test_accuracy_after:.4f}), "
                       "fine-tuned")
            else:
                residual = read_history(admm_dir)[-1]["admm_residual"]
                how = (f"ADMM {admm_epochs} epochs (residual "
                       f"{', '.join(f'{k} {v:.3f}' for k, v in residual.items())}), converted "
                       f"(right after projection {admm_conv.test_accuracy_after:.4f}), "
                       f"fine-tuned {epochs - admm_epochs} epochs")
            print(f"| {recipe.name}, {how} | {acc:.4f} | {100 * (dense_acc - acc):+.2f} | "
                  f"{before:,} → {after:,} ({', '.join(names)}) | {before / after:.1f} | "
                  f"{wall:.0f} |", flush=True)


if __name__ == "__main__":
    main()
