"""source="tfds": MNIST through tensorflow-datasets, tested on its mock data so nothing is downloaded."""

import importlib.util
import sys

import numpy as np
import pytest

from mnist_data import load_mnist

TFDS_MISSING = importlib.util.find_spec("tensorflow_datasets") is None


@pytest.mark.skipif(TFDS_MISSING, reason="tensorflow_datasets is not installed (pip install 'mnist-port[tfds]')")
@pytest.mark.parametrize("split, n", [("train", 23), ("test", 11)])
def test_tfds_mock_data_loads(split, n):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=n):
        images, labels = load_mnist(split, source="tfds")
    assert images.shape == (n, 28, 28), f"images shape {images.shape}, expected ({n}, 28, 28)"
    assert images.dtype == np.uint8, f"images dtype {images.dtype}, expected uint8"
    assert labels.shape == (n,), f"labels shape {labels.shape}, expected ({n},)"
    assert labels.dtype == np.uint8, f"labels dtype {labels.dtype}, expected uint8"
    assert labels.max() <= 9, f"max label {labels.max()}, expected at most 9"


def test_tfds_missing_extra_explained(monkeypatch):
    # None in sys.modules makes `import tensorflow_datasets` raise ImportError, as when it is not installed.
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(ImportError, match=r"pip install 'mnist-port\[tfds\]'"):
        load_mnist("train", source="tfds")
