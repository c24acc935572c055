"""The ``neurocore`` command. It only parses arguments and calls library functions.

A user mistake (a bad recipe key, a missing data file, a run folder in the way) prints one line
``error: ...`` naming what is wrong and exits with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console

from neurocore import __version__
from neurocore.errors import NeurocoreError


def _add_recipe_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a recipe value, e.g. --set train.epochs=5 (repeatable)",
    )
    p.add_argument(
        "--data-dir", default=None,
        help="where data sets live (else $NEUROCORE_DATA, else ./data/<name>)",
    )


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="neurocore", description=__doc__.splitlines()[0])
    ap.add_argument("--version", action="version", version=f"neurocore {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train, evaluate and report a recipe")
    run.add_argument("recipe", type=Path)
    _add_recipe_options(run)
    run.add_argument("--out", type=Path, default=None, help="run folder (default runs/<name>)")
    run.add_argument("--resume", action="store_true", help="continue the run in --out")
    run.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    run.add_argument("--quiet", action="store_true", help="no progress bar")

    ins = sub.add_parser("inspect", help="parameter and per-layer cost tables")
    ins.add_argument("target", type=Path, help="a recipe file or a run folder")
    _add_recipe_options(ins)
    ins.add_argument("--json", action="store_true", help="print JSON instead of tables")
    comp = sub.add_parser("compile", help="compile a trained binary run onto cores")
    comp.add_argument("run_dir", type=Path)
    comp.add_argument("--out", type=Path, default=None,
                      help="program file (default RUN_DIR/program.safetensors)")
    comp.add_argument("--strategy", default=None,
                      help="compiler strategy, duplicate-axons or shared-types (default: the "
                           "recipe's hardware.strategy)")

    conv = sub.add_parser("convert", help="make a trained run's dense layers block-circulant, "
                          "ready to fine-tune")
    conv.add_argument("run_dir", type=Path)
    conv.add_argument("--to", required=True, metavar="TARGET",
                      help="what to convert to: block-circulant")
    conv.add_argument("--block-size", type=int, required=True)
    conv.add_argument("--layers", default=None,
                      help="comma-separated layer names (default: every linear and conv2d layer "
                           "whose input and output sizes reach the block size)")
    conv.add_argument("--out", type=Path, default=None,
                      help="folder for recipe.yaml and converted.safetensors "
                           "(default RUN_DIR-bc<B>)")
    conv.add_argument("--overwrite", action="store_true", help="replace files in --out")
    conv.add_argument("--evaluate", action="store_true",
                      help="test accuracy before and right after the projection")
    conv.add_argument("--calibrate", type=int, default=1024, metavar="N",
                      help="training images for the bias correction (0: none; default 1024)")
    _add_recipe_options(conv)

    simp = sub.add_parser("simulate", help="run a compiled program on a data set's test images")
    simp.add_argument("program", type=Path)
    simp.add_argument("--data", required=True, help="data set: digits, mnist, cifar10, idx:<dir>")
    simp.add_argument("--data-dir", default=None)
    simp.add_argument("--frames", type=int, default=None, help="only the first N test images")
    simp.add_argument("--run", type=Path, default=None,
                      help="the run folder the program came from: count hardware/model mismatches")
    simp.add_argument("--engine", choices=("auto", "event", "dense"), default="auto",
                      help="event-driven (needs numba), dense (torch), or auto (event if it can)")
    simp.add_argument("--json", action="store_true")

    ens = sub.add_parser("ensemble", help="compile finished binary runs side by side into one "
                         "program whose members vote; simulate and compare with the models")
    ens.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR")
    ens.add_argument("--out", type=Path, required=True,
                     help="folder for program.safetensors, report.md and report.json")
    ens.add_argument("--data-dir", default=None)
    ens.add_argument("--frames", type=int, default=None, help="only the first N test images")
    ens.add_argument("--strategy", default=None,
                     help="compiler strategy for every member (default: each recipe's)")
    ens.add_argument("--overwrite", action="store_true", help="replace the files in --out")
    return ap


def _compile(args: argparse.Namespace, console: Console) -> None:
    from rich.table import Table

    from neurocore.pipeline import compile_run

    path, layers = compile_run(args.run_dir, args.out, args.strategy)
    columns = {"layer": "layer", "kind": "kind", "mapping": "mapping", "cores": "cores",
               "neurons": "neurons", "duplicates": "dupl.", "axons_used": "axons"}
    table = Table(title=f"program: {path}")
    for key, header in columns.items():
        table.add_column(header, no_wrap=key in ("layer", "kind", "mapping"))
    for row in layers:  # the mapping without its fallback reason, printed below
        table.add_row(*(str(row[k]).split(" (")[0] for k in columns))
    console.print(table)
    for row in layers:
        if str(row["mapping"]) != str(row["mapping"]).split(" (")[0]:
            console.print(f"{row['layer']}: {row['mapping']}", markup=False)
    console.print(f"cores: {sum(int(r['cores']) for r in layers)}", markup=False)


def _convert(args: argparse.Namespace, console: Console) -> None:
    from rich.table import Table

    from neurocore.convert import convert_run

    layers = [n.strip() for n in args.layers.split(",") if n.strip()] if args.layers else None
    conv = convert_run(args.run_dir, args.to, args.block_size, args.out, layers, args.overrides,
                       args.data_dir, args.overwrite, args.evaluate, args.calibrate)
    table = Table(title=f"converted to block-circulant: {conv.weights_path}")
    for header in ("layer", "dense kind", "block", "params", "after", "×", "rel. residual",
                   "bias shift"):
        table.add_column(header)
    for r in conv.layers:
        shift = r["bias_shift"]
        table.add_row(r["layer"], r["from"], str(r["block_size"]),
                      str(r["params_before"]), str(r["params_after"]),
                      f"{r['params_before'] / r['params_after']:.1f}",
                      f"{r['relative_residual']:.3f}", "—" if shift is None else f"{shift:.4f}")
    console.print(table)
    for name, why in conv.skipped.items():
        console.print(f"{name}: stays dense ({why})", markup=False)
    console.print(f"converted layers: {conv.params_before} -> {conv.params_after} parameters "
                  f"({conv.params_before / conv.params_after:.1f}x fewer)", markup=False)
    if conv.test_accuracy_before is not None:
        console.print(f"test accuracy: {conv.test_accuracy_before:.4f} before, "
                      f"{conv.test_accuracy_after:.4f} right after the projection", markup=False)
    console.print(f"fine-tune with: neurocore run {conv.recipe_path}", markup=False)


def _simulate(args: argparse.Namespace, console: Console) -> None:
    from neurocore.pipeline import simulate_program

    result = simulate_program(args.program, args.data, args.data_dir, args.frames, args.run,
                              args.engine)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for key in ("frames", "cores", "test_accuracy", "hardware_accuracy", "model_accuracy",
                "mismatches", "spikes_per_frame", "synaptic_events_per_frame",
                "energy_uj_per_frame"):
        if key in result:
            console.print(f"{key}: {result[key]}", markup=False)


def _ensemble(args: argparse.Namespace, console: Console) -> None:
    from neurocore.pipeline import ensemble_runs

    report = ensemble_runs(args.run_dirs, args.out, data_dir=args.data_dir, frames=args.frames,
                           strategy=args.strategy, overwrite=args.overwrite)
    print(report.to_markdown())
    print(f"ensemble folder: {args.out}")


def _run(args: argparse.Namespace, console: Console) -> None:
    from neurocore.config import load_recipe
    from neurocore.pipeline import run_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    out = args.out if args.out is not None else Path("runs") / recipe.name
    report = run_recipe(
        recipe, out, data_dir=args.data_dir, resume=args.resume, overwrite=args.overwrite,
        progress=not args.quiet,
    )
    print(report.to_markdown())
    print(f"run folder: {out}")


def _inspect(args: argparse.Namespace, console: Console) -> None:
    from neurocore.analysis.inspect import render_tables
    from neurocore.pipeline import inspect_target

    insp = inspect_target(args.target, args.overrides, args.data_dir)
    if args.json:
        print(json.dumps(insp.to_dict(), indent=2))
        return
    for table in render_tables(insp):
        console.print(table)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    console = Console()
    try:
        commands = {"run": _run, "inspect": _inspect, "compile": _compile, "simulate": _simulate,
                    "convert": _convert, "ensemble": _ensemble}
        commands[args.command](args, console)
    except NeurocoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
