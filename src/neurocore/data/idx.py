"""IDX files (the MNIST format), raw or gzip, and the two data sets stored in it.

An IDX file is a header then the values, big-endian::

    00 00 | dtype byte | ndim byte | ndim x uint32 dims | prod(dims) values

A file is taken as gzip when its first two bytes are 1f 8b, whatever its name. Every problem with a
file is one :class:`DataError` that names the file and says what was expected and what was found.

Data sets:

- ``mnist``: the four files in the MNIST naming, looked for in the ``data_dir`` argument, then in
  ``$NEUROCORE_DATA``, then in ``./data/mnist`` (each as given or its ``mnist`` subfolder).
- ``idx:<dir>``: the same four names in exactly ``<dir>`` (Fashion-MNIST, KMNIST, ...); the number
  of classes is the largest label plus one.

A folder that holds a ``SHA256SUMS`` file (``sha256sum`` format) has the files we read checked
against it.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, cast

import numpy as np
import torch

from neurocore.data import register_dataset
from neurocore.data.base import Dataset, DatasetInfo, Split
from neurocore.errors import DataError

IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(np.int16),
    0x0C: np.dtype(np.int32),
    0x0D: np.dtype(np.float32),
    0x0E: np.dtype(np.float64),
}
_DTYPE_LIST = ", ".join(f"0x{code:02X} ({dt.name})" for code, dt in IDX_DTYPES.items())
_GZIP_MAGIC = b"\x1f\x8b"

# The MNIST file names, in the order (train images, train labels, test images, test labels).
MNIST_STEMS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
MNIST_EXPECTED = tuple(f"{stem}[.gz]" for stem in MNIST_STEMS)
DATA_ENV = "NEUROCORE_DATA"


# --------------------------------------------------------------------------------------------
# Reading one IDX file
# --------------------------------------------------------------------------------------------


@contextmanager
def _open_stream(path: Path) -> Iterator[tuple[BinaryIO, bool]]:
    """Yield ``(stream, is_gzip)``; the gzip magic bytes 1f 8b decide, not the name."""
    try:
        raw = path.open("rb")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found (expected an IDX file, raw or gzip)") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, expected an IDX file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot open: {e.strerror}") from None
    with raw:
        is_gzip = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        if is_gzip:
            with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
                yield cast(BinaryIO, gz), True
        else:
            yield raw, False


def _read(stream: BinaryIO, n: int, path: Path, is_gzip: bool) -> bytes:
    """``stream.read(n)`` (all when n < 0) with gzip and I/O failures turned into DataError."""
    try:
        return stream.read(n)
    except (OSError, EOFError, zlib.error) as e:
        if is_gzip:
            raise DataError(
                f"{path}: corrupt or truncated gzip stream (expected a complete gzip file "
                f"after the magic bytes 1f 8b): {e}"
            ) from None
        raise DataError(f"{path}: cannot read: {e}") from None


def _read_header(stream: BinaryIO, path: Path, is_gzip: bool) -> tuple[np.dtype, tuple[int, ...]]:
    where = " (after gzip decompression)" if is_gzip else ""
    head = _read(stream, 4, path, is_gzip)
    if len(head) >= 2 and head[:2] != b"\x00\x00":
        expected = "00 00" if is_gzip else "00 00 (IDX) or 1f 8b (gzip)"
        raise DataError(
            f"{path}: not an IDX file: first two bytes{where} are {head[:2].hex(' ')}, "
            f"expected {expected}"
        )
    if len(head) < 4:
        raise DataError(
            f"{path}: IDX header truncated{where}: expected 4 bytes (00 00, dtype, ndim), "
            f"found {len(head)}"
        )
    code, ndim = head[2], head[3]
    if code not in IDX_DTYPES:
        raise DataError(
            f"{path}: unknown IDX dtype byte 0x{code:02X}, expected one of {_DTYPE_LIST}"
        )
    dims_bytes = _read(stream, 4 * ndim, path, is_gzip)
    if len(dims_bytes) < 4 * ndim:
        raise DataError(
            f"{path}: IDX header truncated{where}: ndim={ndim} needs {4 * ndim} bytes of "
            f"dimensions, found {len(dims_bytes)}"
        )
    shape = tuple(int(d) for d in np.frombuffer(dims_bytes, dtype=">u4"))
    return IDX_DTYPES[code], shape


def read_idx_header(path: str | os.PathLike[str]) -> tuple[np.dtype, tuple[int, ...]]:
    """The ``(dtype, shape)`` of an IDX file, reading only its header."""
    path = Path(path)
    with _open_stream(path) as (stream, is_gzip):
        return _read_header(stream, path, is_gzip)


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a whole IDX file (raw or gzip) into a native-byte-order array of the header's shape."""
    path = Path(path)
    with _open_stream(path) as (stream, is_gzip):
        dtype, shape = _read_header(stream, path, is_gzip)
        payload = _read(stream, -1, path, is_gzip)
    where = " (after gzip decompression)" if is_gzip else ""
    expected = math.prod(shape) * dtype.itemsize
    if len(payload) < expected:
        raise DataError(
            f"{path}: IDX data truncated{where}: shape {shape} of {dtype.name} needs "
            f"{expected} bytes, found {len(payload)}"
        )
    if len(payload) > expected:
        raise DataError(
            f"{path}: {len(payload) - expected} unexpected trailing bytes{where}: shape {shape} "
            f"of {dtype.name} needs {expected} bytes, found {len(payload)}"
        )
    big = np.frombuffer(payload, dtype=dtype.newbyteorder(">"), count=math.prod(shape))
    return big.reshape(shape).astype(dtype.newbyteorder("="))  # copy: writable, native order


