"""CI gate: one epoch of the default recipe reaches 98.0% test accuracy with each backend, on the real MNIST test set."""

import json

import pytest

from mnist_common.config import Config

BACKENDS = ("torch_ref", "jax_impl")
MIN_TEST_ACCURACY = 0.980
MNIST_TRAIN_STEPS = 60_000 // 16  # one epoch of the full train set in batches of 16


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_epoch_test_accuracy(backend, trained_runs):
    metrics = json.loads((trained_runs[backend] / "metrics.json").read_text())
    assert metrics["backend"] == backend
    assert not metrics["dry_run"], "the gate needs a full run, not a dry run"
    assert metrics["config"] == Config().to_dict(), f"not the default recipe: {metrics['config']}"
    assert len(metrics["epochs"]) == 1
    record = metrics["epochs"][0]
    assert record["steps"] == MNIST_TRAIN_STEPS, f"{record['steps']} steps, expected {MNIST_TRAIN_STEPS}: not the full train set at batch 16"

    accuracy = record["test_accuracy"]
    assert accuracy >= MIN_TEST_ACCURACY, f"{backend} test accuracy {100 * accuracy:.2f}% < {100 * MIN_TEST_ACCURACY:.1f}%"
