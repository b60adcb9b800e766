"""Load MNIST through tensorflow-datasets (the optional `tfds` extra) into the same arrays as the IDX path."""

import os
from pathlib import Path

import numpy as np

from mnist_data.idx import IMAGE_SHAPE, NUM_CLASSES

_BATCH_SIZE = 10_000


def load_tfds(split: str, data_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load the 'train' or 'test' split as (images uint8 (N, 28, 28), labels uint8 (N,)).

    `data_dir` is tensorflow-datasets' data folder (None: its default, ~/tensorflow_datasets);
    the dataset is downloaded there on first use.
    """
    # Hide TensorFlow's INFO lines at import unless the user set TF_CPP_MIN_LOG_LEVEL.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise ImportError("source='tfds' needs the optional packages tensorflow-cpu and tensorflow-datasets; "
                          "install them with: pip install 'mnist-port[tfds]'") from error

    dataset = tfds.load("mnist", split=split, as_supervised=True, data_dir=None if data_dir is None else str(data_dir))
    # batch_size=-1 (the whole split as one array) aborts the process with std::length_error under
    # tfds.testing.mock_data with tensorflow-cpu 2.21.0, so the split is read in finite batches.
    image_batches, label_batches = [], []
    for images, labels in tfds.as_numpy(dataset.batch(_BATCH_SIZE)):
        image_batches.append(images)
        label_batches.append(labels)
    if not image_batches:
        raise ValueError(f"tensorflow-datasets returned no examples for MNIST split {split!r}")
    images = np.concatenate(image_batches)
    labels = np.concatenate(label_batches)

    if images.shape[1:] != (*IMAGE_SHAPE, 1) or images.dtype != np.uint8:
        raise ValueError(f"tensorflow-datasets MNIST images are {images.dtype} {images.shape[1:]}, expected uint8 (28, 28, 1)")
    if labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise ValueError(f"tensorflow-datasets MNIST labels span {labels.min()} to {labels.max()}, expected 0 to 9")
    return images[..., 0], labels.astype(np.uint8)
