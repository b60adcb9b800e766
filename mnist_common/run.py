"""Run plumbing both trainers share: data loading, progress bars, summary lines, metrics.json and checkpoint metadata."""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mnist_common.checkpoint import library_versions
from mnist_common.config import Config
from mnist_common.files import atomic_path
from mnist_data import load_mnist

METRICS_FORMAT = 1
DRY_RUN_STEPS = 20
DRY_RUN_EXAMPLES = 1000
PARAM_COUNT = 13498


def normalization_table(config: Config) -> np.ndarray:
    """Return the normalized value of each pixel value 0..255 as float64.

    Both backends gather from this table, cast to their dtype, so their inputs agree to the bit.
    """
    return (np.arange(256, dtype=np.float64) / 255.0 - config.mean) / config.std


def load_data(args: argparse.Namespace) -> dict[str, np.ndarray]:
    """Load both splits as uint8 images and int32 labels; a dry run keeps 1,000 examples of each."""
    data = {}
    for split in ("train", "test"):
        images, labels = load_mnist(split, data_dir=args.data_dir, source=args.data_source)
        if args.dry_run:
            images, labels = images[:DRY_RUN_EXAMPLES], labels[:DRY_RUN_EXAMPLES]
        data[f"{split}_images"] = np.ascontiguousarray(images, dtype=np.uint8)
        data[f"{split}_labels"] = np.ascontiguousarray(labels, dtype=np.int32)
    return data


def progress_bar(total: int, description: str) -> tqdm:
    return tqdm(total=total, desc=description, unit="step", file=sys.stderr, dynamic_ncols=True, leave=False, mininterval=0.5)


def epoch_summary(epoch: int, epochs: int, record: dict) -> str:
    """Format one epoch's figures as the single line printed when it ends."""
    return (
        f"epoch {epoch}/{epochs}: running train acc {100 * record['running_train_accuracy']:.2f}%"
        f"  train acc {100 * record['train_accuracy']:.2f}%  test acc {100 * record['test_accuracy']:.2f}%"
        f"  test loss {record['test_loss']:.4f}  {record['epoch_seconds']:.1f} s"
    )


def final_table(metrics: dict) -> str:
    """Format all epochs of a run as a markdown table."""
    lines = [
        f"{metrics['backend']} on {metrics['device']} ({metrics['dtype']}), {metrics['params']:,} params, seed {metrics['seed']}",
        "| epoch | running train acc | train acc | test acc | test loss | seconds |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for record in metrics["epochs"]:
        lines.append(
            f"| {record['epoch']} | {100 * record['running_train_accuracy']:.2f}% | {100 * record['train_accuracy']:.2f}%"
            f" | {100 * record['test_accuracy']:.2f}% | {record['test_loss']:.4f} | {record['epoch_seconds']:.1f} |"
        )
    return "\n".join(lines)


def epoch_record(epoch: int, step_loss: np.ndarray, step_correct: np.ndarray, n_seen: int, train: tuple, test: tuple, seconds: float) -> dict:
    """Collect one epoch's figures; `train` and `test` are (loss, accuracy) of the model after the epoch."""
    return {
        "epoch": epoch,
        "running_train_accuracy": float(step_correct.sum()) / n_seen,
        "running_train_loss": float(step_loss.mean()),
        "train_accuracy": float(train[1]),
        "train_loss": float(train[0]),
        "test_accuracy": float(test[1]),
        "test_loss": float(test[0]),
        "epoch_seconds": seconds,
        "steps": int(len(step_loss)),
        "step_loss": [round(float(value), 6) for value in step_loss],
        "step_correct": [int(value) for value in step_correct],
    }


def run_metadata(backend: str, device: str, config: Config, args: argparse.Namespace) -> dict:
    """Describe a run: what metrics.json contains besides its epochs, and what a checkpoint records."""
    return {
        "format": METRICS_FORMAT,
        "backend": backend,
        "device": device,
        "params": PARAM_COUNT,
        "seed": config.seed,
        "dtype": args.dtype,
        "config": config.to_dict(),
        "init_from": str(args.init_from) if args.init_from else None,
        "dry_run": bool(args.dry_run),
        "versions": library_versions(),
        "mnist_sha256": mnist_checksums(),
    }


def mnist_checksums() -> dict[str, str]:
    from mnist_data.cache import EXPECTED_SHA256

    return dict(EXPECTED_SHA256)


def write_json(path: Path, document: dict) -> None:
    """Write `document` to `path` through a temporary file, so a reader never sees half a file."""
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(document, indent=1))


def checkpoint_metadata(metrics: dict) -> dict:
    """Select what a checkpoint records about the run that produced it."""
    keys = ("backend", "device", "dtype", "seed", "config", "versions", "mnist_sha256", "init_from", "dry_run")
    metadata = {key: metrics[key] for key in keys}
    metadata["epochs"] = len(metrics["epochs"])
    metadata["test_accuracy"] = metrics["epochs"][-1]["test_accuracy"]
    return metadata


def finish(out: Path, metrics: dict, arrays: dict[str, np.ndarray], test_logits: np.ndarray, plots: bool) -> None:
    """Write the run's plots unless turned off, then print the final table and where the files are."""
    if plots:
        from mnist_common.plots import write_run_plots

        write_run_plots(out, metrics, arrays["test_images"], arrays["test_labels"], test_logits)
    print(final_table(metrics))
    written = "metrics.json, model.safetensors" + (", curves.png, confusion.png, mistakes.png" if plots else "")
    print(f"wrote {written} to {out}")
