"""CIFAR-10 in its python-pickle batch format (``cifar-10-batches-py``).

The folder holds ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``; each is a pickled dict
with ``b'data'``, an ``(N, 3072)`` uint8 array whose row is 1024 red, then 1024 green, then 1024
blue values of a 32x32 image in row-major order, and ``b'labels'``, N ints in 0..9.
``batches.meta`` is not needed.

The folder is looked for in the ``data_dir`` argument, then ``$NEUROCORE_DATA``, then
``./data/cifar10``, each as given or with ``cifar-10-batches-py`` or ``cifar10`` appended.

Pickles can run arbitrary code, so the batches are read with an unpickler that resolves only the
few globals a numpy array needs and refuses everything else.
"""

from __future__ import annotations

import codecs
import importlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neurocore.data import register_dataset
from neurocore.data.base import Dataset, DatasetInfo, Split
from neurocore.data.idx import find_data_dir, verify_sha256sums
from neurocore.errors import DataError

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
CIFAR10_INFO = DatasetInfo("cifar10", input_shape=(3, 32, 32), num_classes=10, max_value=255)


def _reconstruct() -> Any:
    try:  # numpy >= 2 keeps it in numpy._core; numpy.core then only warns and forwards
        return importlib.import_module("numpy._core.multiarray")._reconstruct
    except ImportError:
        return importlib.import_module("numpy.core.multiarray")._reconstruct


# (module, name) -> object: the only globals a batch pickle may refer to.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct(),
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct(),
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,  # how protocol 2 stores bytes
}


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals in ``_ALLOWED``."""

    def __init__(self, file: Any, path: Path) -> None:
        super().__init__(file, encoding="bytes")
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            allowed = ", ".join(f"{m}.{n}" for m, n in _ALLOWED)
            raise DataError(
                f"{self.path}: pickle refers to {module}.{name}, which is not allowed in a "
                f"CIFAR-10 batch (allowed: {allowed}); refusing to load it"
            ) from None


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file as ``(images (N, 3, 32, 32) uint8, labels (N,) int64)``."""
    try:
        with path.open("rb") as f:
            batch = _BatchUnpickler(f, path).load()
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: file not found (expected a CIFAR-10 batch)") from None
    except Exception as e:  # a corrupt pickle can fail in many ways; all mean "bad file"
        raise DataError(
            f"{path}: not a readable CIFAR-10 batch pickle ({type(e).__name__}: {e})"
        ) from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        found = list(batch) if isinstance(batch, dict) else type(batch).__name__
        raise DataError(f"{path}: expected a dict with keys b'data' and b'labels', found {found}")
    data = batch[b"data"]
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or (data.shape[1] != 3072)
    ):
        found = (
            f"{data.dtype.name} of shape {data.shape}"
            if isinstance(data, np.ndarray)
            else type(data).__name__
        )
        raise DataError(f"{path}: b'data' should be a uint8 array (N, 3072), found {found}")
    try:
        labels = np.asarray(batch[b"labels"])
    except Exception as e:
        raise DataError(f"{path}: b'labels' is not a list of ints ({e})") from None
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"{path}: b'labels' should be a flat list of ints, found {labels.dtype.name} "
            f"of shape {labels.shape}"
        )
    if labels.shape[0] != data.shape[0]:
        raise DataError(
            f"{path}: {data.shape[0]} images in b'data' but {labels.shape[0]} b'labels'; "
            "expected equal counts"
        )
    bad = np.flatnonzero((labels < 0) | (labels > 9))
    if bad.size > 0:
        raise DataError(
            f"{path}: label {int(labels[bad[0]])} at index {int(bad[0])} is out of range, "
            "expected 0..9"
        )
    images = data.reshape(-1, 3, 32, 32)  # (N, 3072) -> (N, C, H, W): 1024 R, G, B, row-major
    return images, labels.astype(np.int64)


def _find_cifar_files(directory: Path) -> tuple[list[Path], list[str]]:
    names = (*TRAIN_BATCHES, TEST_BATCH)
    found = [directory / n for n in names if (directory / n).is_file()]
    missing = [n for n in names if not (directory / n).is_file()]
    return found, missing


def _find_cifar_dir(data_dir: str | None) -> Path:
    directory, _ = find_data_dir(
        "CIFAR-10 batches",
        (*TRAIN_BATCHES, TEST_BATCH),
        data_dir,
        "data/cifar10",
        ["cifar-10-batches-py", "cifar10"],
        _find_cifar_files,
    )
    return directory


def cifar10_info(data_dir: str | None) -> DatasetInfo:
    """Constant, after checking that the batch files are there (no pixels read)."""
    _find_cifar_dir(data_dir)
    return CIFAR10_INFO


def _split(paths: list[Path]) -> Split:
    parts = [read_batch(p) for p in paths]
    images = np.concatenate([x for x, _ in parts])  # (N, 3, 32, 32) uint8
    labels = np.concatenate([y for _, y in parts])  # (N,) int64
    return Split(torch.from_numpy(images), torch.from_numpy(labels))


@register_dataset("cifar10", info=cifar10_info)
def load_cifar10(data_dir: str | None) -> Dataset:
    directory = _find_cifar_dir(data_dir)
    verify_sha256sums(directory, [*TRAIN_BATCHES, TEST_BATCH])
    train = _split([directory / n for n in TRAIN_BATCHES])
    test = _split([directory / TEST_BATCH])
    return Dataset(CIFAR10_INFO, train, test)
