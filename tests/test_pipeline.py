"""End to end: recipe -> run folder -> report; run-folder safety; a real SIGKILL and --resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from neurocore.config import load_recipe
from neurocore.data import load_dataset
from neurocore.errors import RunDirError
from neurocore.layers import build_model
from neurocore.pipeline import inspect_target, run_recipe
from neurocore.training import evaluate
from neurocore.training.checkpoint import load_model_state

REPO = Path(__file__).resolve().parents[1]
DIGITS = REPO / "recipes" / "digits-float.yaml"


def test_run_writes_a_complete_run_folder(tmp_path: Path) -> None:
    recipe = load_recipe(DIGITS, ["train.epochs=3"])
    report = run_recipe(recipe, tmp_path / "run", progress=False)
    run = tmp_path / "run"
    for name in ("config.yaml", "metrics.jsonl", "checkpoint.safetensors", "model.safetensors",
                 "report.md", "report.json"):
        assert (run / name).is_file(), name
    data = json.loads((run / "report.json").read_text())
    assert {"dataset", "test_accuracy", "params", "macs", "wall_seconds"} <= data.keys()
    assert data["dataset"] == "digits" and data["test_examples"] == 360
    assert data == json.loads(json.dumps(report.to_json()))
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3
    # the reported accuracy is what the saved weights give, recomputed independently
    ds = load_dataset("digits")
    model = build_model(list(recipe.model.layers), ds.info.input_shape, 10)
    model.load_state_dict(load_model_state(run / "model.safetensors"))
    assert evaluate(model, ds.test, 16).accuracy == data["test_accuracy"]
    assert data["test_accuracy"] > 0.8  # three epochs already learn digits
    # params and MACs agree with inspect on the run folder
    insp = inspect_target(run, [], None)
    assert data["params"] == insp.total_params == sum(p.numel() for p in model.parameters())
    assert data["macs"] == insp.total_macs
    md = (run / "report.md").read_text()
    assert "test_accuracy" in md and "## Training" in md and "param_name" in md


def test_run_folder_is_never_silently_replaced(tmp_path: Path) -> None:
    recipe = load_recipe(DIGITS, ["train.epochs=1"])
    run_recipe(recipe, tmp_path, progress=False)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="already holds a run: pass --resume .* or --overwrite"):
        run_recipe(recipe, tmp_path, progress=False)
    other = load_recipe(DIGITS, ["train.epochs=2", "train.optimizer.lr=0.01"])
    with pytest.raises(RunDirError, match=r"the recipe differs .* at: train\.epochs, train\.optimizer\.lr"):
        run_recipe(other, tmp_path, resume=True, progress=False)
    run_recipe(other, tmp_path, overwrite=True, progress=False)
    assert (tmp_path / "notes.txt").read_text() == "mine"  # only neurocore's files replaced
    with pytest.raises(RunDirError, match="holds no run"):
        run_recipe(other, tmp_path / "empty", resume=True, progress=False)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "neurocore", *args]


def test_sigkill_then_resume_equals_uninterrupted(tmp_path: Path) -> None:
    sets = ["--set", "train.epochs=8", "--quiet"]
    full, killed = tmp_path / "full", tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    subprocess.run(_cli("run", str(DIGITS), "--out", str(full), *sets), check=True, env=env,
                   capture_output=True)

    proc = subprocess.Popen(_cli("run", str(DIGITS), "--out", str(killed), *sets), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = killed / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= 2:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (killed / "model.safetensors").exists()

    done = subprocess.run(_cli("run", str(DIGITS), "--out", str(killed), "--resume", *sets),
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    a, b = load_model_state(full / "model.safetensors"), load_model_state(killed / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ja, jb = (json.loads((d / "report.json").read_text()) for d in (full, killed))
    assert ja["test_accuracy"] == jb["test_accuracy"]


@pytest.mark.parametrize(
    ("name", "overrides", "before"),
    [
        # steps before epoch e: max(0, e - 1), so epochs 0 and 1 are unsharpened
        ("digits-whetstone", ["train.epochs=6", "binary.schedule={name: simple, start_epoch: 1, steps_per_layer: 1}"], 2),
        ("digits-noisy-relu", ["train.epochs=5", "binary.threshold_start=1", "binary.threshold_every=1", "binary.noise.stop=2"], 1),
    ],
)
def test_binary_recipes_report_folded_equality(
    tmp_path: Path, name: str, overrides: list[str], before: int
) -> None:
    recipe = load_recipe(REPO / "recipes" / f"{name}.yaml", overrides)
    data = run_recipe(recipe, tmp_path, progress=False).to_json()
    binary = data["binary"]
    assert binary["fold"] == {"mismatches": 0, "spike_mismatches": 0, "frames": 360}
    # fully binary at the end: the model as trained is its own binarization
    assert data["test_accuracy"] == data["test_accuracy_binary"] == binary["test_accuracy_binary"]
    assert set(binary["phases"]) <= {"before", "during", "after"}
    assert binary["phases"]["before"]["epochs"] == before
    history = data["training"]["history"]
    assert all("test_accuracy_binary" in h and "active_fraction" in h for h in history)
    assert "## Binary communication" in (tmp_path / "report.md").read_text()


def test_demo_recipe_runs_train_compile_simulate(tmp_path: Path) -> None:
    """The main job, shortened: the hardware agrees with the model on every test frame."""
    recipe = load_recipe(REPO / "recipes" / "digits.yaml",
                         ["train.epochs=4", "binary.threshold_start=1", "binary.threshold_every=1",
                          "binary.noise.stop=1"])
    data = run_recipe(recipe, tmp_path, progress=False).to_json()
    hw = data["hardware"]
    assert hw["frames"] == 360 and hw["mismatches"] == 0
    assert hw["test_accuracy"] == hw["model_test_accuracy"] == data["test_accuracy_binary"]
    assert hw["cores"] == data["cores"] > 0 and hw["chips"] == 1
    assert hw["latency_ticks"] == 5 and hw["frames_per_second"] == 1000.0
    assert hw["synaptic_events_per_frame"] > 0 and hw["spikes_per_frame"] > 0
    assert sum(r["cores"] for r in hw["layers"]) == hw["cores"]
    assert all(r["mapping"] == "duplicate-axons" for r in hw["layers"])  # the recipe's strategy
    assert "| mapping |" in (tmp_path / "report.md").read_text()
    assert hw["energy"]["total_model_uj"] == pytest.approx(hw["synaptic_events_per_frame"] * 26e-6)
    assert (tmp_path / "program.safetensors").is_file()
