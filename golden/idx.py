"""Reading and writing IDX files, the format of the original MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number, one big-endian ``uint32`` per dimension, then the
elements in C order. The magic number is two zero bytes, a type code and the number of
dimensions. Only type ``0x08`` (unsigned byte) is supported: it is the type of every
image and label file of the datasets this project uses, and the accelerator consumes
8-bit pixels. Files may be stored raw or gzip-compressed (as they are distributed).

Functions
---------
read_idx
    Load and validate an IDX file (raw or ``.gz``) into a NumPy array.
write_idx
    Write a ``uint8`` array as an IDX file (gzip-compressed if the name ends in ``.gz``).
encode_idx
    The IDX bytes (header and data) of a ``uint8`` array.
decode_idx
    Parse and validate IDX bytes already in memory.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

__all__ = ["IdxFormatError", "decode_idx", "encode_idx", "read_idx", "write_idx"]

#: The only IDX data type supported: unsigned byte.
UBYTE_TYPE_CODE = 0x08

#: Names of all type codes the IDX format defines, so a refusal can say what the file holds.
IDX_TYPE_NAMES = {
    0x08: "unsigned byte",
    0x09: "signed byte",
    0x0B: "short (int16)",
    0x0C: "int (int32)",
    0x0D: "float (float32)",
    0x0E: "double (float64)",
}

_GZIP_MAGIC = b"\x1f\x8b"
_HEADER_BYTES = 4
_DIM_BYTES = 4


class IdxFormatError(ValueError):
    """An IDX file (or array to be written as one) that does not follow the format.

    The message names the file and the reason, e.g. ``"train.idx: expected 784 data bytes
    for shape (1, 28, 28), found 700 (file truncated)"``.
    """


def encode_idx(array: np.ndarray) -> bytes:
    """Return the IDX bytes (header followed by data) of a ``uint8`` array.

    Parameters
    ----------
    array : numpy.ndarray
        Array of dtype ``uint8`` with 1 to 255 dimensions, each below 2**32.

    Returns
    -------
    bytes
        ``struct.pack('>I', 0x800 + ndim)``, each dimension as ``'>I'``, then the elements
        in C order.

    Raises
    ------
    IdxFormatError
        If the dtype is not ``uint8`` or the shape cannot be expressed in an IDX header.
    """
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise IdxFormatError(
            f"cannot write an array of dtype {array.dtype} as IDX; only uint8 is supported "
            "(convert with array.astype(np.uint8) after checking the value range)"
        )
    if not 1 <= array.ndim <= 255:
        raise IdxFormatError(
            f"cannot write a {array.ndim}-dimensional array as IDX; 1 to 255 dimensions "
            "are supported"
        )
    if any(dim >= 2**32 for dim in array.shape):
        raise IdxFormatError(f"cannot write shape {array.shape} as IDX; each dimension < 2**32")
    header = struct.pack(">I", (UBYTE_TYPE_CODE << 8) + array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array).tobytes()


def decode_idx(data: bytes, *, source: str = "<bytes>") -> np.ndarray:
    """Parse IDX bytes (already decompressed) into an array.

    Parameters
    ----------
    data : bytes
        The whole IDX file content.
    source : str, optional
        Name used in error messages (normally the file path).

    Returns
    -------
    numpy.ndarray
        A writable ``uint8`` array with the shape declared in the header.

    Raises
    ------
    IdxFormatError
        If the magic number is wrong, the type is not unsigned byte, the header is cut
        short, or the data length differs from the product of the dimensions.
    """
    if len(data) < _HEADER_BYTES:
        raise IdxFormatError(
            f"{source}: too short for an IDX header ({len(data)} bytes, need at least 4)"
        )
    zero0, zero1, type_code, ndim = data[:_HEADER_BYTES]
    if zero0 != 0 or zero1 != 0:
        raise IdxFormatError(
            f"{source}: bad magic number 0x{data[:_HEADER_BYTES].hex()}; an IDX file starts "
            "with two zero bytes, a type code and the number of dimensions (e.g. 0x00000803)"
        )
    if type_code != UBYTE_TYPE_CODE:
        kind = IDX_TYPE_NAMES.get(type_code, "not an IDX type")
        raise IdxFormatError(
            f"{source}: unsupported IDX data type 0x{type_code:02X} ({kind}); only 0x08 "
            "(unsigned byte) is supported"
        )
    if ndim == 0:
        raise IdxFormatError(f"{source}: header declares 0 dimensions; at least 1 is needed")
    header_len = _HEADER_BYTES + _DIM_BYTES * ndim
    if len(data) < header_len:
        raise IdxFormatError(
            f"{source}: header declares {ndim} dimensions, which need {header_len} header "
            f"bytes, but the file has only {len(data)} bytes"
        )
    shape = struct.unpack(f">{ndim}I", data[_HEADER_BYTES:header_len])
    # Python ints, so a hostile header cannot overflow the size computation.
    expected = 1
    for dim in shape:
        expected *= int(dim)
    found = len(data) - header_len
    if found != expected:
        problem = "file truncated" if found < expected else "trailing bytes after the data"
        raise IdxFormatError(
            f"{source}: expected {expected} data bytes for shape {tuple(shape)}, "
            f"found {found} ({problem})"
        )
    # Copy so the caller gets an ordinary writable array, not a view of immutable bytes.
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(shape).copy()


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read and validate an IDX file, raw or gzip-compressed.

    A file is decompressed when its name ends in ``.gz`` or its content starts with the
    gzip magic bytes (an IDX file always starts with two zero bytes, so this is
    unambiguous and tolerates renamed files).

    Parameters
    ----------
    path : str or os.PathLike
        The file to read.

    Returns
    -------
    numpy.ndarray
        A writable ``uint8`` array with the shape declared in the header.

    Raises
    ------
    IdxFormatError
        If the file is not a valid gzip file (when compressed) or not a valid ``uint8``
        IDX file; the message names the file and the reason.
    OSError
        If the file cannot be read.
    """
    path = Path(path)
    raw = path.read_bytes()
    if path.name.endswith(".gz") or raw.startswith(_GZIP_MAGIC):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            # BadGzipFile is an OSError; a cut-off stream raises EOFError; a corrupt
            # deflate stream raises zlib.error.
            raise IdxFormatError(f"{path}: not a valid gzip file ({error})") from error
    return decode_idx(raw, source=str(path))


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write a ``uint8`` array as an IDX file, gzip-compressed if the name ends in ``.gz``.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file; overwritten if it exists.
    array : numpy.ndarray
        Array of dtype ``uint8`` with 1 to 255 dimensions.

    Raises
    ------
    IdxFormatError
        If the array cannot be written as a ``uint8`` IDX file.
    OSError
        If the file cannot be written.
    """
    path = Path(path)
    data = encode_idx(array)
    if path.name.endswith(".gz"):
        # mtime=0 keeps the output byte-identical across runs.
        data = gzip.compress(data, compresslevel=6, mtime=0)
    path.write_bytes(data)
