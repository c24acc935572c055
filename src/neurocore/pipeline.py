"""From a recipe to a report: the stages of ``neurocore run``, ``inspect``, ``compile``,
``simulate`` and ``ensemble``.

    recipe ──validate──▶ Recipe ──load data──▶ Dataset ──build──▶ model
           ──Trainer.fit (+ Binarize when the recipe has ``binary``, Symmetrize when it has
             ``symmetric``, BlockCirculantADMM when it has ``admm``)──▶ checkpoint, metrics.jsonl
           ──evaluate──▶ test accuracy ──inspect──▶ cost tables
           ──[binary]   fold ──▶ folded network checked against the model
           ──[hardware] compile ──▶ program.safetensors ──simulate──▶ hardware accuracy, energy
           ──▶ Report ──▶ report.md / report.json

    run folders ──[ensemble] fold + compile each ──merge_programs──▶ one program
           ──simulate──▶ compared with the members' summed outputs ──▶ report.md / report.json

The run folder holds everything a later stage or a resumed run needs:
``config.yaml`` (the resolved recipe), ``metrics.jsonl``, ``checkpoint.safetensors`` (training
state), ``model.safetensors`` (final weights), ``program.safetensors`` (hardware recipes),
``report.md``, ``report.json``.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any, cast

import torch
import yaml
from torch import nn

from neurocore import __version__
from neurocore.analysis.inspect import ModelInspection, format_text, inspect_model
from neurocore.analysis.report import Report, markdown_table
from neurocore.config import Recipe, load_recipe, recipe_to_yaml
from neurocore.data import Split, dataset_info, load_dataset, validation_split
from neurocore.errors import NeurocoreError, RunDirError
from neurocore.hardware import deploy
from neurocore.hardware.compiler import CompiledNetwork, Strategy, compile_network, layer_table
from neurocore.hardware.energy import FP32_MAC, OP_COUNT_CAVEAT, ann_energy_uj
from neurocore.hardware.ensemble import Ensemble, merge_programs
from neurocore.hardware.fold import fold, fold_check
from neurocore.hardware.program import Program
from neurocore.io import atomic_write_text
from neurocore.layers import build_model
from neurocore.training.admm import BlockCirculantADMM
from neurocore.training.binarize import Binarize, BinaryMetrics, binary_metrics, binary_summary
from neurocore.training.checkpoint import CHECKPOINT_FILES, load_weights, read_history, save_weights
from neurocore.training.hooks import Callback
from neurocore.training.symmetrize import (
    Symmetrize,
    logged_patterns,
    symmetric_summary,
)
from neurocore.training.trainer import Trainer, evaluate

CONFIG = "config.yaml"
WEIGHTS = "model.safetensors"
PROGRAM = "program.safetensors"
RUN_FILES = (CONFIG, WEIGHTS, PROGRAM, "report.md", "report.json", *CHECKPOINT_FILES)


def _flatten(d: object, prefix: str = "") -> dict[str, object]:
    if isinstance(d, dict):
        out: dict[str, object] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    if isinstance(d, list):
        out = {}
        for i, v in enumerate(d):
            out.update(_flatten(v, f"{prefix}{i}."))
        return out
    return {prefix.rstrip("."): d}


def prepare_run_dir(out: Path, recipe: Recipe, *, resume: bool, overwrite: bool) -> None:
    """Create the run folder; refuse to mix runs. ``--overwrite`` removes only neurocore's files."""
    if resume and overwrite:
        raise RunDirError("--resume and --overwrite exclude each other")
    config = out / CONFIG
    if resume:
        if not config.exists():
            raise RunDirError(f"--resume: {out} holds no run ({CONFIG} missing)")
        saved = yaml.safe_load(config.read_text())
        now = recipe.model_dump(mode="json")
        a, b = _flatten(saved), _flatten(now)
        diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        if diff:
            raise RunDirError(
                f"--resume: the recipe differs from the run in {out} at: {', '.join(diff)}"
            )
        return
    if out.exists() and any((out / f).exists() for f in RUN_FILES):
        if not overwrite:
            raise RunDirError(
                f"{out} already holds a run: pass --resume to continue it or --overwrite to "
                "replace it"
            )
        for f in RUN_FILES:
            (out / f).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(config, recipe_to_yaml(recipe))


