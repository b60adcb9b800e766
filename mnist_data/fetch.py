"""Locate the MNIST files. Draft: reads MNIST_DATA_DIR or an explicit folder only."""

import os
from pathlib import Path

import numpy as np

from mnist_data.idx import read_idx

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def load_mnist(split: str, data_dir: str | Path | None = None, source: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Return (images uint8 (N, 28, 28), labels uint8 (N,)) of the 'train' or 'test' split."""
    folder = Path(data_dir or os.environ["MNIST_DATA_DIR"])
    images_name, labels_name = FILES[split]
    return read_idx(folder / images_name), read_idx(folder / labels_name)

SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
