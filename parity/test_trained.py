"""The one-epoch runs of both backends (the `trained_runs` fixture): the same model size, the accuracy targets, and checkpoints that evaluate alike in either backend."""

import json

import jax
import numpy as np
import pytest

from jax_impl.model import init_params, layer_param_counts as flax_layer_counts
from mnist_common.run import PARAM_COUNT
from parity import harness
from torch_ref.model import Net, layer_param_counts as torch_layer_counts

BACKENDS = ("torch_ref", "jax_impl")
MIN_RUNNING_TRAIN_ACCURACY = 0.95
MIN_TEST_ACCURACY = 0.98
MARGIN = 1e-4  # predictions must agree wherever the top two logits differ by more than this
MAX_CORRECT_GAP = 1  # test images: accuracy to 0.01 points of 10,000


def read_metrics(run) -> dict:
    return json.loads((run / "metrics.json").read_text())


def top_two_margin(logits: np.ndarray) -> np.ndarray:
    top_two = np.sort(logits, axis=1)[:, -2:]
    return top_two[:, 1] - top_two[:, 0]


def test_param_counts_match():
    torch_counts = torch_layer_counts(Net())
    flax_counts = flax_layer_counts(init_params(jax.random.key(0)))
    assert torch_counts == flax_counts, f"torch {torch_counts} vs flax {flax_counts}"
    assert sum(torch_counts.values()) == PARAM_COUNT == 13_498


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_epoch_accuracy(backend, trained_runs):
    metrics = read_metrics(trained_runs[backend])
    record = metrics["epochs"][0]
    assert metrics["seed"] == 0
    assert metrics["params"] == 13_498
    assert not metrics["dry_run"]

    running, test = record["running_train_accuracy"], record["test_accuracy"]
    assert running >= MIN_RUNNING_TRAIN_ACCURACY, f"{backend} running train accuracy {100 * running:.2f}% < {100 * MIN_RUNNING_TRAIN_ACCURACY:.0f}%"
    assert test >= MIN_TEST_ACCURACY, f"{backend} test accuracy {100 * test:.2f}% < {100 * MIN_TEST_ACCURACY:.0f}%"


@pytest.mark.parametrize("trainer", BACKENDS)
def test_checkpoint_evaluates_alike(trainer, trained_runs):
    checkpoint = trained_runs[trainer] / "model.safetensors"
    data = harness.load_data()
    logits = {"torch_ref": harness.torch_logits(checkpoint, data["test_images"]), "jax_impl": harness.jax_logits(checkpoint, data["test_images"])}
    own, other = logits[trainer], logits[next(backend for backend in BACKENDS if backend != trainer)]

    clear = top_two_margin(own) > MARGIN
    flipped = np.flatnonzero(clear & (own.argmax(1) != other.argmax(1)))
    assert len(flipped) == 0, f"{len(flipped)} of {clear.sum()} clear predictions differ between the backends, first {flipped[:10].tolist()}"

    correct = {backend: int((values.argmax(1) == data["test_labels"]).sum()) for backend, values in logits.items()}
    assert abs(correct["torch_ref"] - correct["jax_impl"]) <= MAX_CORRECT_GAP, f"correct test predictions: torch {correct['torch_ref']} vs jax {correct['jax_impl']}"
    recorded = round(read_metrics(trained_runs[trainer])["epochs"][0]["test_accuracy"] * len(data["test_labels"]))
    assert abs(correct[trainer] - recorded) <= MAX_CORRECT_GAP, f"{trainer} evaluates its checkpoint at {correct[trainer]} correct, its run recorded {recorded}"
