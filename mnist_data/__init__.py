"""Framework-neutral MNIST: IDX parsing, checksummed fetch and cache, and shared batching."""

from mnist_data.batching import MNIST_MEAN, MNIST_STD, batch_indices, epoch_permutation, iterate_batches
from mnist_data.cache import ChecksumError, cache_dir
from mnist_data.fetch import FetchError, fetch_files, load_mnist
from mnist_data.idx import IDXError, read_idx

__all__ = [
    "MNIST_MEAN", "MNIST_STD", "batch_indices", "epoch_permutation", "iterate_batches",
    "ChecksumError", "cache_dir", "FetchError", "fetch_files", "load_mnist", "IDXError", "read_idx",
]
