"""`neurocore convert`: dense layers become their Frobenius-nearest block-circulant layers, the
rest of the model is copied, and the written recipe fine-tunes from exactly those weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from torch import nn

from neurocore.cli import main
from neurocore.config import load_recipe, validate_recipe
from neurocore.convert import CONVERTED, RECIPE, convert_model, convert_run
from neurocore.errors import NeurocoreError, RunDirError
from neurocore.layers import BlockCirculantConv2d, BlockCirculantLinear, build_model
from neurocore.layers.circulant import project_block_circulant

REPO = Path(__file__).resolve().parents[1]
DIGITS = str(REPO / "recipes" / "digits-float.yaml")

MLP = {
    "name": "mlp",
    "data": {"dataset": "digits"},
    "model": {"layers": [
        {"type": "flatten"},
        {"type": "linear", "out_features": 48},
        {"type": "relu"},
        {"type": "linear", "out_features": 32},
        {"type": "relu"},
        {"type": "linear", "out_features": 10},
    ]},
}


def trained_like(data: dict) -> tuple[object, nn.Sequential]:
    recipe = validate_recipe(data, "t.yaml")
    torch.manual_seed(1)
    model = build_model(list(recipe.model.layers), (1, 8, 8), 10)
    return recipe, model


def test_linear_layers_are_projected_and_the_rest_copied() -> None:
    recipe, model = trained_like(MLP)
    data, conv, rows, skipped = convert_model(recipe, model, (1, 8, 8), 10, 16)
    assert isinstance(conv.fc0, BlockCirculantLinear) and isinstance(conv.fc1, BlockCirculantLinear)
    assert type(conv.fc2) is nn.Linear
    assert skipped == {"fc2": "in/out sizes 32/10 below block size 16"}
    assert torch.equal(conv.fc0.blocks, project_block_circulant(model.fc0.weight, 16))
    assert torch.equal(conv.fc1.blocks, project_block_circulant(model.fc1.weight, 16))
    for name in ("fc0", "fc1"):
        assert torch.equal(getattr(conv, name).bias, getattr(model, name).bias)
    assert torch.equal(conv.fc2.weight, model.fc2.weight)
    # (q_out·q_in·b + bias) by hand: fc0 3·4·16 + 48, fc1 2·3·16 + 32
    assert [(r["layer"], r["params_before"], r["params_after"]) for r in rows] == [
        ("fc0", 64 * 48 + 48, 192 + 48), ("fc1", 48 * 32 + 32, 96 + 32)]
    for r in rows:  # the residual of a least-squares projection, recomputed densely
        src, dst = getattr(model, r["layer"]), getattr(conv, r["layer"])
        expect = float((src.weight - dst.weight).detach().norm() / src.weight.detach().norm())
        assert r["relative_residual"] == pytest.approx(expect, rel=1e-6)
    assert data["name"] == "mlp-bc16"
    assert [e["type"] for e in data["model"]["layers"]][1::2] == [
        "block_circulant_linear", "block_circulant_linear", "linear"]


def test_conv_layers_and_layer_choice() -> None:
    recipe, model = trained_like({"name": "c", "model": {"layers": [
        {"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1},
        {"type": "relu"},
        {"type": "conv2d", "out_channels": 16, "kernel_size": 3, "padding": 1, "stride": 2},
        {"type": "flatten"},
        {"type": "linear", "out_features": 10},
    ]}})
    _, conv, rows, skipped = convert_model(recipe, model, (1, 8, 8), 10, 4, ["conv1"])
    assert [r["layer"] for r in rows] == ["conv1"]
    assert skipped == {"conv0": "not in --layers", "fc0": "not in --layers"}
    expect = BlockCirculantConv2d.from_dense(model.conv1, 4)
    assert isinstance(conv.conv1, BlockCirculantConv2d) and conv.conv1.stride == (2, 2)
    assert torch.equal(conv.conv1.blocks, expect.blocks)
    x = torch.randn(3, 1, 8, 8)
    conv.eval()
    ref = nn.Sequential(model.conv0, model.relu0, expect, model.flatten0, model.fc0).eval()
    assert torch.equal(conv(x), ref(x))


def test_bias_correction_keeps_every_units_mean_pre_activation() -> None:
    recipe, model = trained_like({"name": "c", "model": {"layers": [
        {"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1},
        {"type": "relu"},
        {"type": "conv2d", "out_channels": 16, "kernel_size": 3, "padding": 1},
        {"type": "relu"},
        {"type": "flatten"},
        {"type": "linear", "out_features": 32},
        {"type": "relu"},
        {"type": "linear", "out_features": 10},
    ]}})
    model = model.double()
    x = torch.rand(64, 1, 8, 8, dtype=torch.float64)
    _, conv, rows, _ = convert_model(recipe, model, (1, 8, 8), 10, 4, calibration=x)
    _, plain, _, _ = convert_model(recipe, model, (1, 8, 8), 10, 4)
    assert [r["layer"] for r in rows] == ["conv1", "fc0", "fc1"]
    with torch.no_grad():
        mid = model.relu0(model.conv0(x))  # conv1's input in the dense model
        flat = model.flatten0(model.relu1(model.conv1(mid)))  # fc0's input
        hidden = model.relu2(model.fc0(flat))  # fc1's
        for name, inp, dims in (("conv1", mid, (0, 2, 3)), ("fc0", flat, (0,)),
                                ("fc1", hidden, (0,))):
            dense, fixed = getattr(model, name)(inp), getattr(conv, name)(inp)
            torch.testing.assert_close(fixed.mean(dim=dims), dense.mean(dim=dims), rtol=0,
                                       atol=1e-12)
            # only the bias moved, by the mean difference of the uncorrected projection
            assert torch.equal(getattr(conv, name).blocks, getattr(plain, name).blocks)
            shift = (dense - getattr(plain, name)(inp)).mean(dim=dims)
            torch.testing.assert_close(getattr(conv, name).bias - getattr(plain, name).bias,
                                       shift, rtol=0, atol=1e-12)
    assert all(r["bias_shift"] > 0 for r in rows)


@pytest.mark.parametrize(
    ("layers", "block", "message"),
    [
        (["fc7"], 16, "--layers: no layer named fc7 (layers: flatten0, fc0, relu0"),
        (["relu0"], 16, "--layers: relu0 cannot become block-circulant"),
        (None, 64, "no layer to convert"),
        (None, 0, "--block-size must be an int >= 1, got 0"),
    ],
)
def test_bad_choices_are_named(layers: list[str] | None, block: int, message: str) -> None:
    recipe, model = trained_like(MLP)
    with pytest.raises(NeurocoreError, match=message.replace("(", r"\(")):
        convert_model(recipe, model, (1, 8, 8), 10, block, layers)


def test_cli_convert_then_fine_tune_starts_from_the_converted_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "dense"
    assert main(["run", DIGITS, "--out", str(src), "--set", "train.epochs=1", "--quiet"]) == 0
    out = tmp_path / "bc"
    argv = ["convert", str(src), "--to", "block-circulant", "--block-size", "8", "--out",
            str(out), "--evaluate", "--set", "train.epochs=0"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "conv0: stays dense (in/out sizes 1/16 below block size 8)" in printed
    assert "conv1: stays dense" not in printed and "fc0: stays dense" not in printed
    text = (out / RECIPE).read_text()
    assert yaml.safe_load(text)["model"]["init"] == CONVERTED
    recipe = load_recipe(out / RECIPE)
    assert recipe.model.init == str((out / CONVERTED).resolve())
    assert [s.type for s in recipe.model.layers][4] == "block_circulant_conv2d"
    # zero epochs: the fine-tuning run's final weights are the converted ones, exactly
    assert main(["run", str(out / RECIPE), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    a, b = load_file(out / CONVERTED), load_file(out / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the accuracy convert measured right after the projection is the zero-epoch run's
    conv = convert_run(src, "block-circulant", 8, tmp_path / "again", evaluate_test=True)
    report = json.loads((out / "report.json").read_text())
    assert conv.test_accuracy_after == report["test_accuracy"]


def test_cli_convert_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "dense"
    assert main(["run", DIGITS, "--out", str(src), "--set", "train.epochs=0", "--quiet"]) == 0
    base = ["convert", str(src), "--block-size", "8", "--out", str(tmp_path / "bc")]
    assert main([*base, "--to", "lowrank"]) == 2
    assert "--to 'lowrank': unknown target (known: block-circulant)" in capsys.readouterr().err
    assert main([*base, "--to", "block-circulant"]) == 0
    capsys.readouterr()
    assert main([*base, "--to", "block-circulant"]) == 2
    assert "recipe.yaml already exists: pass --overwrite" in capsys.readouterr().err
    assert main(["convert", str(tmp_path), "--to", "block-circulant", "--block-size", "8"]) == 2
    assert "not a run folder (config.yaml missing)" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "nope"), "--to", "block-circulant",
                 "--block-size", "8"]) == 2
    assert "nope: not a run folder (no such folder)" in capsys.readouterr().err


def test_init_weights_that_do_not_fit_are_named(tmp_path: Path) -> None:
    recipe, model = trained_like(MLP)
    _, conv, _, _ = convert_model(recipe, model, (1, 8, 8), 10, 16)
    from neurocore.training.checkpoint import load_weights, save_weights

    save_weights(tmp_path / "w.safetensors", conv)
    with pytest.raises(RunDirError) as err:
        load_weights(model, tmp_path / "w.safetensors", "model.init weights")
    msg = str(err.value)
    assert "the model.init weights do not fit the model" in msg
    assert "missing: fc0.weight, fc1.weight" in msg and "unexpected: fc0.blocks, fc1.blocks" in msg
    with pytest.raises(RunDirError, match="checkpoint not found"):
        load_weights(model, tmp_path / "none.safetensors")


def test_relative_init_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    path = sub / "r.yaml"
    path.write_text(yaml.safe_dump({**MLP, "model": {**MLP["model"], "init": "w.safetensors"}}))
    assert load_recipe(path).model.init == str(sub / "w.safetensors")
    monkeypatch.chdir(tmp_path)
    r = load_recipe(path, ["model.init=x/w.safetensors"])
    assert r.model.init == str(tmp_path / "x" / "w.safetensors")
