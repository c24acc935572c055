"""The IDX reader: byte-level golden cases, round trips, every corrupt-file case, checksums."""

from __future__ import annotations

import gzip
import hashlib
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from neurocore.data.idx import read_idx, read_idx_header, read_idx_pair, verify_sha256sums
from neurocore.errors import DataError

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]
WriteIdx = Callable[..., Path]


def _raises_data_error(path: Path, match: str) -> DataError:
    """read_idx(path) raises one DataError that names the file and matches ``match``."""
    with pytest.raises(DataError, match=match) as err:
        read_idx(path)
    assert str(path) in str(err.value)
    # The message stands alone: no chained numpy/zlib/gzip traceback shown under it.
    assert err.value.__cause__ is None
    assert err.value.__context__ is None or err.value.__suppress_context__
    return err.value


# ---- golden bytes -------------------------------------------------------------------------------


def test_golden_int16_big_endian(tmp_path: Path) -> None:
    # 00 00 | 0B (int16) | 02 (ndim) | 00000002 00000003 | six big-endian int16 values
    raw = bytes.fromhex("00000B02" "00000002" "00000003" "0001" "FFFE" "0102" "7FFF" "8000" "0000")
    path = tmp_path / "golden"
    path.write_bytes(raw)
    got = read_idx(path)
    assert got.dtype == np.int16 and got.dtype.isnative
    np.testing.assert_array_equal(got, np.array([[1, -2, 258], [32767, -32768, 0]], np.int16))


def test_golden_uint8_gzip_is_decided_by_magic_not_name(tmp_path: Path) -> None:
    raw = bytes.fromhex("00000803" "00000001" "00000002" "00000003") + bytes(range(6))
    gz_without_suffix = tmp_path / "images-idx3-ubyte"
    gz_without_suffix.write_bytes(gzip.compress(raw))
    raw_with_suffix = tmp_path / "images-idx3-ubyte.gz"
    raw_with_suffix.write_bytes(raw)
    expected = np.arange(6, dtype=np.uint8).reshape(1, 2, 3)
    np.testing.assert_array_equal(read_idx(gz_without_suffix), expected)
    np.testing.assert_array_equal(read_idx(raw_with_suffix), expected)


# ---- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_round_trip_extremes(tmp_path: Path, idx_writer: WriteIdx, dtype: type, gz: bool) -> None:
    dt = np.dtype(dtype)
    if dt.kind == "f":
        special = [0.0, -0.0, 1.5, -2.25, np.inf, -np.inf, np.nan, np.finfo(dt).max]
    else:
        special = [0, 1, -1 if dt.kind == "i" else 2, np.iinfo(dt).min, np.iinfo(dt).max]
    values = np.resize(np.array(special, dtype=dt), 2 * 3 * 5)
    arr = values.reshape(2, 3, 5)  # non-square so a wrong axis order shows
    got = read_idx(idx_writer(tmp_path / "f.idx", arr, gz=gz))
    assert got.dtype == dt and got.dtype.isnative and got.shape == (2, 3, 5)
    assert got.tobytes() == arr.tobytes()  # bit-exact, NaN and -0.0 included
    assert got.flags.writeable
    assert read_idx_header(tmp_path / "f.idx") == (dt, (2, 3, 5))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    arr=hnp.arrays(
        dtype=st.sampled_from(DTYPES),
        shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5),
    ),
    gz=st.booleans(),
)
def test_round_trip_property(idx_writer: WriteIdx, arr: np.ndarray, gz: bool) -> None:
    with tempfile.TemporaryDirectory() as d:
        got = read_idx(idx_writer(Path(d) / "x", arr, gz=gz))
    assert got.dtype == arr.dtype and got.shape == arr.shape
    assert got.tobytes() == arr.tobytes()


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=64), gz=st.booleans())
def test_arbitrary_bytes_give_an_array_or_a_data_error(data: bytes, gz: bool) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "fuzz"
        path.write_bytes(gzip.compress(data) if gz else data)
        try:
            read_idx(path)
        except DataError as e:
            assert str(path) in str(e)


@settings(max_examples=60, deadline=None)
@given(cut=st.integers(min_value=0), gz=st.booleans())
def test_every_truncation_is_a_data_error(
    encode_idx: Callable[[np.ndarray], bytes], cut: int, gz: bool
) -> None:
    full = encode_idx(np.arange(24, dtype=np.int32).reshape(2, 3, 4))
    data = gzip.compress(full) if gz else full
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "cut"
        path.write_bytes(data[: cut % len(data)])
        with pytest.raises(DataError, match=re.escape(str(path))):
            read_idx(path)


