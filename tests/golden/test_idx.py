"""Tests for golden.idx: IDX round trips and every malformed file refused with its reason."""

from __future__ import annotations

import gzip
import hashlib
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from golden.idx import IdxFormatError, decode_idx, encode_idx, read_idx, write_idx


def _header(type_code: int, shape: tuple[int, ...]) -> bytes:
    return bytes([0, 0, type_code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)


ROUND_TRIP_ARRAYS = {
    "labels-1d": np.arange(10, dtype=np.uint8),
    "images-3d": np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
    "full-range": np.array([[0, 1, 127, 128, 254, 255]], dtype=np.uint8),
    "empty": np.zeros((0, 28, 28), dtype=np.uint8),
    "non-contiguous": np.arange(36, dtype=np.uint8).reshape(6, 6)[:, ::2],
}


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("key", list(ROUND_TRIP_ARRAYS))
def test_round_trip(tmp_path: Path, key: str, suffix: str) -> None:
    array = ROUND_TRIP_ARRAYS[key]
    path = tmp_path / f"data-idx{array.ndim}-ubyte{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == np.uint8
    assert back.shape == array.shape
    np.testing.assert_array_equal(back, array)
    # Returned arrays are ordinary writable arrays, not views of immutable bytes.
    assert back.flags.writeable


@pytest.mark.parametrize(("suffix", "compressed"), [("", False), (".gz", True)])
def test_write_compresses_only_gz_names(tmp_path: Path, suffix: str, compressed: bool) -> None:
    array = np.zeros((100, 10), dtype=np.uint8)
    path = tmp_path / f"x{suffix}"
    write_idx(path, array)
    raw = path.read_bytes()
    assert raw.startswith(b"\x1f\x8b") is compressed
    payload = gzip.decompress(raw) if compressed else raw
    assert payload == encode_idx(array)


def test_encode_idx_layout() -> None:
    array = np.arange(6, dtype=np.uint8).reshape(2, 3)
    expected = struct.pack(">I", 0x800 + 2) + struct.pack(">II", 2, 3) + bytes(range(6))
    assert encode_idx(array) == expected


def test_gzip_output_is_reproducible(tmp_path: Path) -> None:
    array = np.arange(256, dtype=np.uint8)
    write_idx(tmp_path / "a.gz", array)
    write_idx(tmp_path / "b.gz", array)
    digest = [hashlib.md5((tmp_path / n).read_bytes()).hexdigest() for n in ("a.gz", "b.gz")]
    assert digest[0] == digest[1]


def test_gzip_content_detected_without_gz_name(tmp_path: Path) -> None:
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    path = tmp_path / "renamed-idx2-ubyte"
    path.write_bytes(gzip.compress(encode_idx(array)))
    np.testing.assert_array_equal(read_idx(path), array)


MALFORMED = [
    # (id, file content, regex the message must match)
    ("empty-file", b"", r"too short for an IDX header \(0 bytes"),
    ("short-header", b"\x00\x00\x08", r"too short for an IDX header \(3 bytes"),
    ("bad-magic", b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00",
     r"bad magic number 0x01000801"),
    ("bad-magic-second-byte", b"\x00\x07\x08\x01" + struct.pack(">I", 1) + b"\x00",
     r"bad magic number 0x00070801"),
    ("type-float32", _header(0x0D, (2,)) + bytes(8),
     r"unsupported IDX data type 0x0D \(float \(float32\)\); only 0x08"),
    ("type-signed-byte", _header(0x09, (2,)) + bytes(2),
     r"unsupported IDX data type 0x09 \(signed byte\)"),
    ("type-unknown", _header(0x42, (2,)) + bytes(2),
     r"unsupported IDX data type 0x42 \(not an IDX type\)"),
    ("zero-dims", b"\x00\x00\x08\x00", r"header declares 0 dimensions"),
    ("dims-cut-short", b"\x00\x00\x08\x03" + struct.pack(">I", 5),
     r"header declares 3 dimensions, which need 16 header bytes, but the file has only 8"),
    ("truncated", _header(0x08, (2, 3, 4)) + bytes(20),
     r"expected 24 data bytes for shape \(2, 3, 4\), found 20 \(file truncated\)"),
    ("too-long", _header(0x08, (5,)) + bytes(7),
     r"expected 5 data bytes for shape \(5,\), found 7 \(trailing bytes"),
]


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize(("content", "pattern"), [m[1:] for m in MALFORMED],
                         ids=[m[0] for m in MALFORMED])
def test_malformed_refused(tmp_path: Path, content: bytes, pattern: str, suffix: str) -> None:
    path = tmp_path / f"bad-idx-ubyte{suffix}"
    path.write_bytes(gzip.compress(content) if suffix else content)
    # The message names the file, then the reason.
    with pytest.raises(IdxFormatError, match=f"^{re.escape(str(path))}: .*{pattern}"):
        read_idx(path)


BAD_GZIP = [
    ("not-gzip-at-all", lambda good: good),
    ("truncated-stream", lambda good: gzip.compress(good)[:-12]),
    ("corrupt-deflate", lambda good: gzip.compress(good)[:10] + b"\xff" * 30),
    ("bad-crc", lambda good: gzip.compress(good)[:-8] + b"\x00" * 8),
]


@pytest.mark.parametrize("make", [b[1] for b in BAD_GZIP], ids=[b[0] for b in BAD_GZIP])
def test_bad_gzip_refused(tmp_path: Path, make) -> None:
    good = encode_idx(np.arange(200, dtype=np.uint8))
    path = tmp_path / "labels-idx1-ubyte.gz"
    path.write_bytes(make(good))
    with pytest.raises(IdxFormatError, match=f"^{re.escape(str(path))}: not a valid gzip file"):
        read_idx(path)


def test_idx_format_error_is_value_error() -> None:
    assert issubclass(IdxFormatError, ValueError)


@pytest.mark.parametrize(
    ("array", "pattern"),
    [
        (np.zeros(3, dtype=np.float32), r"dtype float32 .* only uint8"),
        (np.zeros(3, dtype=np.int64), r"dtype int64 .* only uint8"),
        (np.array(5, dtype=np.uint8), r"0-dimensional array .* 1 to 255 dimensions"),
    ],
    ids=["float32", "int64", "scalar"],
)
def test_write_refuses_unsupported_arrays(tmp_path: Path, array: np.ndarray, pattern: str) -> None:
    path = tmp_path / "out-idx-ubyte"
    with pytest.raises(IdxFormatError, match=pattern):
        write_idx(path, array)
    # Nothing half-written is left behind.
    assert not path.exists()


def test_decode_names_source() -> None:
    with pytest.raises(IdxFormatError, match=r"^memory-blob: bad magic"):
        decode_idx(b"\xff\xff\x08\x01\x00\x00\x00\x00", source="memory-blob")