def read_idx_pair(
    images_path: str | os.PathLike[str],
    labels_path: str | os.PathLike[str],
    num_classes: int | None = None,
) -> Split:
    """Images ``(N, H, W)`` uint8 and labels ``(N,)`` uint8 as a Split ``(N, 1, H, W)`` / int64."""
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(
            f"{images_path}: expected 3-D uint8 images (N, H, W), found {images.ndim}-D "
            f"{images.dtype.name} of shape {images.shape}"
        )
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DataError(
            f"{labels_path}: expected 1-D uint8 labels (N,), found {labels.ndim}-D "
            f"{labels.dtype.name} of shape {labels.shape}"
        )
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{images_path} has {images.shape[0]} images but {labels_path} has "
            f"{labels.shape[0]} labels; expected equal counts"
        )
    if num_classes is not None and labels.size > 0 and int(labels.max()) >= num_classes:
        bad = int(np.argmax(labels >= num_classes))
        raise DataError(
            f"{labels_path}: label {int(labels[bad])} at index {bad} is out of range, "
            f"expected 0..{num_classes - 1}"
        )
    x = torch.from_numpy(images).unsqueeze(1)  # (N, 1, H, W) uint8
    y = torch.from_numpy(labels).to(torch.int64)  # (N,)
    return Split(x, y)


# --------------------------------------------------------------------------------------------
# Checksums
# --------------------------------------------------------------------------------------------

_SUM_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")


def _read_sha256sums(sums_path: Path) -> dict[str, str]:
    try:
        text = sums_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{sums_path}: cannot read checksum file: {e}") from None
    sums: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _SUM_LINE.match(line.rstrip("\r"))
        if match is None:
            raise DataError(
                f"{sums_path}:{lineno}: expected '<64 hex digits>  <file name>', found {line!r}"
            )
        name = match.group(2).removeprefix("./")
        sums[name] = match.group(1).lower()
    return sums


def verify_sha256sums(directory: str | os.PathLike[str], filenames: Iterable[str]) -> None:
    """Check the named files against ``<directory>/SHA256SUMS`` when there is one.

    Files the checksum file does not list are not checked; with no SHA256SUMS nothing is.
    """
    directory = Path(directory)
    sums_path = directory / "SHA256SUMS"
    if not sums_path.is_file():
        return
    sums = _read_sha256sums(sums_path)
    for name in filenames:
        if name not in sums:
            continue
        path = directory / name
        try:
            with path.open("rb") as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest()
        except OSError as e:
            raise DataError(f"{path}: cannot read to check its SHA-256: {e.strerror}") from None
        if digest != sums[name]:
            raise DataError(
                f"{path}: SHA-256 mismatch: {sums_path} lists {sums[name]}, file has {digest}"
            )


# --------------------------------------------------------------------------------------------
# Finding a data folder
# --------------------------------------------------------------------------------------------


def candidate_dirs(
    data_dir: str | None, default: str, subdirs: Sequence[str]
) -> list[tuple[Path, str]]:
    """Folders to search, in order, each with where it came from.

    The bases are ``data_dir``, then ``$NEUROCORE_DATA`` (read now, at call time), then
    ``default``; each base is tried as given and then with each of ``subdirs`` appended.
    """
    bases: list[tuple[str, str]] = []
    if data_dir:
        bases.append((data_dir, "data_dir"))
    env = os.environ.get(DATA_ENV)
    if env:
        bases.append((env, f"${DATA_ENV}"))
    bases.append((default, "default"))
    out: list[tuple[Path, str]] = []
    seen: set[Path] = set()
    for base, source in bases:
        for d in (Path(base), *(Path(base) / s for s in subdirs)):
            if d not in seen:
                seen.add(d)
                out.append((d, source))
    return out


