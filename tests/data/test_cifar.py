"""CIFAR-10 pickle batches, on a tiny synthetic folder written in exactly the real format."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from neurocore.data import DatasetInfo, dataset_info, load_dataset
from neurocore.errors import DataError

TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
ALL = [*TRAIN, "test_batch"]


def _batch(rng: np.random.Generator, n: int, name: str) -> dict[bytes, object]:
    return {
        b"batch_label": f"{name} of 5".encode(),
        b"labels": [int(v) for v in rng.integers(0, 10, size=n)],
        b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }


def _write(path: Path, obj: object) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=2))


def write_cifar(directory: Path) -> dict[str, dict[bytes, object]]:
    """Five train batches of 4 images and a test batch of 3; returns what was written."""
    rng = np.random.default_rng(0)
    directory.mkdir(parents=True, exist_ok=True)
    batches = {name: _batch(rng, 3 if name == "test_batch" else 4, name) for name in ALL}
    for name, batch in batches.items():
        _write(directory / name, batch)
    return batches


def _data(batch: dict[bytes, object]) -> np.ndarray:
    data = batch[b"data"]
    assert isinstance(data, np.ndarray)
    return data


def _labels(batch: dict[bytes, object]) -> list[int]:
    labels = batch[b"labels"]
    assert isinstance(labels, list)
    return labels


@pytest.fixture
def cifar_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("NEUROCORE_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "c"


def test_load_and_pixel_placement(cifar_dir: Path) -> None:
    batches = write_cifar(cifar_dir)
    ds = load_dataset("cifar10", data_dir=str(cifar_dir))
    assert ds.info == DatasetInfo("cifar10", (3, 32, 32), 10, 255)
    assert ds.train.images.shape == (20, 3, 32, 32) and ds.test.images.shape == (3, 3, 32, 32)
    assert ds.train.images.dtype == torch.uint8 and ds.train.labels.dtype == torch.int64
    d1 = _data(batches["data_batch_1"])
    # Pixel (row 1, col 2) of image 0: R at 1*32+2, G 1024 later, B 2048 later.
    assert int(ds.train.images[0, 0, 1, 2]) == int(d1[0, 34])
    assert int(ds.train.images[0, 1, 1, 2]) == int(d1[0, 1024 + 34])
    assert int(ds.train.images[0, 2, 1, 2]) == int(d1[0, 2048 + 34])
    assert int(ds.train.images[0, 0, 2, 1]) == int(d1[0, 65])  # not transposed
    # Every pixel of train image 5 (batch 2, image 1) and test image 2, by the format's formula.
    for got, data, i in (
        (ds.train.images[5], _data(batches["data_batch_2"]), 1),
        (ds.test.images[2], _data(batches["test_batch"]), 2),
    ):
        expected = [
            [[int(data[i, c * 1024 + r * 32 + k]) for k in range(32)] for r in range(32)]
            for c in range(3)
        ]
        assert got.tolist() == expected
    train_labels = [y for n in TRAIN for y in _labels(batches[n])]
    assert ds.train.labels.tolist() == train_labels
    assert ds.test.labels.tolist() == _labels(batches["test_batch"])


def test_python2_style_global_and_meta_file(cifar_dir: Path) -> None:
    # The real files name numpy.core.multiarray._reconstruct; batches.meta may be there or not.
    batches = write_cifar(cifar_dir)
    blob = pickle.dumps(batches["test_batch"], protocol=2)
    assert b"numpy._core.multiarray" in blob
    (cifar_dir / "test_batch").write_bytes(
        blob.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    )
    _write(cifar_dir / "batches.meta", {b"label_names": [b"airplane"], b"num_cases_per_batch": 4})
    ds = load_dataset("cifar10", data_dir=str(cifar_dir))
    expected = torch.from_numpy(_data(batches["test_batch"]))  # (3, 3072)
    assert torch.equal(ds.test.images.reshape(3, 3072), expected)


@pytest.mark.parametrize("layout", ["cifar-10-batches-py", "cifar10"])
def test_folder_search(cifar_dir: Path, monkeypatch: pytest.MonkeyPatch, layout: str) -> None:
    write_cifar(cifar_dir / layout)
    assert len(load_dataset("cifar10", data_dir=str(cifar_dir)).train) == 20
    monkeypatch.setenv("NEUROCORE_DATA", str(cifar_dir))
    assert dataset_info("cifar10").name == "cifar10"
    assert len(load_dataset("cifar10").test) == 3


def test_default_folder_and_missing_everywhere(cifar_dir: Path, tmp_path: Path) -> None:
    expected = "CIFAR-10 batches not found: expected the files data_batch_1, .*, test_batch"
    with pytest.raises(DataError, match=expected) as err:
        dataset_info("cifar10", data_dir=str(cifar_dir))
    msg = str(err.value)
    for place in (cifar_dir, cifar_dir / "cifar-10-batches-py", Path("data/cifar10")):
        assert f"{place} (from " in msg
    write_cifar(tmp_path / "data" / "cifar10" / "cifar-10-batches-py")  # cwd is tmp_path
    assert len(load_dataset("cifar10").train) == 20


def test_missing_batch_file(cifar_dir: Path) -> None:
    write_cifar(cifar_dir)
    (cifar_dir / "data_batch_3").unlink()
    with pytest.raises(DataError, match=r"(?m)c \(from data_dir\): lacks data_batch_3$"):
        load_dataset("cifar10", data_dir=str(cifar_dir))


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_forbidden_global_is_refused_not_run(cifar_dir: Path, tmp_path: Path) -> None:
    write_cifar(cifar_dir)
    marker = tmp_path / "pwned"
    _write(cifar_dir / "data_batch_2", {b"data": _Evil(marker), b"labels": [0]})
    with pytest.raises(DataError, match=r"data_batch_2: pickle refers to (posix|os)\.system"):
        load_dataset("cifar10", data_dir=str(cifar_dir))
    assert not marker.exists()


def _bad_batches() -> list[tuple[str, object, str]]:
    rng = np.random.default_rng(1)
    ok = _batch(rng, 4, "x")
    data = _data(ok)
    return [
        ("wrong-keys", {b"data": data, b"label": ok[b"labels"]}, "keys b'data' and b'labels'"),
        ("not-a-dict", [data], r"expected a dict .* found list"),
        ("wrong-shape", {**ok, b"data": data[:, :3000]}, r"\(N, 3072\), found uint8 of shape"),
        ("wrong-dtype", {**ok, b"data": data.astype(np.float32)}, r"found float32"),
        ("count-mismatch", {**ok, b"labels": [1, 2, 3]}, r"4 images in b'data' but 3 b'labels'"),
        ("label-10", {**ok, b"labels": [1, 2, 10, 3]}, r"label 10 at index 2 .*0..9"),
        ("label-negative", {**ok, b"labels": [-1, 2, 1, 3]}, r"label -1 at index 0"),
        ("labels-not-ints", {**ok, b"labels": [b"a", b"b", b"c", b"d"]}, r"flat list of ints"),
        ("builtins-eval", b"\x80\x02cbuiltins\neval\nq\x00.", r"refers to builtins\.eval"),
        ("garbage", b"this is not a pickle", r"not a readable CIFAR-10 batch pickle"),
    ]


BAD_BATCHES = _bad_batches()


@pytest.mark.parametrize(("case", "content", "match"), BAD_BATCHES, ids=[b[0] for b in BAD_BATCHES])
def test_bad_batch(cifar_dir: Path, case: str, content: object, match: str) -> None:
    write_cifar(cifar_dir)
    if isinstance(content, bytes):
        (cifar_dir / "test_batch").write_bytes(content)
    else:
        _write(cifar_dir / "test_batch", content)
    with pytest.raises(DataError, match=match) as err:
        load_dataset("cifar10", data_dir=str(cifar_dir))
    assert str(cifar_dir / "test_batch") in str(err.value)


def test_truncated_pickle(cifar_dir: Path) -> None:
    write_cifar(cifar_dir)
    blob = (cifar_dir / "data_batch_4").read_bytes()
    (cifar_dir / "data_batch_4").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match=r"data_batch_4: not a readable CIFAR-10 batch pickle"):
        load_dataset("cifar10", data_dir=str(cifar_dir))


def test_sha256sums_checked(cifar_dir: Path) -> None:
    write_cifar(cifar_dir)
    digest = hashlib.sha256((cifar_dir / "data_batch_1").read_bytes()).hexdigest()
    (cifar_dir / "SHA256SUMS").write_text(f"{digest}  data_batch_1\n{'0' * 64}  test_batch\n")
    with pytest.raises(DataError, match=r"test_batch: SHA-256 mismatch"):
        load_dataset("cifar10", data_dir=str(cifar_dir))
