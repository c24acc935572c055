"""The symmetric-kernel recipes: their shape (no pooling, no dense layer, every neuron's fan-in
≤ 128, the seed's four sets of four conv layers for CIFAR-10), and both run end to end on tiny
synthetic data in the real file formats (MNIST IDX, CIFAR-10 pickle batches)."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from neurocore.config import Recipe, load_recipe
from neurocore.hardware.compiler import compile_network, layer_table
from neurocore.hardware.fold import fold
from neurocore.layers import build_model
from neurocore.layers.ternary import TernaryConv2d, TernaryConv2dSpec
from neurocore.pipeline import run_recipe

REPO = Path(__file__).resolve().parents[1]
MNIST = REPO / "recipes" / "mnist-symmetric.yaml"
CIFAR = REPO / "recipes" / "cifar10-symmetric.yaml"
ALLOWED = {"thermometer", "ternary_conv2d", "batchnorm", "noisy_relu", "flatten", "nhot_decode"}


def _conv_shapes(recipe: Recipe, shape: tuple[int, ...]) -> list[tuple[TernaryConv2d, int, int]]:
    """(module, fan-in per neuron, output side) of every conv layer."""
    model = build_model(list(recipe.model.layers), shape, 10)
    x, out = torch.zeros(1, *shape), []
    for m in model:
        x = m(x)
        if isinstance(m, TernaryConv2d):
            out.append((m, m.in_channels // m.groups * m.kernel_size[0] ** 2, int(x.shape[-1])))
    return out


@pytest.mark.parametrize("path", [MNIST, CIFAR])
def test_hardware_form(path: Path) -> None:
    r = load_recipe(path)
    assert {layer.type for layer in r.model.layers} <= ALLOWED  # no pooling, no dense layer
    assert r.model.layers[0].type == "thermometer" and r.model.layers[-1].type == "nhot_decode"
    assert r.symmetric is not None and r.binary is not None and r.hardware is not None
    assert r.binary.method == "noisy_relu"
    shape = (3, 32, 32) if path == CIFAR else (1, 28, 28)
    convs = _conv_shapes(r, shape)
    assert all(fan_in <= 128 for _, fan_in, _ in convs), [f for _, f, _ in convs]
    # CIFAR-10: only the output layer stays free; MNIST: the last two (docs/benchmarks.md)
    free = 2 if path == MNIST else 1
    assert r.symmetric.exclude == [f"conv{k}" for k in range(len(convs) - free, len(convs))]
    if path == CIFAR:  # four sets of four conv layers at 32, 16, 8 and 4 pixels
        assert [side for _, _, side in convs] == [32] * 4 + [16] * 4 + [8] * 4 + [4] * 4
        assert [m.stride[0] for m, _, _ in convs] == [1, 1, 1, 1] + [2, 1, 1, 1] * 3
        assert all(isinstance(s, TernaryConv2dSpec) for s in r.model.layers[1:-2:3])


def test_mnist_symmetric_compiles_with_duplicate_axons() -> None:
    """The untrained network maps onto cores, every layer a conv layer, fan-in ≤ 128."""
    r = load_recipe(MNIST)
    torch.manual_seed(0)
    model = build_model(list(r.model.layers), (1, 28, 28), 10).eval()
    compiled = compile_network(fold(model), (1, 28, 28))
    table = layer_table(compiled.layers, compiled.placement)
    assert [row["kind"] for row in table] == ["conv2d"] * 5
    assert all(row["max_fan_in"] <= 128 for row in table)  # type: ignore[operator]


# ---- end to end on synthetic data ---------------------------------------------------------------


def _idx(path: Path, arr: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    path.write_bytes(header + arr.astype(np.uint8).tobytes())


def _write_mnist(d: Path, n_train: int, n_test: int) -> None:
    rng = np.random.default_rng(0)
    d.mkdir(parents=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        _idx(d / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _idx(d / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)


def _write_cifar(d: Path, per_batch: int, n_test: int) -> None:
    """CIFAR-10 python batches: pickled dicts with b'data' (N, 3072) uint8 and b'labels'."""
    rng = np.random.default_rng(0)
    d.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        n = n_test if name == "test_batch" else per_batch
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"labels": [int(v) for v in rng.integers(0, 10, n)]}
        (d / name).write_bytes(pickle.dumps(batch, protocol=2))


def _check_report(out: Path, projected: list[str], layers: int, excluded: list[str],
                  family: str) -> dict[str, object]:
    report = json.loads((out / "report.json").read_text())
    sym = report["symmetric"]
    assert sym["family"] == family
    assert [p["layer"] for p in sym["projections"]] == projected
    assert sym["symmetric_layers"] == projected
    assert [k for k, ok in sym["check"].items() if ok] == projected  # the others are random
    assert len(sym["check"]) == layers and sym["excluded"] == excluded
    assert report["symmetric_layers"] == f"{len(projected)}/{layers}"
    for p in sym["projections"]:
        assert 0.0 < p["relative_error"] < 1.0 and "val_accuracy_after" in p
    md = (out / "report.md").read_text()
    assert "## Symmetric kernels" in md and f"(symmetric.exclude): {', '.join(excluded)}" in md
    return report  # type: ignore[no-any-return]


@pytest.mark.slow
def test_mnist_symmetric_end_to_end(tmp_path: Path) -> None:
    """Two epochs, projections at the starts of epochs 0 and 1 (the hardware stage is left to
    the compile test above and to tests/hardware: its simulator's JIT alone takes seconds)."""
    _write_mnist(tmp_path / "mnist", 48, 8)
    r = load_recipe(MNIST, ["train.epochs=2", "symmetric.start_epoch=0", "symmetric.every=1",
                            "symmetric.patience=0", "data.batch_size=16", "data.val_fraction=0.25",
                            "hardware=null"])
    run_recipe(r, tmp_path / "run", data_dir=str(tmp_path / "mnist"), progress=False)
    report = _check_report(tmp_path / "run", ["conv0", "conv1"], 5, ["conv3", "conv4"],
                           "masked")  # the recipe trains with after: tie-masked
    assert report["test_examples"] == 8 and "hardware" not in report


@pytest.mark.slow
def test_cifar10_symmetric_end_to_end(tmp_path: Path) -> None:
    """One epoch of the full 16-layer network on 5 × 4 synthetic images (without the hardware
    stage: the duplicate-axons program has about 14,000 cores)."""
    _write_cifar(tmp_path / "cifar", 4, 4)
    r = load_recipe(CIFAR, ["train.epochs=1", "symmetric.start_epoch=0", "symmetric.patience=0",
                            "data.batch_size=8", "data.val_fraction=0.25", "hardware=null"])
    run_recipe(r, tmp_path / "run", data_dir=str(tmp_path / "cifar"), progress=False)
    _check_report(tmp_path / "run", ["conv0"], 16, ["conv15"], "exact")