def find_data_dir(
    what: str,
    expected: Sequence[str],
    data_dir: str | None,
    default: str,
    subdirs: Sequence[str],
    find: Callable[[Path], tuple[list[Path], list[str]]],
) -> tuple[Path, list[Path]]:
    """The first candidate folder where ``find`` reports nothing missing, and its files.

    ``find(folder)`` returns ``(found_files, missing_names)``; ``expected`` names all the files
    for the error message. When no folder has everything, the DataError lists every folder tried
    with what it lacks.
    """
    tried: list[str] = []
    for d, source in candidate_dirs(data_dir, default, subdirs):
        found, missing = find(d)
        if not missing:
            return d, found
        lack = "folder does not exist" if not d.is_dir() else "lacks " + ", ".join(missing)
        tried.append(f"  {d} (from {source}): {lack}")
    raise DataError(
        f"{what} not found: expected the files {', '.join(expected)}; looked in (data_dir, "
        f"then ${DATA_ENV}, then {default}):\n"
        + "\n".join(tried)
        + f"\nPass --data-dir or set ${DATA_ENV} to a folder that holds them."
    )


def _find_mnist_files(directory: Path) -> tuple[list[Path], list[str]]:
    """The four MNIST files in ``directory`` (``.gz`` preferred over raw) and those missing."""
    found: list[Path] = []
    missing: list[str] = []
    for stem in MNIST_STEMS:
        for name in (stem + ".gz", stem):
            if (directory / name).is_file():
                found.append(directory / name)
                break
        else:
            missing.append(f"{stem}[.gz]")
    return found, missing


# --------------------------------------------------------------------------------------------
# Data sets: mnist and idx:<dir>
# --------------------------------------------------------------------------------------------


def _image_shape(images_path: Path) -> tuple[int, int, int]:
    dtype, shape = read_idx_header(images_path)
    if len(shape) != 3 or dtype != np.uint8:
        raise DataError(
            f"{images_path}: expected 3-D uint8 images (N, H, W), found {len(shape)}-D "
            f"{dtype.name} of shape {shape}"
        )
    return (1, shape[1], shape[2])


def _read_idx_dir(
    directory: Path, files: list[Path], num_classes: int | None
) -> tuple[Split, Split]:
    verify_sha256sums(directory, [f.name for f in files])
    train_images, train_labels, test_images, test_labels = files
    train = read_idx_pair(train_images, train_labels, num_classes)
    test = read_idx_pair(test_images, test_labels, num_classes)
    if train.images.shape[1:] != test.images.shape[1:]:
        raise DataError(
            f"{test_images}: images are {tuple(test.images.shape[2:])}, but {train_images} "
            f"has {tuple(train.images.shape[2:])}; expected the same size"
        )
    return train, test


def _find_mnist_dir(data_dir: str | None) -> tuple[Path, list[Path]]:
    return find_data_dir(
        "MNIST files", MNIST_EXPECTED, data_dir, "data/mnist", ["mnist"], _find_mnist_files
    )


def mnist_info(data_dir: str | None) -> DatasetInfo:
    _, files = _find_mnist_dir(data_dir)
    return DatasetInfo("mnist", _image_shape(files[0]), num_classes=10, max_value=255)


@register_dataset("mnist", info=mnist_info)
def load_mnist(data_dir: str | None) -> Dataset:
    directory, files = _find_mnist_dir(data_dir)
    train, test = _read_idx_dir(directory, files, num_classes=10)
    input_shape = (1, int(train.images.shape[2]), int(train.images.shape[3]))
    return Dataset(DatasetInfo("mnist", input_shape, 10, 255), train, test)


def _idx_dir_files(directory: str) -> tuple[Path, list[Path]]:
    if not directory:
        raise DataError("dataset 'idx:' needs a folder, e.g. 'idx:data/fashion-mnist'")
    d = Path(directory)
    found, missing = _find_mnist_files(d)
    if missing:
        lack = "folder does not exist" if not d.is_dir() else "lacks " + ", ".join(missing)
        raise DataError(
            f"idx:{directory}: {d} {lack}; expected the four files " + ", ".join(MNIST_EXPECTED)
        )
    return d, found


def idx_dir_info(directory: str) -> DatasetInfo:
    """Info for ``idx:<directory>``: image size from the header, classes from the labels."""
    _, files = _idx_dir_files(directory)
    labels = [read_idx(files[1]), read_idx(files[3])]
    num_classes = max((int(y.max()) + 1 for y in labels if y.size > 0), default=0)
    if num_classes == 0:
        raise DataError(f"idx:{directory}: the label files hold no labels")
    return DatasetInfo(f"idx:{directory}", _image_shape(files[0]), num_classes, 255)


def load_idx_dir(directory: str) -> Dataset:
    """The data set ``idx:<directory>``: MNIST-named IDX files in exactly that folder."""
    d, files = _idx_dir_files(directory)
    train, test = _read_idx_dir(d, files, num_classes=None)
    num_classes = max((int(s.labels.max()) + 1 for s in (train, test) if len(s) > 0), default=0)
    if num_classes == 0:
        raise DataError(f"idx:{directory}: the label files hold no labels")
    input_shape = (1, int(train.images.shape[2]), int(train.images.shape[3]))
    return Dataset(DatasetInfo(f"idx:{directory}", input_shape, num_classes, 255), train, test)