# ---- corrupt files ------------------------------------------------------------------------------

HEADER_U8_3x4 = bytes.fromhex("00000802" "00000003" "00000004")
CORRUPT_CASES = [
    ("empty", b"", r"header truncated: expected 4 bytes .* found 0"),
    ("short-magic", b"\x00\x00\x08", r"header truncated: expected 4 bytes .* found 3"),
    ("truncated-dims", bytes.fromhex("00000803" "00000002"), r"ndim=3 needs 12 bytes .*found 4"),
    ("bad-magic", bytes.fromhex("01000801" "00000001") + b"\x07", r"first two bytes are 01 00"),
    ("not-idx-nor-gzip", b"hello, world\n", r"68 65, expected 00 00 \(IDX\) or 1f 8b \(gzip\)"),
    ("unknown-dtype", bytes.fromhex("00000A01" "00000001") + b"\x07", r"dtype byte 0x0A"),
    ("truncated-data", HEADER_U8_3x4 + bytes(10), r"data truncated: .*needs 12 bytes, found 10"),
    ("trailing", HEADER_U8_3x4 + bytes(15), r"3 unexpected trailing bytes.*found 15"),
    ("gzip-magic-only", b"\x1f\x8b", r"corrupt or truncated gzip"),
    ("gzip-of-text", gzip.compress(b"hello, world\n"), r"after gzip decompression\) are 68 65"),
    (
        "gzip-truncated-data",
        gzip.compress(HEADER_U8_3x4 + bytes(11)),
        r"data truncated \(after gzip decompression\): .*needs 12 bytes, found 11",
    ),
]


@pytest.mark.parametrize(
    ("case", "data", "match"),
    CORRUPT_CASES,
    ids=[c[0] for c in CORRUPT_CASES],
)
def test_corrupt_file(tmp_path: Path, case: str, data: bytes, match: str) -> None:
    path = tmp_path / f"{case}-idx1-ubyte"
    path.write_bytes(data)
    _raises_data_error(path, match)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    _raises_data_error(tmp_path / "nope-idx1-ubyte.gz", r"file not found")
    _raises_data_error(tmp_path, r"is a folder")


def test_corrupt_deflate_stream(tmp_path: Path, encode_idx: Callable[[np.ndarray], bytes]) -> None:
    data = bytearray(gzip.compress(encode_idx(np.arange(4000, dtype=np.int32))))
    for i in range(20, 40):  # scribble over the middle of the deflate stream
        data[i] ^= 0xA5
    path = tmp_path / "scribbled.gz"
    path.write_bytes(bytes(data))
    _raises_data_error(path, r"corrupt or truncated gzip")


