"""Shared batching: the order depends only on (seed, epoch), is the same in every process, and covers each example once."""

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mnist_data import batch_indices, epoch_permutation, iterate_batches

REPO_ROOT = Path(__file__).resolve().parents[1]
N_TRAIN = 60_000


def order_digest(seed: int, epoch: int, n: int, batch_size: int) -> str:
    batches = batch_indices(seed, epoch, n, batch_size)
    return hashlib.sha256(np.concatenate(batches).astype("<i8").tobytes()).hexdigest()


def test_same_seed_same_batches():
    first = batch_indices(seed=7, epoch=3, n=1000, batch_size=64)
    second = batch_indices(seed=7, epoch=3, n=1000, batch_size=64)
    assert len(first) == len(second), f"{len(first)} batches vs {len(second)}"
    for index, (a, b) in enumerate(zip(first, second)):
        assert np.array_equal(a, b), f"batch {index} differs: {a[:5]}... vs {b[:5]}..."


def test_same_order_in_another_process():
    code = ("import hashlib, numpy as np; from mnist_data import batch_indices; "
            "b = batch_indices(7, 3, 60000, 128); "
            "print(hashlib.sha256(np.concatenate(b).astype('<i8').tobytes()).hexdigest())")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    other = result.stdout.strip()
    in_process = order_digest(7, 3, N_TRAIN, 128)
    assert other == in_process, f"order digest in a subprocess {other} vs in this process {in_process}"


def test_order_is_pinned():
    # Trainers and saved runs depend on this exact order; a change here changes every experiment.
    first_ten = epoch_permutation(0, 0, 10).tolist()
    assert first_ten == [3, 2, 1, 8, 6, 0, 7, 4, 5, 9], f"epoch_permutation(0, 0, 10) is {first_ten}"
    digest = hashlib.sha256(epoch_permutation(0, 0, N_TRAIN).tobytes()).hexdigest()
    assert digest == "c9c72e3bfb1e9a703c39f3c8200ab1e8e94fd61cb9ab10028b4a77813bc2edde", digest


def test_epochs_differ():
    epoch0 = epoch_permutation(seed=0, epoch=0, n=N_TRAIN)
    epoch1 = epoch_permutation(seed=0, epoch=1, n=N_TRAIN)
    same_positions = int(np.sum(epoch0 == epoch1))
    # Two independent permutations agree in about one position on average.
    assert same_positions < 20, f"{same_positions} of {N_TRAIN} positions agree between epochs 0 and 1"


def test_seeds_differ():
    assert not np.array_equal(epoch_permutation(0, 0, 1000), epoch_permutation(1, 0, 1000))


def test_each_index_once_per_epoch():
    batches = batch_indices(seed=42, epoch=5, n=N_TRAIN, batch_size=128)
    visited = np.concatenate(batches)
    assert len(visited) == N_TRAIN, f"{len(visited)} indices visited, expected {N_TRAIN}"
    counts = np.bincount(visited, minlength=N_TRAIN)
    assert counts.min() == 1, f"index {counts.argmin()} visited {counts.min()} times, expected once"
    assert counts.max() == 1, f"index {counts.argmax()} visited {counts.max()} times, expected once"


def test_last_batch_is_partial():
    batches = batch_indices(seed=0, epoch=0, n=N_TRAIN, batch_size=128)
    sizes = [len(batch) for batch in batches]
    assert len(batches) == 469, f"{len(batches)} batches, expected ceil(60000 / 128) = 469"
    assert set(sizes[:-1]) == {128}, f"full batch sizes {set(sizes[:-1])}, expected {{128}}"
    assert sizes[-1] == 60_000 - 468 * 128, f"last batch has {sizes[-1]}, expected 96"


def test_exact_multiple_has_no_empty_batch():
    sizes = [len(batch) for batch in batch_indices(seed=0, epoch=0, n=1000, batch_size=100)]
    assert sizes == [100] * 10, f"batch sizes {sizes}"


def test_iterate_batches_follows_indices():
    images = np.arange(50 * 28 * 28, dtype=np.uint32).astype(np.uint8).reshape(50, 28, 28)
    labels = (np.arange(50) % 10).astype(np.uint8)
    expected = batch_indices(seed=1, epoch=2, n=50, batch_size=16)
    batches = list(iterate_batches(images, labels, seed=1, epoch=2, batch_size=16))
    assert len(batches) == 4, f"{len(batches)} batches, expected 4"
    for (batch_images, batch_labels), index in zip(batches, expected):
        assert np.array_equal(batch_images, images[index])
        assert np.array_equal(batch_labels, labels[index])
        assert batch_labels.dtype == np.int64, f"labels dtype {batch_labels.dtype}, expected int64"
        assert batch_images.dtype == np.uint8, f"images dtype {batch_images.dtype}, expected uint8"


@pytest.mark.parametrize("seed, epoch, batch_size", [(-1, 0, 8), (0, -1, 8), (0, 0, 0)])
def test_invalid_arguments_rejected(seed, epoch, batch_size):
    with pytest.raises(ValueError):
        batch_indices(seed, epoch, 10, batch_size)
