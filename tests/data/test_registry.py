"""The registry, the MNIST data sets (real files, folder search order, idx:<dir>) and the stratified
validation hold-out."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import neurocore.data as data_mod
from neurocore.data import (
    Dataset,
    DatasetInfo,
    Split,
    available_datasets,
    dataset_info,
    load_dataset,
    register_dataset,
    validation_split,
)
from neurocore.data import base as data_base
from neurocore.errors import DataError

WriteMnist = Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
MNIST_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


# ---- registry -----------------------------------------------------------------------------------


def test_available_and_reexports() -> None:
    assert available_datasets() == ["cifar10", "digits", "mnist"]
    assert Dataset is data_base.Dataset and Split is data_base.Split
    assert DatasetInfo is data_base.DatasetInfo


@pytest.mark.parametrize("spec", ["MNIST", "fashion", "", "idx"])
def test_unknown_spec_lists_the_choices(spec: str) -> None:
    for call in (load_dataset, dataset_info):
        with pytest.raises(DataError, match=f"unknown dataset '{spec}'") as err:
            call(spec)
        assert "cifar10, digits, mnist" in str(err.value) and "idx:<dir>" in str(err.value)


def test_register_a_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data_mod, "_REGISTRY", dict(data_mod._REGISTRY))
    info = DatasetInfo("toy", (1, 1, 2), 2, 1)
    empty = Split(torch.zeros(0, 1, 1, 2, dtype=torch.uint8), torch.zeros(0, dtype=torch.int64))
    seen: list[str | None] = []

    @register_dataset("toy", info=lambda d: info)
    def load_toy(data_dir: str | None) -> Dataset:
        seen.append(data_dir)
        return Dataset(info, empty, empty)

    assert "toy" in available_datasets()
    assert load_dataset("toy", data_dir="somewhere").info is info and seen == ["somewhere"]
    assert dataset_info("toy") is info
    with pytest.raises(ValueError, match="already registered"):
        register_dataset("toy", info=lambda d: info)(load_toy)
    with pytest.raises(ValueError, match="reserved prefix"):
        register_dataset("idx:x", info=lambda d: info)


# ---- real MNIST ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist(real_mnist: Path) -> Dataset:
    return load_dataset("mnist", data_dir=str(real_mnist))


def test_mnist_counts_shapes_dtypes(mnist: Dataset) -> None:
    assert mnist.info == DatasetInfo("mnist", (1, 28, 28), 10, 255)
    assert mnist.train.images.shape == (60000, 1, 28, 28)
    assert mnist.test.images.shape == (10000, 1, 28, 28)
    assert mnist.train.images.dtype == torch.uint8 and mnist.train.labels.dtype == torch.int64
    assert int(mnist.train.images.max()) == 255 and int(mnist.train.images.min()) == 0


def test_mnist_pinned_values(mnist: Dataset) -> None:
    # Published facts about MNIST, not values computed by this reader.
    assert mnist.train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert mnist.test.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert torch.bincount(mnist.train.labels).tolist() == [
        5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949
    ]
    assert torch.bincount(mnist.test.labels).tolist() == [
        980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009
    ]
    # Row 5 of the first training image (the "5"), as printed in countless tutorials.
    assert mnist.train.images[0, 0, 5, 12:24].tolist() == [
        3, 18, 18, 18, 126, 136, 175, 26, 166, 255, 247, 127
    ]
    x = mnist.train.float_images(255)
    assert abs(float(x.mean()) - 0.1307) < 1e-4 and abs(float(x.std()) - 0.3081) < 1e-4


def test_mnist_images_line_up_with_labels(mnist: Dataset) -> None:
    # Nearest class mean on raw pixels gets about 82 % on MNIST; misaligned labels would give 10 %.
    x = mnist.train.images.flatten(1).to(torch.float32)  # (60000, 784)
    sums = torch.zeros(10, 784).index_add_(0, mnist.train.labels, x)
    means = sums / torch.bincount(mnist.train.labels).unsqueeze(1)  # (10, 784)
    xt = mnist.test.images.flatten(1).to(torch.float32)  # (10000, 784)
    accuracy = (torch.cdist(xt, means).argmin(1) == mnist.test.labels).float().mean()
    assert 0.81 < float(accuracy) < 0.83


def test_mnist_info_and_parent_folder(real_mnist: Path, no_data_env: Path) -> None:
    # The folder that holds mnist/ works too, and info reads only headers.
    assert dataset_info("mnist", data_dir=str(real_mnist.parent)) == DatasetInfo(
        "mnist", (1, 28, 28), 10, 255
    )


# ---- where mnist is found -----------------------------------------------------------------------


def _height(data_dir: str | None = None) -> int:
    ds = load_dataset("mnist", data_dir=data_dir)
    assert dataset_info("mnist", data_dir=data_dir) == ds.info
    return ds.info.input_shape[1]


def test_search_order(
    tmp_path: Path, no_data_env: Path, mnist_dir_writer: WriteMnist, monkeypatch: pytest.MonkeyPatch
) -> None:
    mnist_dir_writer(tmp_path / "arg", h=3)
    mnist_dir_writer(tmp_path / "env", h=5)
    mnist_dir_writer(no_data_env / "data" / "mnist", h=7)
    monkeypatch.setenv("NEUROCORE_DATA", str(tmp_path / "env"))  # set after import: read per call
    assert _height(str(tmp_path / "arg")) == 3  # data_dir first
    assert _height(None) == 5  # then $NEUROCORE_DATA
    (tmp_path / "empty").mkdir()
    assert _height(str(tmp_path / "empty")) == 5  # a data_dir without the files falls through
    monkeypatch.delenv("NEUROCORE_DATA")
    assert _height(None) == 7  # then ./data/mnist


def test_mnist_subfolder_raw_files_and_gz_first(
    tmp_path: Path, no_data_env: Path, mnist_dir_writer: WriteMnist, monkeypatch: pytest.MonkeyPatch
) -> None:
    mnist_dir_writer(tmp_path / "base" / "mnist", h=4, gz=False)
    assert _height(str(tmp_path / "base")) == 4
    monkeypatch.setenv("NEUROCORE_DATA", str(tmp_path / "base"))
    assert _height(None) == 4
    mnist_dir_writer(tmp_path / "base" / "mnist", h=6, gz=True)  # .gz beside raw: .gz wins
    assert _height(None) == 6


def test_mnist_content(tmp_path: Path, no_data_env: Path, mnist_dir_writer: WriteMnist) -> None:
    train_x, train_y, test_x, test_y = mnist_dir_writer(tmp_path / "m", h=4, w=5)
    ds = load_dataset("mnist", data_dir=str(tmp_path / "m"))
    assert ds.info == DatasetInfo("mnist", (1, 4, 5), 10, 255)
    assert torch.equal(ds.train.images, torch.from_numpy(train_x).unsqueeze(1))
    assert torch.equal(ds.test.images, torch.from_numpy(test_x).unsqueeze(1))
    assert ds.train.labels.tolist() == train_y.tolist()
    assert ds.test.labels.tolist() == test_y.tolist()


def test_mnist_missing_everywhere(
    tmp_path: Path, no_data_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEUROCORE_DATA", str(tmp_path / "env"))
    for call in (load_dataset, dataset_info):
        with pytest.raises(DataError, match="MNIST files not found") as err:
            call("mnist", data_dir=str(tmp_path / "arg"))
        msg = str(err.value)
        for place in ("arg", "arg/mnist", "env", "env/mnist"):
            assert f"{tmp_path / place} (from " in msg
        assert "data/mnist (from default)" in msg
        for name in MNIST_NAMES:
            assert f"{name}[.gz]" in msg


def test_mnist_partial_folder_says_what_is_missing(
    tmp_path: Path, no_data_env: Path, mnist_dir_writer: WriteMnist
) -> None:
    mnist_dir_writer(tmp_path / "m")
    (tmp_path / "m" / "t10k-labels-idx1-ubyte.gz").unlink()
    expected = r"(?m)m \(from data_dir\): lacks t10k-labels-idx1-ubyte\[\.gz\]$"
    with pytest.raises(DataError, match=expected):
        load_dataset("mnist", data_dir=str(tmp_path / "m"))


def test_mnist_info_reads_only_headers(
    tmp_path: Path, no_data_env: Path, mnist_dir_writer: WriteMnist
) -> None:
    mnist_dir_writer(tmp_path / "m", h=4, w=5, gz=False)
    images = tmp_path / "m" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-1])  # pixels cut short, header intact
    assert dataset_info("mnist", data_dir=str(tmp_path / "m")).input_shape == (1, 4, 5)
    with pytest.raises(DataError, match="data truncated"):
        load_dataset("mnist", data_dir=str(tmp_path / "m"))


def test_mnist_rejects_label_10_and_checks_sha256(
    tmp_path: Path, no_data_env: Path, mnist_dir_writer: WriteMnist
) -> None:
    mnist_dir_writer(tmp_path / "big", max_label=10)
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.gz: label 10 .*expected 0..9"):
        load_dataset("mnist", data_dir=str(tmp_path / "big"))
    mnist_dir_writer(tmp_path / "sums")
    (tmp_path / "sums" / "SHA256SUMS").write_text("0" * 64 + "  t10k-images-idx3-ubyte.gz\n")
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz: SHA-256 mismatch"):
        load_dataset("mnist", data_dir=str(tmp_path / "sums"))


# ---- idx:<dir> ----------------------------------------------------------------------------------


def test_idx_dir(tmp_path: Path, no_data_env: Path, mnist_dir_writer: WriteMnist) -> None:
    train_x, train_y, _, test_y = mnist_dir_writer(tmp_path / "fashion", h=3, w=2, max_label=4)
    spec = f"idx:{tmp_path / 'fashion'}"
    ds = load_dataset(spec)
    assert ds.info == DatasetInfo(spec, (1, 3, 2), 5, 255)
    assert dataset_info(spec) == ds.info
    assert torch.equal(ds.train.images[:, 0], torch.from_numpy(train_x))
    assert ds.train.labels.tolist() == train_y.tolist()
    assert ds.test.labels.tolist() == test_y.tolist()


def test_idx_dir_is_exact(tmp_path: Path, no_data_env: Path, mnist_dir_writer: WriteMnist) -> None:
    mnist_dir_writer(tmp_path / "base" / "mnist")
    spec = f"idx:{tmp_path / 'base'}"
    for call in (load_dataset, dataset_info):
        with pytest.raises(DataError, match="lacks train-images-idx3-ubyte"):
            call(spec)
        with pytest.raises(DataError, match="folder does not exist"):
            call(f"idx:{tmp_path / 'nowhere'}")
        with pytest.raises(DataError, match="needs a folder"):
            call("idx:")


# ---- validation_split ---------------------------------------------------------------------------


def _indexed_split(labels: list[int]) -> Split:
    """A split whose image i encodes i, so that the parts can be traced back."""
    n = len(labels)
    idx = torch.arange(n)
    images = torch.stack([idx // 256, idx % 256], dim=1).to(torch.uint8).reshape(n, 1, 1, 2)
    return Split(images, torch.tensor(labels, dtype=torch.int64))


def _indices(split: Split) -> list[int]:
    flat = split.images.reshape(-1, 2).to(torch.int64)
    return (flat[:, 0] * 256 + flat[:, 1]).tolist()


def test_validation_split_sizes_and_strata() -> None:
    labels = [0] * 50 + [1] * 25 + [2] * 10 + [3] * 1
    split = _indexed_split(labels)
    rest, val = validation_split(split, 0.2, seed=0)
    assert torch.bincount(val.labels, minlength=4).tolist() == [10, 5, 2, 0]
    assert torch.bincount(rest.labels, minlength=4).tolist() == [40, 20, 8, 1]
    assert sorted(_indices(rest) + _indices(val)) == list(range(len(labels)))
    assert _indices(val) == sorted(_indices(val)) and _indices(rest) == sorted(_indices(rest))
    assert all(labels[i] == int(y) for i, y in zip(_indices(val), val.labels, strict=True))


def test_validation_split_deterministic_and_seeded() -> None:
    split = _indexed_split([i % 3 for i in range(300)])
    a = validation_split(split, 0.25, seed=7)
    b = validation_split(split, 0.25, seed=7)
    c = validation_split(split, 0.25, seed=8)
    assert torch.equal(a[1].images, b[1].images) and torch.equal(a[0].labels, b[0].labels)
    assert not torch.equal(a[1].images, c[1].images)
    assert len(c[1]) == len(a[1]) == 75


def test_validation_split_zero_and_bad_fractions() -> None:
    split = _indexed_split([0, 1, 0, 1])
    rest, val = validation_split(split, 0.0, seed=0)
    assert rest is split and len(val) == 0 and val.images.shape == (0, 1, 1, 2)
    for bad in (1.0, -0.1, 1.5, math.nan):
        with pytest.raises(DataError, match=r"must be in \[0, 1\)"):
            validation_split(split, bad, seed=0)


@settings(max_examples=40, deadline=None)
@given(
    labels=st.lists(st.integers(0, 4), min_size=1, max_size=80),
    fraction=st.floats(0.0, 0.95),
    seed=st.integers(0, 2**31),
)
def test_validation_split_property(labels: list[int], fraction: float, seed: int) -> None:
    split = _indexed_split(labels)
    rest, val = validation_split(split, fraction, seed)
    counts = np.bincount(labels, minlength=5)
    assert torch.bincount(val.labels, minlength=5).tolist() == [round(fraction * c) for c in counts]
    assert sorted(_indices(rest) + _indices(val)) == list(range(len(labels)))
