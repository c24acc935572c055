"""The CLI parses and calls the library; user mistakes print one `error:` line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neurocore.cli import main

REPO = Path(__file__).resolve().parents[1]
DIGITS = str(REPO / "recipes" / "digits-float.yaml")


def test_run_and_inspect(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["run", DIGITS, "--out", str(out), "--set", "train.epochs=1", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "# neurocore run: digits-float" in printed and f"run folder: {out}" in printed
    assert main(["inspect", str(out)]) == 0
    tables = capsys.readouterr().out
    assert "param_name" in tables and "conv1.weight" in tables and "total" in tables
    assert main(["inspect", DIGITS, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["totals"]["params"] == json.loads((out / "report.json").read_text())["params"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "missing.yaml"], "error: missing.yaml: recipe file not found"),
        (["run", DIGITS, "--set", "train.epochs=ten"], "train.epochs: Input should be a valid integer"),
        (["run", DIGITS, "--set", "data.dataset=imagenet"], "unknown dataset 'imagenet'"),
        (["inspect", str(REPO / "recipes" / "mnist-lenet.yaml"), "--data-dir", "/nonexistent"],
         "/nonexistent"),
    ],
)
def test_user_errors_exit_2_without_traceback(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./data/mnist here
    monkeypatch.delenv("NEUROCORE_DATA", raising=False)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert "Traceback" not in err


BINARY_DIGITS = str(REPO / "recipes" / "digits.yaml")
QUICK = [  # a short schedule: binary from epoch 1; larger batches and 50 hardware frames for speed
    "train.epochs=2", "binary.threshold_start=1", "binary.threshold_every=1",
    "binary.noise.stop=1", "data.batch_size=256", "hardware.frames=50",
]


def test_compile_and_simulate_a_binary_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from neurocore.hardware.program import Program

    run_dir = tmp_path / "run"
    argv = ["run", BINARY_DIGITS, "--out", str(run_dir), "--quiet"]
    assert main(argv + [a for kv in QUICK for a in ("--set", kv)]) == 0
    capsys.readouterr()
    program_path = tmp_path / "out" / "digits.safetensors"  # the folder is created
    assert main(["compile", str(run_dir), "--out", str(program_path)]) == 0
    printed = capsys.readouterr().out
    program = Program.load(program_path)
    assert f"cores: {program.num_cores}" in printed and "conv0" in printed
    # compiling is deterministic: the same program as the one the run wrote
    assert program.equal(Program.load(run_dir / "program.safetensors"))

    argv = ["simulate", str(program_path), "--data", "digits", "--run", str(run_dir), "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["mismatches"] == 0
    assert result["frames"] == 360 and result["cores"] == program.num_cores
    assert result["hardware_accuracy"] == result["model_accuracy"]
    assert result["latency_ticks"] == 5 and result["chips"] == 1

    # the shared-types strategy (an override of the recipe's): the pooling layers share types,
    # the trained (not symmetric) convolutions fall back, and the cores still equal the model
    shared_path = tmp_path / "out" / "shared.safetensors"
    argv = ["compile", str(run_dir), "--out", str(shared_path), "--strategy", "shared-types"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    shared = Program.load(shared_path)
    assert shared.metadata["strategy"] == "shared-types"
    rows = json.loads(shared.metadata["layers"])
    assert [r["mapping"] for r in rows if r["kind"] == "or_pool"] == ["shared-types"] * 2
    assert "shared-types" in printed and shared.num_cores <= program.num_cores
    argv = ["simulate", str(shared_path), "--data", "digits", "--run", str(run_dir), "--json"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["mismatches"] == 0
    assert main(["compile", str(run_dir), "--out", str(shared_path), "--strategy", "x"]) == 2
    assert "unknown compiler strategy 'x'" in capsys.readouterr().err

    # without --run: predictions on the cores only
    assert main(["simulate", str(program_path), "--data", "digits", "--frames", "20",
                 "--json"]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert alone["frames"] == 20 and "mismatches" not in alone


@pytest.mark.parametrize("what", ["missing", "folder", "not_a_program"])
def test_simulate_bad_program_file_exits_2(
    what: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.safetensors"
    if what == "folder":
        path.mkdir()
    elif what == "not_a_program":
        path.write_text("hello")
    assert main(["simulate", str(path), "--data", "digits"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}")
    assert "Traceback" not in captured.err and captured.out == ""


def test_compile_a_folder_without_a_run_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compile", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_ensemble_of_two_binary_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from neurocore.hardware.program import Program

    runs = [tmp_path / "a", tmp_path / "b"]
    for seed, run_dir in enumerate(runs):
        argv = ["run", BINARY_DIGITS, "--out", str(run_dir), "--quiet", "--set", f"seed={seed}"]
        assert main(argv + [a for kv in QUICK for a in ("--set", kv)]) == 0
    capsys.readouterr()
    out = tmp_path / "ens"
    assert main(["ensemble", *map(str, runs), "--out", str(out), "--frames", "120"]) == 0
    assert f"ensemble folder: {out}" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    hw, members = report["hardware"], report["ensemble"]["members"]
    alone = [Program.load(r / "program.safetensors").num_cores for r in runs]
    assert [m["cores"] for m in members] == alone
    assert hw["cores"] == sum(alone) == Program.load(out / "program.safetensors").num_cores
    assert hw["frames"] == 120 and hw["mismatches"] == 0
    assert report["members"] == 2 and report["hardware_mismatches"] == 0
    # members, ensemble model and cores are scored on the same 120 frames
    assert report["test_examples"] == 120
    assert report["test_accuracy"] == hw["test_accuracy"] == hw["model_test_accuracy"]

    # user mistakes: one error line each, nothing overwritten
    float_run = tmp_path / "float"  # a network that does not fold: named in the error
    assert main(["run", DIGITS, "--out", str(float_run), "--quiet", "--set", "train.epochs=1"]) == 0
    capsys.readouterr()
    before = (out / "report.json").read_bytes()
    for argv, message in [
        (["ensemble", str(runs[0]), "--out", str(tmp_path / "x")], "at least two run folders"),
        (["ensemble", str(runs[0]), str(runs[0]), "--out", str(tmp_path / "x")],
         "named twice"),
        (["ensemble", *map(str, runs), "--out", str(runs[1]), "--overwrite"],
         "is a member's run folder"),
        (["ensemble", *map(str, runs), "--out", str(out)], "pass --overwrite"),
        (["ensemble", str(runs[0]), str(tmp_path), "--out", str(tmp_path / "x")],
         "not a run folder"),
        (["ensemble", str(runs[0]), str(float_run), "--out", str(tmp_path / "x")],
         f"{float_run}: layer "),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert (out / "report.json").read_bytes() == before
