"""The two trainers' command lines: the files a run writes, and one-line errors for bad flags."""

import json
import subprocess
import sys

import pytest
from safetensors.numpy import load_file

BACKENDS = ("torch_ref", "jax_impl")
METRICS_KEYS = {"backend", "device", "params", "seed", "config", "dtype", "epochs"}
EPOCH_KEYS = {"running_train_accuracy", "train_accuracy", "test_accuracy", "test_loss", "epoch_seconds"}
TORCH_KEYS = {f"{layer}.{leaf}" for layer in ("conv1", "conv2", "conv3", "fc1", "fc2") for leaf in ("weight", "bias")}


def run_cli(backend: str, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"{backend}.train", *flags], capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dry_run_writes_metrics_and_checkpoint(backend, tmp_path):
    completed = run_cli(backend, "--dry-run", "--no-plots", "--epochs", "2", "--seed", "3", "--out", str(tmp_path))
    assert completed.returncode == 0, completed.stderr[-3000:]

    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert METRICS_KEYS <= metrics.keys(), f"missing {METRICS_KEYS - metrics.keys()}"
    assert metrics["backend"] == backend
    assert metrics["params"] == 13498
    assert metrics["seed"] == 3
    assert metrics["config"]["batch_size"] == 16
    assert len(metrics["epochs"]) == 2
    for record in metrics["epochs"]:
        assert EPOCH_KEYS <= record.keys(), f"missing {EPOCH_KEYS - record.keys()}"
        for key in ("running_train_accuracy", "train_accuracy", "test_accuracy"):
            assert 0.0 <= record[key] <= 1.0, f"{key} = {record[key]} is not a fraction"

    tensors = load_file(tmp_path / "model.safetensors")
    assert set(tensors) == TORCH_KEYS
    assert tensors["conv1.weight"].shape == (8, 1, 3, 3)
    assert tensors["fc1.weight"].shape == (64, 144)
    assert "epoch 2/2" in completed.stdout


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        (("--batch-size", "-16"), "--batch-size: must be a positive integer, got -16"),
        (("--batch-size", "0"), "--batch-size: must be a positive integer, got 0"),
        (("--device", "tpu"), "--device: invalid choice: 'tpu'"),
        (("--epochs", "0"), "--epochs: must be a positive integer, got 0"),
        (("--lr", "nan"), "--lr: must be a positive number, got nan"),
        (("--lr", "abc"), "--lr: must be a positive number, got 'abc'"),
        (("--seed", "1.5"), "--seed: must be an integer, got '1.5'"),
    ],
)
def test_bad_flag_exits_with_one_line(backend, flags, reason):
    completed = run_cli(backend, *flags)
    assert completed.returncode != 0
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got: {completed.stderr!r}"
    assert reason in lines[0], f"{reason!r} not in {lines[0]!r}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_missing_init_checkpoint_exits_with_one_line(backend, tmp_path):
    missing = tmp_path / "absent.safetensors"
    completed = run_cli(backend, "--dry-run", "--no-plots", "--init-from", str(missing), "--out", str(tmp_path / "run"))
    assert completed.returncode != 0
    lines = completed.stderr.strip().splitlines()
    assert str(missing) in lines[-1], f"error does not name the file: {completed.stderr[-2000:]!r}"
    assert "Traceback" not in completed.stderr


@pytest.mark.parametrize("backend", BACKENDS)
def test_out_that_is_a_file_fails_before_training(backend, tmp_path):
    not_a_folder = tmp_path / "notes.txt"
    not_a_folder.write_text("not a run folder")
    completed = run_cli(backend, "--dry-run", "--no-plots", "--out", str(not_a_folder))
    assert completed.returncode != 0
    assert "Traceback" not in completed.stderr
    assert completed.stderr.strip().splitlines()[-1] == f"--out {not_a_folder}: exists and is not a folder; pass a folder path"
    assert "epoch 1" not in completed.stderr, "training started before the --out check"


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_data_dir_exits_with_one_line(backend, tmp_path):
    completed = run_cli(backend, "--dry-run", "--no-plots", "--data-dir", str(tmp_path), "--out", str(tmp_path / "run"))
    assert completed.returncode != 0
    assert "Traceback" not in completed.stderr
    last = completed.stderr.strip().splitlines()[-1]
    assert str(tmp_path) in last, f"error does not name the folder: {last!r}"
    assert "train-images-idx3-ubyte" in last, f"error does not name the missing file: {last!r}"