def environment() -> dict[str, object]:
    return {
        "neurocore": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }


def finish_report(report: Report, out: Path, t0: float) -> None:
    """Add the wall time since ``t0`` and the environment; write report.md / report.json."""
    report.summary["wall_seconds"] = time.perf_counter() - t0
    env = environment()
    report.add_section("environment", "Environment", env,
                       markdown_table(["key", "value"], [[k, v] for k, v in env.items()]))
    report.write(out)


def inspection_section(report: Report, insp: ModelInspection) -> None:
    energy = ann_energy_uj(insp.total_macs)
    report.summary["ann_energy_uj_per_frame"] = energy
    report.add_section(
        "inspect",
        "Cost of the model (per example)",
        {
            **insp.to_dict(),
            "ann_energy": {
                "uj_per_frame": energy,
                "per_mac": FP32_MAC.as_dict(),
                "caveat": OP_COUNT_CAVEAT,
            },
        },
        "```\n" + format_text(insp) + "\n```\n\n"
        f"ANN energy at {FP32_MAC.value} pJ per MAC ({FP32_MAC.source}): {energy:.4f} µJ per "
        f"example; {OP_COUNT_CAVEAT}.",
    )


def binary_section(
    report: Report, model: nn.Module, test: Split, max_value: int,
    history: list[dict[str, Any]], stop_reason: str | None,
) -> torch.Tensor:
    """Fully binary accuracy, the cost of each binarization phase, and the folding check; returns
    the fully binary model's test predictions (from the folding check's pass)."""
    final = binary_metrics(model, {"test": test}, max_value)
    summary = binary_summary(history)
    report.summary["test_accuracy_binary"] = final["test_accuracy_binary"]
    predictions: list[torch.Tensor] = []
    check = fold_check(model, test, max_value, predictions=predictions)
    data = {**summary, **final, "fold": check, "stop_reason": stop_reason}
    rows = [[p, v["epochs"], v["seconds"]] for p, v in summary["phases"].items()]
    before = summary["test_accuracy_before_binarization"]
    md = [
        f"- test accuracy before binarization: {before if before is not None else 'n/a'}",
        f"- test accuracy as trained: {final['test_accuracy_current']:.4f}; "
        f"fully binary: {final['test_accuracy_binary']:.4f}",
        f"- folded (weights, thresholds) network vs fully binary model on the test set: "
        f"{check['mismatches']} of {check['frames']} predictions differ, "
        f"{check['spike_mismatches']} spikes differ",
        f"- stopped early: {stop_reason}" if stop_reason else "- ran every epoch",
        "",
        markdown_table(["phase", "epochs", "training seconds"], rows),
        "",
        markdown_table(["layer", "active fraction (fully binary, test)"],
                       [[k, v] for k, v in final["active_fraction"].items()]),
    ]
    report.add_section("binary", "Binary communication", data, "\n".join(md))
    return torch.cat(predictions)


