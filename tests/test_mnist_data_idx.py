"""IDX parsing: good files load as uint8 arrays, and each kind of malformed file gets its own error."""

import gzip

import numpy as np
import pytest

from mnist_data.idx import IDXError, encode_idx, read_idx, read_image_label_pair, read_images, read_labels
from mnist_data.testing import synthetic_split


def idx_header(dtype_code: int, dims: tuple[int, ...]) -> bytes:
    return bytes([0, 0, dtype_code, len(dims)]) + b"".join(dim.to_bytes(4, "big") for dim in dims)


@pytest.fixture
def pair(tmp_path):
    images, labels = synthetic_split(7, seed=3)
    images_path = tmp_path / "train-images-idx3-ubyte"
    labels_path = tmp_path / "train-labels-idx1-ubyte"
    images_path.write_bytes(encode_idx(images))
    labels_path.write_bytes(encode_idx(labels))
    return images, labels, images_path, labels_path


def test_raw_pair_round_trips(pair):
    images, labels, images_path, labels_path = pair
    loaded_images, loaded_labels = read_image_label_pair(images_path, labels_path)
    assert loaded_images.dtype == np.uint8, f"images dtype {loaded_images.dtype}, expected uint8"
    assert loaded_labels.dtype == np.uint8, f"labels dtype {loaded_labels.dtype}, expected uint8"
    assert loaded_images.shape == (7, 28, 28), f"images shape {loaded_images.shape}, expected (7, 28, 28)"
    assert np.array_equal(loaded_images, images)
    assert np.array_equal(loaded_labels, labels)
    assert loaded_images.flags.writeable, "images array is read-only"


def test_gzip_file_reads_like_raw(pair, tmp_path):
    images, _, images_path, _ = pair
    gz_path = tmp_path / "train-images-idx3-ubyte.gz"
    gz_path.write_bytes(gzip.compress(images_path.read_bytes()))
    loaded = read_images(gz_path)
    assert np.array_equal(loaded, images)
    assert loaded.flags.writeable, "images array from a .gz file is read-only"


def test_other_shapes_read_generically(tmp_path):
    path = tmp_path / "cube"
    path.write_bytes(idx_header(0x08, (2, 3, 4, 5)) + bytes(range(120)))
    array = read_idx(path)
    assert array.shape == (2, 3, 4, 5), f"shape {array.shape}, expected (2, 3, 4, 5)"
    assert array[1, 2, 3, 4] == 119, f"last element {array[1, 2, 3, 4]}, expected 119"


def test_empty_files_give_empty_arrays(tmp_path):
    images_path, labels_path = tmp_path / "images", tmp_path / "labels"
    images_path.write_bytes(idx_header(0x08, (0, 28, 28)))
    labels_path.write_bytes(idx_header(0x08, (0,)))
    images, labels = read_image_label_pair(images_path, labels_path)
    assert images.shape == (0, 28, 28), f"shape {images.shape}, expected (0, 28, 28)"
    assert labels.shape == (0,), f"shape {labels.shape}, expected (0,)"


# Each case: file bytes, then fragments the error message must contain.
MALFORMED_IMAGES = {
    "bad magic": (b"\x12\x34\x08\x03" + bytes(12), ["bad magic number 0x12340803", "not an IDX file"]),
    "dtype int32": (idx_header(0x0C, (1, 28, 28)) + bytes(4 * 784), ["dtype code 0x0c", "expected 0x08"]),
    "two dimensions": (idx_header(0x08, (1, 784)) + bytes(784), ["2 dimensions", "expected 3"]),
    "27 rows": (idx_header(0x08, (1, 27, 28)) + bytes(27 * 28), ["27x28", "expected 28x28"]),
    "zero dimensions": (idx_header(0x08, ()), ["0 dimensions"]),
    "short header": (b"\x00\x00\x08", ["3 bytes long", "too short"]),
    "header cut in dims": (idx_header(0x08, (3, 28, 28))[:9], ["9 bytes long", "header of 3 dimensions (16 bytes)"]),
    "truncated": (idx_header(0x08, (3, 28, 28)) + bytes(2 * 784 + 392),
                  ["header says 3 images of shape (28, 28), file holds 2.5", "1960 data bytes, expected 2352"]),
    "extra bytes": (idx_header(0x08, (3, 28, 28)) + bytes(4 * 784),
                    ["header says 3 images", "file holds 4 ", "3136 data bytes, expected 2352"]),
    "bad gzip": (b"\x1f\x8b" + b"not gzip at all", ["invalid gzip data"]),
    "truncated gzip": (gzip.compress(idx_header(0x08, (1, 28, 28)) + bytes(784))[:-12], ["invalid gzip data"]),
}


@pytest.mark.parametrize("case", MALFORMED_IMAGES)
def test_malformed_image_file_rejected(case, tmp_path):
    data, fragments = MALFORMED_IMAGES[case]
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(data)
    with pytest.raises(IDXError) as raised:
        read_images(path)
    message = str(raised.value)
    assert message.startswith(str(path)), f"message {message!r} does not start with the path {path}"
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_truncated_message_matches_mnist_scale(tmp_path):
    # The header of the real training images over 59999 images and 235 bytes, 549 bytes short.
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_header(0x08, (60000, 28, 28)) + bytes(60000 * 784 - 549))
    with pytest.raises(IDXError, match=r"header says 60000 images of shape \(28, 28\), file holds 59999\.3 "):
        read_images(path)


def test_idx_error_is_value_error():
    assert issubclass(IDXError, ValueError)


def test_label_ten_rejected(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(encode_idx(np.array([0, 9, 10, 3], dtype=np.uint8)))
    with pytest.raises(IDXError, match=r"train-labels-idx1-ubyte: label 10 at index 2, expected 0 to 9"):
        read_labels(path)


def test_labels_with_two_dimensions_rejected(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(encode_idx(np.zeros((2, 3), dtype=np.uint8)))
    with pytest.raises(IDXError, match=r"2 dimensions \(2, 3\), expected 1 for labels"):
        read_labels(path)


def test_count_mismatch_rejected(pair, tmp_path):
    _, labels, images_path, _ = pair
    short_labels = tmp_path / "short-labels"
    short_labels.write_bytes(encode_idx(labels[:6]))
    with pytest.raises(IDXError) as raised:
        read_image_label_pair(images_path, short_labels)
    message = str(raised.value)
    assert "contains 7 images" in message, message
    assert "contains 6 labels" in message, message
    assert str(short_labels) in message, message


def test_encode_rejects_non_uint8():
    with pytest.raises(ValueError, match="uint8"):
        encode_idx(np.zeros(3, dtype=np.int32))
