"""Framework-neutral MNIST: IDX parsing, checksummed fetch and cache, and shared batching."""

from mnist_data.batching import MNIST_MEAN, MNIST_STD, batch_indices, epoch_permutation, iterate_batches
from mnist_data.fetch import load_mnist

__all__ = ["MNIST_MEAN", "MNIST_STD", "batch_indices", "epoch_permutation", "iterate_batches", "load_mnist"]
