"""Plumbing both `evaluate.py` files share: their command line, checkpoint and metrics.json checks, the printed report and evaluation.json."""

import argparse
import json
from pathlib import Path
from typing import NoReturn

import numpy as np

from mnist_common import cli, plots, run
from mnist_common.checkpoint import library_versions, load_checkpoint
from mnist_common.config import Config
from mnist_data import load_mnist
from parity.convert import check_state_dict

EVALUATION_FORMAT = 1
RUN_KEYS = ("backend", "device", "seed", "dtype", "config", "epochs")
EPOCH_KEYS = ("epoch", "running_train_accuracy", "train_accuracy", "test_accuracy", "test_loss", "epoch_seconds", "step_loss", "step_correct")


class MetricsError(ValueError):
    """A run folder without a readable metrics.json of the current format."""


def fail(prog: str, message: str) -> NoReturn:
    """Exit with status 1 after printing one line to stderr, without a traceback."""
    raise SystemExit(f"{prog}: error: {message}")


def evaluate_parser(backend: str) -> argparse.ArgumentParser:
    """Build the argument parser of `python -m BACKEND.evaluate`."""
    framework = "PyTorch" if backend == "torch_ref" else "JAX/Flax"
    parser = cli.OneLineParser(
        prog=f"python -m {backend}.evaluate",
        description=f"Evaluate a model.safetensors of either backend with {framework} on the 10,000 MNIST test images.",
    )
    parser.add_argument("checkpoint", type=Path, help="model.safetensors written by torch_ref.train or jax_impl.train")
    parser.add_argument("--out", type=Path, default=None, help="folder for evaluation.json, confusion.png and mistakes.png (default: print only)")
    parser.add_argument("--data-dir", type=Path, default=None, help="folder holding the four MNIST IDX files (default: MNIST_DATA_DIR, then the user cache, then download)")
    parser.add_argument("--data-source", choices=["auto", "tfds"], default="auto", help="'tfds' loads MNIST through tensorflow-datasets (default auto)")
    parser.add_argument("--device", choices=["auto", "cpu", "gpu", "cuda"], default="auto", help="'auto' picks a GPU when one is present, else the CPU; 'cuda' is an alias of 'gpu' (default auto)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default=None, help="dtype of params and computation (default: the dtype the checkpoint was trained in)")
    return parser


def open_checkpoint(path: Path) -> tuple[dict, Config, str]:
    """Read and check a checkpoint; return (its metadata, the training config, the training dtype name).

    Raises CheckpointError for an unreadable file and ConversionError for weights of another model.
    """
    tensors, metadata = load_checkpoint(path)
    check_state_dict(tensors)
    stored = metadata.get("config") if isinstance(metadata.get("config"), dict) else {}
    known = {key: value for key, value in stored.items() if key in Config.__dataclass_fields__}
    dtype = metadata.get("dtype") if metadata.get("dtype") in ("float32", "float64") else "float32"
    return metadata, Config(**known), dtype


def load_test_split(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """Load the 10,000 test images as uint8 and their labels as int32."""
    images, labels = load_mnist("test", data_dir=args.data_dir, source=args.data_source)
    return np.ascontiguousarray(images, dtype=np.uint8), np.ascontiguousarray(labels, dtype=np.int32)


def per_class_rows(matrix: np.ndarray) -> list[dict]:
    """Summarize each true class of a confusion matrix: images, correct, accuracy, most frequent wrong prediction."""
    rows = []
    for digit, counts in enumerate(matrix):
        wrong = counts.copy()
        wrong[digit] = 0
        rows.append({
            "class": digit,
            "images": int(counts.sum()),
            "correct": int(counts[digit]),
            "accuracy": float(counts[digit] / max(counts.sum(), 1)),
            "most_confused_with": int(wrong.argmax()) if wrong.any() else None,
            "most_confused_count": int(wrong.max()),
        })
    return rows


def per_class_table(rows: list[dict]) -> str:
    lines = ["| class | images | correct | accuracy | most often predicted instead |", "|---:|---:|---:|---:|---|"]
    for row in rows:
        confused = f"{row['most_confused_with']} ({row['most_confused_count']}×)" if row["most_confused_with"] is not None else "-"
        lines.append(f"| {row['class']} | {row['images']:,} | {row['correct']:,} | {100 * row['accuracy']:.2f}% | {confused} |")
    return "\n".join(lines)


def report(args: argparse.Namespace, backend: str, device: str, dtype: str, metadata: dict,
           images: np.ndarray, labels: np.ndarray, loss: float, accuracy: float, logits: np.ndarray) -> dict:
    """Print accuracy, loss and the per-class table; with --out, also write evaluation.json and the two plots."""
    logits = np.asarray(logits)
    matrix = plots.confusion_matrix(labels, logits.argmax(axis=-1))
    document = evaluation_document(args, backend, device, dtype, metadata, labels, loss, accuracy, logits, matrix)
    trained_by = document["trained_by"]
    recorded = metadata.get("test_accuracy")
    correct = int(np.trace(matrix))

    print(f"{backend}: evaluated {args.checkpoint} (trained by {trained_by}, {metadata.get('epochs', '?')} epoch(s), seed {metadata.get('seed', '?')}) on {device} ({dtype})")
    recorded_text = ""
    if isinstance(recorded, (int, float)):
        subset = f" on the dry run's first {run.DRY_RUN_EXAMPLES:,} test images" if metadata.get("dry_run") else ""
        recorded_text = f"; recorded at training: {100 * recorded:.2f}%{subset}"
    print(f"test accuracy {100 * accuracy:.2f}% ({correct:,} of {len(labels):,}), test loss {loss:.4f}{recorded_text}")
    print(per_class_table(document["per_class"]))

    if args.out is not None:
        title = f"{args.checkpoint} (trained by {trained_by})\nevaluated by {backend} on {device} ({dtype}): test accuracy {100 * accuracy:.2f}%"
        run.write_json(args.out / "evaluation.json", document)
        written = [
            args.out / "evaluation.json",
            plots.write_confusion(args.out / "confusion.png", matrix, title),
            plots.write_mistakes(args.out / "mistakes.png", images, labels, logits, title),
        ]
        print("wrote " + ", ".join(str(path) for path in written))
    return document


def evaluation_document(args: argparse.Namespace, backend: str, device: str, dtype: str, metadata: dict,
                        labels: np.ndarray, loss: float, accuracy: float, logits: np.ndarray, matrix: np.ndarray) -> dict:
    """Collect what evaluation.json records: the checkpoint, the evaluator, the figures and every misclassified example."""
    indices, predictions, confidences = plots.select_mistakes(labels, logits, limit=len(labels))
    return {
        "format": EVALUATION_FORMAT,
        "checkpoint": str(args.checkpoint),
        "trained_by": metadata.get("backend", "an unknown backend"),
        "checkpoint_metadata": {key: metadata.get(key) for key in ("backend", "device", "dtype", "seed", "epochs", "config", "test_accuracy")},
        "backend": backend,
        "device": device,
        "dtype": dtype,
        "test_examples": int(len(labels)),
        "test_accuracy": float(accuracy),
        "test_loss": float(loss),
        "per_class": per_class_rows(matrix),
        "confusion": matrix.tolist(),
        "mistakes": [
            {"index": int(index), "label": int(labels[index]), "prediction": int(prediction), "confidence": round(float(confidence), 6)}
            for index, prediction, confidence in zip(indices, predictions, confidences)
        ],
        "versions": library_versions(),
    }


def read_metrics(run_dir: Path) -> dict:
    """Read a run folder's metrics.json, checking its format and the fields that plots and comparisons use.

    Raises MetricsError with one line naming the file and what is missing.
    """
    run_dir = Path(run_dir)
    path = run_dir / "metrics.json"
    if not run_dir.is_dir():
        raise MetricsError(f"run folder not found: {run_dir}")
    if not path.is_file():
        raise MetricsError(f"{path} not found: {run_dir} is not a run folder written by torch_ref.train or jax_impl.train")
    try:
        metrics = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MetricsError(f"{path} is not readable JSON: {error}") from None
    if not isinstance(metrics, dict):
        raise MetricsError(f"{path} contains a JSON {type(metrics).__name__}, expected an object")

    found = metrics.get("format")
    if found != run.METRICS_FORMAT:
        age = "no 'format' key" if found is None else f"format {found!r}"
        raise MetricsError(f"{path} has {age}, expected format {run.METRICS_FORMAT}: it was written by another version of the trainers; train again")
    missing = [key for key in RUN_KEYS if key not in metrics]
    if missing:
        raise MetricsError(f"{path} lacks required field(s) {', '.join(missing)}")
    if not isinstance(metrics["epochs"], list) or not metrics["epochs"]:
        raise MetricsError(f"{path} has no epochs: the run stopped before its first epoch ended")
    if not isinstance(metrics["config"], dict) or "batch_size" not in metrics["config"]:
        raise MetricsError(f"{path} lacks required field config.batch_size")
    for number, record in enumerate(metrics["epochs"]):
        missing = [key for key in EPOCH_KEYS if key not in record]
        if missing:
            raise MetricsError(f"{path}: epochs[{number}] lacks required field(s) {', '.join(missing)}")
    return metrics
