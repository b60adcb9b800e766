"""Small synthetic MNIST files, so tests of code that loads MNIST need neither the real data set nor a network.

Point `MNIST_DATA_DIR` at a folder from `write_synthetic_mnist` and `load_mnist` reads it as usual.
"""

import gzip
import hashlib
from pathlib import Path

import numpy as np

from mnist_data.cache import SPLIT_FILES
from mnist_data.idx import IMAGE_SHAPE, NUM_CLASSES, encode_idx


def synthetic_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return `n` random uint8 images (n, 28, 28) and labels that cover every class when n >= 10."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, *IMAGE_SHAPE), dtype=np.uint8)
    labels = rng.permutation(np.arange(n) % NUM_CLASSES).astype(np.uint8)
    return images, labels


def synthetic_mnist_files(n_train: int = 30, n_test: int = 20, seed: int = 0) -> dict[str, bytes]:
    """Return the raw IDX bytes of the four MNIST files, keyed by their standard names."""
    files = {}
    for offset, (split, n) in enumerate((("train", n_train), ("test", n_test))):
        images, labels = synthetic_split(n, seed + offset)
        images_name, labels_name = SPLIT_FILES[split]
        files[images_name] = encode_idx(images)
        files[labels_name] = encode_idx(labels)
    return files


def sha256_of(files: dict[str, bytes]) -> dict[str, str]:
    """Return the SHA-256 of each file's bytes, keyed like `files`."""
    return {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}


def write_synthetic_mnist(folder: str | Path, n_train: int = 30, n_test: int = 20, seed: int = 0,
                          compress: bool = False) -> dict[str, Path]:
    """Write the four synthetic files into `folder` (as `.gz` if `compress`) and return their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, data in synthetic_mnist_files(n_train, n_test, seed).items():
        path = folder / (f"{name}.gz" if compress else name)
        path.write_bytes(gzip.compress(data) if compress else data)
        paths[name] = path
    return paths
