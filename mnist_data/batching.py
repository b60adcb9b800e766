"""Deterministic shuffling and batching that both trainers consume, so both see identical batches."""

import numpy as np

# Normalization of pixel values scaled to [0, 1]: the mean and standard deviation of the MNIST training set.
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """Return the order in which epoch `epoch` visits `n` examples, the same on every machine.

    The order is an argsort of raw PCG64 output, whose stream numpy guarantees across releases;
    `Generator.permutation` carries no such guarantee.
    """
    if seed < 0 or epoch < 0:
        raise ValueError(f"seed and epoch must be non-negative, got seed={seed}, epoch={epoch}")
    bit_generator = np.random.PCG64(np.random.SeedSequence([seed, epoch]))
    keys = bit_generator.random_raw(n)
    return np.argsort(keys, kind="stable").astype(np.int64)


def batch_indices(seed: int, epoch: int, n: int, batch_size: int) -> list[np.ndarray]:
    """Split the epoch's permutation into batches of `batch_size`; the last one may be smaller."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    order = epoch_permutation(seed, epoch, n)
    return [order[start:start + batch_size] for start in range(0, n, batch_size)]


def iterate_batches(images: np.ndarray, labels: np.ndarray, seed: int, epoch: int, batch_size: int):
    """Yield (uint8 images, int64 labels) batches of one epoch in the shared order."""
    for index in batch_indices(seed, epoch, len(images), batch_size):
        yield images[index], labels[index].astype(np.int64)
