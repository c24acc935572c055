"""Fixtures for the data tests: an IDX writer written independently of the reader, tiny MNIST-named
folders, and the real MNIST files in the shared folder next to the repository."""

from __future__ import annotations

import gzip
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

# ../shared/data/mnist relative to the repository root: the real gzip files and their SHA256SUMS.
REAL_MNIST = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist"

IDX_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}
MNIST_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def idx_bytes(arr: np.ndarray) -> bytes:
    """The IDX encoding of ``arr``, by struct: 00 00 dtype ndim, >u4 dims, big-endian values."""
    code = IDX_CODES[arr.dtype]
    header = struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes(order="C")


def write_idx(path: Path, arr: np.ndarray, gz: bool = False) -> Path:
    data = idx_bytes(arr)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


MnistArrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def write_mnist_dir(
    directory: Path,
    *,
    h: int = 4,
    w: int = 5,
    n_train: int = 6,
    n_test: int = 3,
    max_label: int = 9,
    gz: bool = True,
    seed: int = 0,
) -> MnistArrays:
    """A tiny MNIST-named folder; returns (train_x, train_y, test_x, test_y) as written."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    train_x = rng.integers(0, 256, size=(n_train, h, w), dtype=np.uint8)
    train_y = (np.arange(n_train) % (max_label + 1)).astype(np.uint8)
    train_y[-1] = max_label
    test_x = rng.integers(0, 256, size=(n_test, h, w), dtype=np.uint8)
    test_y = (np.arange(n_test)[::-1] % (max_label + 1)).astype(np.uint8)
    for name, arr in zip(MNIST_NAMES, (train_x, train_y, test_x, test_y), strict=True):
        write_idx(directory / (name + (".gz" if gz else "")), arr, gz=gz)
    return train_x, train_y, test_x, test_y


@pytest.fixture(scope="session")
def real_mnist() -> Path:
    if not (REAL_MNIST / "SHA256SUMS").is_file():
        # CI and every developer have ../shared beside the checkout: a missing copy is a failure.
        pytest.fail(f"real MNIST files not found at {REAL_MNIST} (expected ../shared/data/mnist)")
    return REAL_MNIST


@pytest.fixture
def no_data_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty working folder and no $NEUROCORE_DATA, so only what a test sets up is found."""
    monkeypatch.delenv("NEUROCORE_DATA", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


# The helpers reach the tests as fixtures: test files never import conftest (a sibling
# tests/conftest.py would make `import conftest` ambiguous).


@pytest.fixture(scope="session")
def encode_idx() -> Callable[[np.ndarray], bytes]:
    return idx_bytes


@pytest.fixture(scope="session")
def idx_writer() -> Callable[..., Path]:
    return write_idx


@pytest.fixture(scope="session")
def mnist_dir_writer() -> Callable[..., MnistArrays]:
    return write_mnist_dir
