"""IDX file parsing and writing (the format of the original MNIST files), raw or gzip-compressed.

Each check raises `IDXError` with the file name and what was wrong, so a bad download or a
hand-placed file of the wrong kind fails at load time rather than inside a training step.
"""

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

# The IDX header: two zero bytes, a dtype code, the number of dimensions, then one big-endian
# uint32 per dimension. MNIST uses only dtype code 0x08 (unsigned byte).
UNSIGNED_BYTE = 0x08
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10
_GZIP_MAGIC = b"\x1f\x8b"


class IDXError(ValueError):
    """An IDX file that is malformed or does not hold what MNIST needs."""


def _item_noun(ndim: int) -> str:
    return {1: "labels", 3: "images"}.get(ndim, "items")


def parse_idx(data: bytes | bytearray, name: str) -> np.ndarray:
    """Parse the bytes of a raw or gzip-compressed IDX file of unsigned bytes into a writable array.

    `name` is the file name or path used in error messages. A bytearray is used without a copy.
    """
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise IDXError(f"{name}: invalid gzip data ({error}); delete the file and fetch it again") from error
    # np.frombuffer over immutable bytes gives a read-only array; callers may want to modify theirs.
    if not isinstance(data, bytearray):
        data = bytearray(data)

    if len(data) < 4:
        raise IDXError(f"{name}: file is {len(data)} bytes long, too short for an IDX header (4 bytes at least)")
    if data[0] != 0 or data[1] != 0:
        raise IDXError(f"{name}: bad magic number 0x{data[:4].hex()}, expected two zero bytes then the dtype code and ndim "
                       "(0x00000801 for MNIST labels, 0x00000803 for images); this is not an IDX file")
    dtype_code, ndim = data[2], data[3]
    if dtype_code != UNSIGNED_BYTE:
        raise IDXError(f"{name}: dtype code 0x{dtype_code:02x}, expected 0x{UNSIGNED_BYTE:02x} (unsigned byte) as in MNIST")
    if ndim == 0:
        raise IDXError(f"{name}: header declares 0 dimensions, expected 1 for labels or 3 for images")

    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise IDXError(f"{name}: file is {len(data)} bytes long, too short for a header of {ndim} dimensions ({header_size} bytes)")
    dims = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))

    payload = len(data) - header_size
    expected_payload = math.prod(dims)
    if payload != expected_payload:
        item_size = math.prod(dims[1:])
        count_in_file = f"{payload / item_size:.1f}".removesuffix(".0") if item_size else f"{payload} bytes"
        raise IDXError(f"{name}: header says {dims[0]} {_item_noun(ndim)} of shape {dims[1:]}, file holds {count_in_file} "
                       f"({payload} data bytes, expected {expected_payload}); the file is truncated or has extra bytes")
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(dims)


def read_idx(path: str | Path) -> np.ndarray:
    """Read a raw or gzip-compressed IDX file of unsigned bytes into an array of the shape in its header."""
    path = Path(path)
    with open(path, "rb") as file:
        data = bytearray(os.fstat(file.fileno()).st_size)
        file.readinto(data)
    return parse_idx(data, str(path))


def read_images(path: str | Path) -> np.ndarray:
    """Read an MNIST image file into a uint8 array of shape (N, 28, 28)."""
    images = read_idx(path)
    if images.ndim != 3:
        raise IDXError(f"{path}: header declares {images.ndim} dimensions, expected 3 (count, rows, columns) for images")
    if images.shape[1:] != IMAGE_SHAPE:
        raise IDXError(f"{path}: images are {images.shape[1]}x{images.shape[2]}, expected 28x28")
    return images


def read_labels(path: str | Path) -> np.ndarray:
    """Read an MNIST label file into a uint8 array of shape (N,) with values 0 to 9."""
    labels = read_idx(path)
    if labels.ndim != 1:
        raise IDXError(f"{path}: header declares {labels.ndim} dimensions {labels.shape}, expected 1 for labels")
    if labels.size and labels.max() >= NUM_CLASSES:
        position = int(np.argmax(labels >= NUM_CLASSES))
        raise IDXError(f"{path}: label {labels[position]} at index {position}, expected 0 to {NUM_CLASSES - 1}")
    return labels


def read_image_label_pair(images_path: str | Path, labels_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one split's image and label files and check that they hold the same number of examples."""
    images = read_images(images_path)
    labels = read_labels(labels_path)
    if len(images) != len(labels):
        raise IDXError(f"{images_path} contains {len(images)} images but {labels_path} contains {len(labels)} labels; "
                       "the two files must come from the same split")
    return images, labels


def encode_idx(array: np.ndarray) -> bytes:
    """Encode a uint8 array as raw IDX bytes (the inverse of `parse_idx`)."""
    if array.dtype != np.uint8:
        raise ValueError(f"IDX encoding here supports uint8 arrays only, got {array.dtype}")
    header = bytes([0, 0, UNSIGNED_BYTE, array.ndim])
    header += b"".join(dim.to_bytes(4, "big") for dim in array.shape)
    return header + np.ascontiguousarray(array).tobytes()