def symmetric_section(report: Report, model: nn.Module, history: list[dict[str, Any]],
                      exclude: list[str], masked: bool = False) -> None:
    """Which conv layers were projected onto symmetric kernels, when, at what cost; and the check
    that every ternary conv kernel of the trained model is in the family (the masked family for
    ``after: tie-masked``)."""
    data = symmetric_summary(history, model, exclude, masked)
    checks = data["check"]
    report.summary["symmetric_layers"] = f"{sum(checks.values())}/{len(checks)}"

    def acc(p: dict[str, Any], key: str) -> str:
        return f"{p[key]:.4f}" if key in p else "—"

    rows = [[p["layer"], p["epoch"] + 1, p["groups"], f"{p['relative_error']:.4f}",
             acc(p, "val_accuracy_before"), acc(p, "val_accuracy_after"),
             acc(p, "val_accuracy_after_epoch")] for p in data["projections"]]
    missing = [name for name, ok in checks.items() if not ok and name not in exclude]
    free = [name for name in exclude if not checks.get(name, False)]
    md = [
        f"- {sum(checks.values())} of {len(checks)} ternary conv layers have every kernel in the "
        + ("masked symmetric family B ∘ f(σ^i ρ^j q) (each (output, type) class one sign under "
           "the pattern nearest_symmetric finds)" if masked else
           "symmetric family (each group re-found exactly by nearest_symmetric)")
        + (f"; left unconstrained (symmetric.exclude): {', '.join(free)}" if free else "")
        + (f"; **not symmetric**: {', '.join(missing)}" if missing else ""),
        "",
        markdown_table(["layer", "projected before epoch", "groups", "relative residual",
                        "val acc before", "right after", "after the epoch"], rows),
    ]
    report.add_section("symmetric", "Symmetric kernels", data, "\n".join(md))


def hardware_section(
    report: Report, model: nn.Module, test: Split, max_value: int, input_shape: tuple[int, ...],
    out: Path, frames: int | None, strategy: Strategy = "duplicate-axons",
    model_pred: torch.Tensor | None = None, history: list[dict[str, Any]] | None = None,
) -> None:
    """Fold, compile with ``strategy`` (trying the type patterns logged in ``history`` by
    symmetric training first), save the program, simulate the test set and compare with the
    model (its test predictions ``model_pred`` when already known)."""
    compiled = compile_network(fold(model), input_shape, strategy=strategy,
                               patterns=logged_patterns(history or []))
    compiled.program.save(out / PROGRAM)
    program_section(report, compiled.program, model, test, max_value, frames, model_pred)


def program_section(
    report: Report, program: Program, model: nn.Module, test: Split, max_value: int,
    frames: int | None, model_pred: torch.Tensor | None = None,
) -> None:
    """Simulate ``program`` on the test set, compare it with ``model`` frame by frame and add
    the ``hardware`` section (the ANN energy from ``report.summary["macs"]``)."""
    ev = deploy.evaluate(program, model, test, max_value, int(report.summary["macs"]),
                         frames, model_pred=model_pred)
    data = ev.to_dict()
    data["test_accuracy"] = data.pop("hardware_accuracy")
    data["model_test_accuracy"] = data.pop("model_accuracy")
    report.summary.update(
        hardware_test_accuracy=ev.hardware_accuracy, hardware_mismatches=ev.mismatches,
        cores=ev.cores, energy_uj_per_frame=ev.energy_uj_per_frame,
    )
    e = ev.energy
    md = [
        f"- {ev.frames} test frames on {ev.cores} cores ({ev.chips} chip(s)): hardware accuracy "
        f"{ev.hardware_accuracy:.4f}, model {ev.model_accuracy:.4f}, **{ev.mismatches} "
        "mismatches**",
        f"- per frame: {ev.spikes_per_frame:.1f} spikes, {ev.synaptic_events_per_frame:.1f} "
        f"synaptic events, {ev.hops_per_frame:.1f} spike hops; latency {ev.latency_ticks} ticks "
        f"({ev.latency_ms:.0f} ms), {ev.frames_per_second:.0f} frames/s pipelined",
        f"- energy per frame: {e['marginal_model_uj']:.4f} µJ (marginal model: "
        f"{e['marginal_static_uj']:.4f} static + {e['marginal_dynamic_uj']:.4f} dynamic), "
        f"{e['total_model_uj']:.4f} µJ (26 pJ/event total-energy model); the same network as a "
        f"float ANN: {e['ann_fp32_uj']:.4f} µJ (MACs × 4.6 pJ)",
        "",
        markdown_table(
            ["layer", "kind", "mapping", "tick", "neurons", "duplicates", "cores", "axons",
             "max fan-in", "complemented", "fire at rest", "spikes/frame"],
            [[r["layer"], r["kind"], r["mapping"], r["tick"], r["neurons"], r["duplicates"],
              r["cores"], r["axons_used"], r["max_fan_in"], r["complemented"],
              r["fire_at_rest"], r["spikes_per_frame"]] for r in ev.layers],
        ),
    ]
    report.add_section("hardware", "Hardware (simulated TrueNorth cores)", data, "\n".join(md))