def test_real_labels_truncated_and_cut_gzip(tmp_path: Path, real_mnist: Path) -> None:
    gz_bytes = (real_mnist / "t10k-labels-idx1-ubyte.gz").read_bytes()
    raw = gzip.decompress(gz_bytes)
    assert len(raw) == 8 + 10000
    cut_raw = tmp_path / "t10k-labels-idx1-ubyte"
    cut_raw.write_bytes(raw[:-7])
    _raises_data_error(cut_raw, r"shape \(10000,\) of uint8 needs 10000 bytes, found 9993")
    cut_gz = tmp_path / "cut-t10k-labels-idx1-ubyte.gz"
    cut_gz.write_bytes(gzip.compress(raw[:-7]))
    _raises_data_error(cut_gz, r"after gzip decompression.*needs 10000 bytes, found 9993")
    half = tmp_path / "half-t10k-labels-idx1-ubyte.gz"
    half.write_bytes(gz_bytes[: len(gz_bytes) // 2])
    _raises_data_error(half, r"corrupt or truncated gzip stream")


def test_header_only_read_does_not_need_the_data(tmp_path: Path) -> None:
    path = tmp_path / "short"
    path.write_bytes(HEADER_U8_3x4 + bytes(2))
    assert read_idx_header(path) == (np.dtype(np.uint8), (3, 4))
    _raises_data_error(path, "data truncated")


# ---- image/label pairs --------------------------------------------------------------------------


def test_pair(tmp_path: Path, idx_writer: WriteIdx) -> None:
    x = np.arange(3 * 2 * 4, dtype=np.uint8).reshape(3, 2, 4)
    y = np.array([2, 0, 1], dtype=np.uint8)
    split = read_idx_pair(idx_writer(tmp_path / "x", x), idx_writer(tmp_path / "y", y, gz=True), 3)
    assert split.images.dtype == torch.uint8 and split.images.shape == (3, 1, 2, 4)
    assert split.labels.dtype == torch.int64
    assert torch.equal(split.images[:, 0], torch.from_numpy(x))
    assert split.labels.tolist() == [2, 0, 1]


def test_pair_count_mismatch_names_both_files(tmp_path: Path, idx_writer: WriteIdx) -> None:
    xp = idx_writer(tmp_path / "imgs-idx3-ubyte", np.zeros((3, 2, 2), np.uint8))
    yp = idx_writer(tmp_path / "labs-idx1-ubyte", np.zeros(4, np.uint8))
    with pytest.raises(DataError, match="has 3 images but .* has 4 labels") as err:
        read_idx_pair(xp, yp)
    assert str(xp) in str(err.value) and str(yp) in str(err.value)


@pytest.mark.parametrize(
    ("images", "labels", "bad", "match"),
    [
        (np.zeros((2, 2, 2), np.int16), np.zeros(2, np.uint8), "x", "3-D uint8 images.*int16"),
        (np.zeros((2, 4), np.uint8), np.zeros(2, np.uint8), "x", "3-D uint8 images.*2-D"),
        (np.zeros((2, 2, 2), np.uint8), np.zeros((2, 1), np.uint8), "y", "1-D uint8 labels"),
        (np.zeros((2, 2, 2), np.uint8), np.zeros(2, np.int32), "y", "1-D uint8 labels.*int32"),
        (np.zeros((2, 2, 2), np.uint8), np.array([1, 5], np.uint8), "y", r"label 5 at index 1"),
    ],
    ids=["images-dtype", "images-ndim", "labels-ndim", "labels-dtype", "label-range"],
)
def test_pair_rejects(
    tmp_path: Path,
    idx_writer: WriteIdx,
    images: np.ndarray,
    labels: np.ndarray,
    bad: str,
    match: str,
) -> None:
    xp, yp = idx_writer(tmp_path / "x", images), idx_writer(tmp_path / "y", labels)
    with pytest.raises(DataError, match=match) as err:
        read_idx_pair(xp, yp, num_classes=3)
    assert str(xp if bad == "x" else yp) in str(err.value)


# ---- checksums ----------------------------------------------------------------------------------


def test_real_mnist_sha256(real_mnist: Path) -> None:
    names = [p.name for p in sorted(real_mnist.glob("*.gz"))]
    assert len(names) == 4
    verify_sha256sums(real_mnist, names)  # passes on the real files


def _sums_dir(tmp_path: Path) -> Path:
    d = tmp_path / "sums"
    d.mkdir()
    (d / "a.bin").write_bytes(b"alpha")
    (d / "b.bin").write_bytes(b"beta")
    lines = [
        f"{hashlib.sha256(b'alpha').hexdigest()}  a.bin",
        f"{hashlib.sha256(b'beta').hexdigest().upper()} *b.bin",  # binary-mode marker, upper hex
    ]
    (d / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    return d


def test_sha256_ok_and_mismatch(tmp_path: Path) -> None:
    d = _sums_dir(tmp_path)
    verify_sha256sums(d, ["a.bin", "b.bin", "unlisted.bin"])
    (d / "b.bin").write_bytes(b"betA")
    with pytest.raises(DataError, match="SHA-256 mismatch") as err:
        verify_sha256sums(d, ["a.bin", "b.bin"])
    assert str(d / "b.bin") in str(err.value)
    verify_sha256sums(d, ["a.bin"])  # only the files we read are checked


def test_sha256_mismatch_on_real_copy(tmp_path: Path, real_mnist: Path) -> None:
    name = "t10k-labels-idx1-ubyte.gz"
    shutil.copy(real_mnist / "SHA256SUMS", tmp_path / "SHA256SUMS")
    data = bytearray((real_mnist / name).read_bytes())
    (tmp_path / name).write_bytes(bytes(data))
    verify_sha256sums(tmp_path, [name])
    data[-12] ^= 0x01
    (tmp_path / name).write_bytes(bytes(data))
    with pytest.raises(DataError, match=re.escape(str(tmp_path / name)) + ".*SHA-256 mismatch"):
        verify_sha256sums(tmp_path, [name])


def test_no_sha256sums_means_no_check(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"anything")
    verify_sha256sums(tmp_path, ["a.bin", "missing.bin"])


def test_malformed_sha256sums(tmp_path: Path) -> None:
    d = _sums_dir(tmp_path)
    with (d / "SHA256SUMS").open("a") as f:
        f.write("not a checksum line\n")
    with pytest.raises(DataError, match=re.escape(str(d / "SHA256SUMS")) + ":3"):
        verify_sha256sums(d, ["a.bin"])
