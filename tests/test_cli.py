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