def run_recipe(
    recipe: Recipe,
    out: Path,
    *,
    data_dir: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> Report:
    t0 = time.perf_counter()
    data = load_dataset(recipe.data.dataset, data_dir)
    train, val = validation_split(data.train, recipe.data.val_fraction, recipe.seed)
    torch.manual_seed(recipe.seed)
    model = build_model(list(recipe.model.layers), data.info.input_shape, data.info.num_classes)
    if recipe.model.init is not None and not resume:  # resuming: the checkpoint has them
        load_weights(model, Path(recipe.model.init), "model.init weights")
    callbacks: list[Callback] = []
    if recipe.binary is not None:
        splits = {"val": val, "test": data.test} if len(val) else {"test": data.test}
        callbacks = [
            Binarize(recipe.binary),
            BinaryMetrics(splits, data.info.max_value, recipe.data.eval_batch_size),
        ]
    if recipe.symmetric is not None:
        callbacks.append(Symmetrize(recipe.symmetric))
    if recipe.admm is not None:
        admm = BlockCirculantADMM(recipe.admm)
        admm.choose_layers(model)  # a wrong layer list fails before the run folder is made
        callbacks.append(admm)
    teacher = None
    if recipe.train.distill is not None:
        teacher = load_teacher(Path(recipe.train.distill.teacher), recipe, data_dir)
    # the run folder only once the data, the model and its parts have loaded
    prepare_run_dir(out, recipe, resume=resume, overwrite=overwrite)
    trainer = Trainer(
        model, train, recipe.train,
        max_value=data.info.max_value, batch_size=recipe.data.batch_size, seed=recipe.seed,
        run_dir=out, val=val, eval_batch_size=recipe.data.eval_batch_size, progress=progress,
        callbacks=callbacks, shift=recipe.data.shift, teacher=teacher,
    )
    history = trainer.fit(resume=resume)
    save_weights(out / WEIGHTS, model, {"recipe": recipe.name})
    test = evaluate(model, data.test, data.info.max_value, recipe.data.eval_batch_size)
    insp = inspect_model(model, data.info.input_shape)

    report = Report(f"neurocore run: {recipe.name}")
    report.summary.update(
        recipe=recipe.name,
        dataset=data.info.name,
        train_examples=len(train),
        val_examples=len(val),
        test_examples=test.count,
        test_accuracy=test.accuracy,
        test_loss=test.loss,
        params=insp.total_params,
        macs=insp.total_macs,
    )
    rows = [
        [h["epoch"] + 1, h["lr"], h["train_loss"], h["train_accuracy"],
         h.get("val_accuracy", "—"), h["seconds"]]
        for h in history
    ]
    report.add_section(
        "training",
        "Training",
        {"epochs": recipe.train.epochs, "history": history},
        markdown_table(["epoch", "lr", "train loss", "train acc", "val acc", "seconds"], rows),
    )
    inspection_section(report, insp)
    model_pred = None
    if recipe.binary is not None:
        model_pred = binary_section(report, model, data.test, data.info.max_value, history,
                                    trainer.stop_reason)
    if recipe.symmetric is not None:
        symmetric_section(report, model, history, recipe.symmetric.exclude,
                          masked=recipe.symmetric.after == "tie-masked")
    if recipe.hardware is not None:
        hardware_section(report, model, data.test, data.info.max_value, data.info.input_shape,
                         out, recipe.hardware.frames, recipe.hardware.strategy, model_pred,
                         history)
    finish_report(report, out, t0)
    return report


def model_for_inspection(
    target: Path, overrides: list[str], data_dir: str | None
) -> tuple[Recipe, nn.Module, tuple[int, int, int]]:
    """A recipe file gives a freshly built model; a run folder gives its trained weights."""
    if target.is_dir():
        config = target / CONFIG
        if not config.exists():
            raise RunDirError(f"{target}: not a run folder ({CONFIG} missing)")
        recipe = load_recipe(config, overrides)
    else:
        recipe = load_recipe(target, overrides)
    info = dataset_info(recipe.data.dataset, data_dir)
    torch.manual_seed(recipe.seed)
    model = build_model(list(recipe.model.layers), info.input_shape, info.num_classes)
    if target.is_dir():
        weights = target / WEIGHTS
        if not weights.exists():
            raise RunDirError(f"{target}: the run has not finished ({WEIGHTS} missing)")
        load_weights(model, weights)
    return recipe, model, info.input_shape


def load_teacher(run_dir: Path, recipe: Recipe, data_dir: str | None) -> nn.Module:
    """A finished run's model as the teacher of ``recipe`` (``train.distill.teacher``); it must
    have been trained on the same data set."""
    where = f"train.distill.teacher: {run_dir}"
    if not run_dir.is_dir():
        raise RunDirError(f"{where}: no such run folder")
    if not (run_dir / CONFIG).exists():
        raise RunDirError(f"{where}: not a run folder ({CONFIG} missing)")
    dataset = load_recipe(run_dir / CONFIG).data.dataset
    if dataset != recipe.data.dataset:
        raise RunDirError(f"{where}: the teacher was trained on {dataset}, this recipe trains "
                          f"on {recipe.data.dataset}")
    try:
        return model_for_inspection(run_dir, [], data_dir)[1]
    except RunDirError as e:
        raise RunDirError(f"train.distill.teacher: {e}") from None


def inspect_target(target: Path, overrides: list[str], data_dir: str | None) -> ModelInspection:
    _, model, shape = model_for_inspection(target, overrides, data_dir)
    return inspect_model(model, shape)



def compile_trained(recipe: Recipe, model: nn.Module, shape: tuple[int, ...],
                    strategy: str | None = None, run_dir: Path | None = None
                    ) -> CompiledNetwork:
    """Fold a trained model (put in eval mode) and compile it with ``strategy``, else the
    recipe's ``hardware.strategy``, else duplicate-axons; the type patterns that symmetric
    training logged in ``run_dir`` are tried first for shared types."""
    model.eval()
    if strategy is None:
        strategy = recipe.hardware.strategy if recipe.hardware is not None else "duplicate-axons"
    patterns = logged_patterns(read_history(run_dir)) if run_dir is not None else None
    return compile_network(fold(model), shape, strategy=cast(Strategy, strategy),
                           patterns=patterns)


def compile_run(run_dir: Path, out: Path | None = None, strategy: str | None = None,
                ) -> tuple[Path, list[dict[str, Any]]]:
    """Fold and compile a finished run's model; save the program (default in the run folder).
    ``strategy`` overrides the recipe's ``hardware.strategy`` (default duplicate-axons)."""
    recipe, model, shape = model_for_inspection(run_dir, [], None)
    compiled = compile_trained(recipe, model, shape, strategy, run_dir)
    path = out if out is not None else run_dir / PROGRAM
    compiled.program.save(path)
    return path, layer_table(compiled.layers, compiled.placement)


def ensemble_runs(
    run_dirs: list[Path], out: Path, *, data_dir: str | None = None, frames: int | None = None,
    strategy: str | None = None, overwrite: bool = False,
) -> Report:
    """Compile finished binary runs side by side into one program
    (:func:`~neurocore.hardware.ensemble.merge_programs`), simulate it on the test split and
    compare it frame by frame with the members' summed outputs; report.md / report.json and
    program.safetensors go to ``out``. ``strategy`` overrides each recipe's
    ``hardware.strategy``."""
    t0 = time.perf_counter()
    if len(run_dirs) < 2:
        raise RunDirError(f"an ensemble needs at least two run folders, got {len(run_dirs)}")
    resolved = [d.resolve() for d in run_dirs]
    if len(set(resolved)) != len(resolved):
        raise RunDirError("a run folder is named twice: an ensemble of copies votes as one member")
    if out.resolve() in resolved:
        raise RunDirError(f"--out {out} is a member's run folder: choose another folder")
    files = (PROGRAM, "report.md", "report.json")
    if any((out / f).exists() for f in files) and not overwrite:
        raise RunDirError(f"{out} already holds a program or a report: pass --overwrite to "
                          "replace them")
    members, programs, rows = [], [], []
    dataset, macs = None, 0
    for d in run_dirs:
        recipe, model, shape = model_for_inspection(d, [], data_dir)
        if dataset is not None and recipe.data.dataset != dataset:
            raise RunDirError(f"{d}: trained on {recipe.data.dataset}, the first member on "
                              f"{dataset}; members must share the data set")
        dataset = recipe.data.dataset
        try:
            programs.append(compile_trained(recipe, model, shape, strategy, d).program)
        except NeurocoreError as e:
            raise RunDirError(f"{d}: {e}") from None
        macs += inspect_model(model, shape).total_macs
        members.append(model)
    assert dataset is not None
    program = merge_programs(programs)  # members named m0, m1, ...
    data = load_dataset(dataset, data_dir)
    max_value = data.info.max_value
    # the members, the ensemble model and the cores all see the same (first ``frames``) images
    test = data.test if frames is None else data.test.take(torch.arange(min(frames,
                                                                             len(data.test))))
    labels = test.labels
    total = None  # the members' scores added in member order, as Ensemble.forward adds them
    for i, (d, model, p) in enumerate(zip(run_dirs, members, programs, strict=True)):
        scores = deploy.model_outputs(model, test, max_value)
        total = scores if total is None else total + scores
        rows.append({"member": f"m{i}", "run": str(d), "cores": p.num_cores,
                     "test_accuracy": int((scores.argmax(1) == labels).sum()) / len(labels)})
    assert total is not None
    ensemble = Ensemble(members)
    model_pred = total.argmax(1)

    out.mkdir(parents=True, exist_ok=True)
    program.save(out / PROGRAM)
    report = Report(f"neurocore ensemble: {len(members)} members")
    report.summary.update(
        dataset=data.info.name, members=len(members), test_examples=len(test),
        test_accuracy=int((model_pred == labels).sum()) / len(labels), macs=macs,
    )
    report.add_section(
        "ensemble", "Members (fully binary models; the ensemble adds their class scores)",
        {"members": rows},
        markdown_table(["member", "run folder", "cores", "test accuracy"],
                       [[r["member"], r["run"], r["cores"], r["test_accuracy"]] for r in rows]),
    )
    program_section(report, program, ensemble, test, max_value, None, model_pred)
    finish_report(report, out, t0)
    return report


def simulate_program(
    program_path: Path, dataset: str, data_dir: str | None, frames: int | None,
    run_dir: Path | None, engine: str = "auto",
) -> dict[str, Any]:
    """Classify a data set's test split on the simulated cores; with ``run_dir``, compare every
    frame with the trained model. ``engine``: as
    :func:`~neurocore.hardware.simulator.make_simulator`."""
    program = Program.load(program_path)
    data = load_dataset(dataset, data_dir)
    if run_dir is not None:
        _, model, shape = model_for_inspection(run_dir, [], data_dir)
        macs = inspect_model(model, shape).total_macs
        ev = deploy.evaluate(program, model, data.test, data.info.max_value, macs, frames, engine)
        return ev.to_dict()
    run = deploy.run_program(program, data.test, data.info.max_value, frames=frames,
                             engine=engine)
    labels = data.test.labels[: len(run.predictions)]
    return {
        "frames": len(run.predictions),
        "cores": program.num_cores,
        "test_accuracy": int((run.predictions == labels).sum()) / max(len(labels), 1),
        "spikes_per_frame": run.spikes_per_frame,
        "synaptic_events_per_frame": run.synaptic_events_per_frame,
        "hops_per_frame": run.hops_per_frame,
    }
