"""The shared plots module: confusion counts, the choice of mistakes, running accuracy, and the three PNGs a run writes."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from mnist_common import plots

PNG_NAMES = ["curves.png", "confusion.png", "mistakes.png"]


def fake_metrics(epochs: int = 2, examples: int = 470, batch_size: int = 16, seed: int = 0) -> dict:
    """Build a metrics.json document of `epochs` epochs over `examples` examples, the last batch partial."""
    rng = np.random.default_rng(seed)
    steps = -(-examples // batch_size)
    sizes = np.full(steps, batch_size)
    sizes[-1] = examples - (steps - 1) * batch_size
    records = []
    for epoch in range(1, epochs + 1):
        correct = rng.binomial(sizes, np.linspace(0.3, 0.95, steps))
        records.append({
            "epoch": epoch,
            "running_train_accuracy": correct.sum() / examples,
            "running_train_loss": 0.5,
            "train_accuracy": 0.9 + 0.02 * epoch,
            "train_loss": 0.3 / epoch,
            "test_accuracy": 0.9 + 0.03 * epoch,
            "test_loss": 0.25 / epoch,
            "epoch_seconds": 1.5,
            "steps": steps,
            "step_loss": list(np.geomspace(2.3, 0.05, steps) * rng.uniform(0.5, 1.5, steps)),
            "step_correct": [int(c) for c in correct],
        })
    return {
        "format": 1, "backend": "torch_ref", "device": "cpu", "params": 13498, "seed": seed, "dtype": "float32",
        "config": {"batch_size": batch_size, "epochs": epochs, "lr": 0.004}, "epochs": records,
    }


def fake_test_set(n: int = 200, wrong: int = 70, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return uint8 images, labels and logits of which exactly `wrong` predictions are wrong."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).astype(np.int32)
    predictions = labels.copy()
    predictions[:wrong] = (labels[:wrong] + rng.integers(1, 10, size=wrong)) % 10
    logits = rng.normal(size=(n, 10)).astype(np.float32)
    logits[np.arange(n), predictions] += 6.0
    return images, labels, logits


def test_confusion_matrix_counts():
    labels = np.array([0, 0, 1, 2, 2, 2, 9])
    predictions = np.array([0, 1, 1, 2, 0, 2, 3])
    matrix = plots.confusion_matrix(labels, predictions)

    expected = np.zeros((10, 10), dtype=np.int64)
    for true, predicted in [(0, 0), (0, 1), (1, 1), (2, 2), (2, 0), (2, 2), (9, 3)]:
        expected[true, predicted] += 1
    assert matrix.shape == (10, 10)
    assert np.array_equal(matrix, expected), f"got\n{matrix}\nexpected\n{expected}"
    assert matrix[2, 2] == 2, "rows are true classes, columns predictions"
    assert matrix.sum() == len(labels)


def test_confusion_matrix_shape_mismatch():
    with pytest.raises(ValueError, match="differ in shape"):
        plots.confusion_matrix(np.zeros(3), np.zeros(4))


def test_select_mistakes_most_confident_first():
    labels = np.array([0, 1, 2, 3, 4])
    logits = np.full((5, 10), -10.0)
    logits[0, 0] = 10.0  # right
    logits[1, 7] = 1.0  # wrong, low confidence
    logits[2, 5] = 8.0  # wrong, high confidence
    logits[3, 3] = 9.0  # right
    logits[4, 9] = 4.0  # wrong, middle confidence
    indices, predictions, confidences = plots.select_mistakes(labels, logits)

    assert indices.tolist() == [2, 4, 1], f"got {indices.tolist()}, expected the wrong ones, most confident first"
    assert predictions.tolist() == [5, 9, 7]
    expected = plots.softmax(logits).max(axis=1)[[2, 4, 1]]
    np.testing.assert_allclose(confidences, expected, rtol=1e-12)
    assert np.all(np.diff(confidences) <= 0), f"confidences not descending: {confidences}"


def test_select_mistakes_limit_and_none():
    _, labels, logits = fake_test_set(n=200, wrong=70)
    indices, _, _ = plots.select_mistakes(labels, logits)
    assert len(indices) == 64, f"got {len(indices)} of 70 wrong, expected the limit of 64"
    assert set(indices.tolist()) <= set(range(70)), "only misclassified examples may be chosen"

    right = np.eye(10)[labels] * 5.0
    indices, predictions, confidences = plots.select_mistakes(labels, right)
    assert len(indices) == len(predictions) == len(confidences) == 0


def test_running_accuracy_partial_last_batch():
    # 38 examples in batches of 16: the last step has 6.
    record = {"step_correct": [16, 8, 3], "running_train_accuracy": 27 / 38}
    assert plots.step_batch_sizes(record, 16).tolist() == [16, 16, 6]
    np.testing.assert_allclose(plots.running_accuracy(record, 16), [16 / 16, 24 / 32, 27 / 38], rtol=1e-12)


def test_running_accuracy_ends_at_record():
    metrics = fake_metrics(examples=470)
    for record in metrics["epochs"]:
        running = plots.running_accuracy(record, 16)
        assert running[-1] == pytest.approx(record["running_train_accuracy"], abs=1e-12), "last point must equal the epoch's running accuracy"


def test_moving_mean_window():
    np.testing.assert_allclose(plots.moving_mean([1, 2, 3, 4, 5], 2), [1, 1.5, 2.5, 3.5, 4.5], rtol=1e-12)
    np.testing.assert_allclose(plots.moving_mean([4.0], 100), [4.0], rtol=1e-12)


def test_write_run_plots_files(tmp_path):
    images, labels, logits = fake_test_set()
    written = plots.write_run_plots(tmp_path, fake_metrics(epochs=3), images, labels, logits)

    assert [path.name for path in written] == PNG_NAMES
    for path in written:
        assert path.parent == tmp_path
        size = path.stat().st_size
        assert 10_000 < size < 1_000_000, f"{path.name} is {size} bytes, expected 10 KB to 1 MB"
        with Image.open(path) as image:
            width, height = image.size
            assert image.format == "PNG"
        assert 400 <= width <= 2000, f"{path.name} is {width} pixels wide"
        assert 300 <= height <= 2000, f"{path.name} is {height} pixels high"
    leftovers = [path.name for path in tmp_path.iterdir() if path.name not in PNG_NAMES]
    assert leftovers == [], f"temporary files left behind: {leftovers}"


def test_write_run_plots_edge_cases(tmp_path):
    """One epoch of a single step, and a model that gets every test digit right, still give three images."""
    images, labels, _ = fake_test_set(n=50, wrong=10)
    perfect = np.eye(10, dtype=np.float32)[labels] * 5.0
    written = plots.write_run_plots(tmp_path, fake_metrics(epochs=1, examples=16), images, labels, perfect)
    assert [path.name for path in written] == PNG_NAMES
    assert all(path.stat().st_size > 5_000 for path in written), [path.stat().st_size for path in written]


def test_trainer_writes_plots(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "torch_ref.train", "--dry-run", "--epochs", "2", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert sorted(path.name for path in tmp_path.glob("*.png")) == sorted(PNG_NAMES)


@pytest.mark.parametrize("backend", ["torch_ref", "jax_impl"])
def test_trainer_no_plots_flag(backend, trained_runs):
    """The shared one-epoch runs are trained with --no-plots."""
    assert (trained_runs[backend] / "metrics.json").is_file()
    images = [path.name for path in trained_runs[backend].glob("*.png")]
    assert images == [], f"--no-plots still wrote {images}"
