"""Checkpoints as the common ground of both backends: their metadata, clear errors for bad files, and `--init-from` with `--dtype` end to end."""

import json
import re
import subprocess
import sys
from importlib import metadata as importlib_metadata

import jax
import numpy as np
import pytest
import torch

from jax_impl import train as jax_train
from mnist_common.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from mnist_common.config import Config
from mnist_data.cache import EXPECTED_SHA256
from parity import harness
from parity.convert import TORCH_SHAPES
from torch_ref import train as torch_train

BACKENDS = ("torch_ref", "jax_impl")
DRY_RUN_FLOAT64_TOLERANCE = harness.FLOAT64_TOLERANCE  # 1e-10


def random_state_dict(dtype) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {key: rng.normal(size=shape).astype(dtype) for key, shape in TORCH_SHAPES.items()}


@pytest.mark.parametrize("backend", BACKENDS)
def test_trained_checkpoint_metadata(backend, trained_runs):
    _, metadata = load_checkpoint(trained_runs[backend] / "model.safetensors")
    metrics = json.loads((trained_runs[backend] / "metrics.json").read_text())

    assert metadata["backend"] == backend
    assert metadata["config"] == Config().to_dict()
    assert metadata["seed"] == 0
    assert metadata["dtype"] == "float32"
    assert metadata["test_accuracy"] == metrics["epochs"][-1]["test_accuracy"]
    assert metadata["mnist_sha256"] == EXPECTED_SHA256
    for library in ("numpy", "torch", "jax", "flax", "optax", "safetensors"):
        assert metadata["versions"].get(library) == importlib_metadata.version(library), f"version of {library}: {metadata['versions'].get(library)!r}"


@pytest.mark.parametrize("length", [0, 7, 8, 100, -1000, -1], ids=lambda n: f"bytes[:{n}]")
def test_truncated_checkpoint(length, tmp_path):
    whole = save_checkpoint(tmp_path / "whole.safetensors", random_state_dict(np.float32), {"backend": "torch_ref"}).read_bytes()
    path = tmp_path / "truncated.safetensors"
    path.write_bytes(whole[:length])

    with pytest.raises(CheckpointError, match=re.escape(f"{path} is not a readable safetensors checkpoint (truncated or another format)")):
        load_checkpoint(path)


def test_text_file_is_not_checkpoint(tmp_path):
    path = tmp_path / "notes.safetensors"
    path.write_text("weights: none\n")
    with pytest.raises(CheckpointError, match=re.escape(f"{path} is not a readable safetensors checkpoint")):
        load_checkpoint(path)


def test_foreign_safetensors_is_not_checkpoint(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "foreign.safetensors"
    save_file(random_state_dict(np.float32), str(path))
    with pytest.raises(CheckpointError, match=re.escape(f"{path} is a safetensors file but not a checkpoint of this project")):
        load_checkpoint(path)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "absent.safetensors")


def test_run_folder_is_not_checkpoint(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="is a folder, not a checkpoint file") as raised:
        load_checkpoint(tmp_path)
    assert f"did you mean {tmp_path / 'model.safetensors'}?" in str(raised.value)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_init_from_keeps_weights_exact(dtype, tmp_path):
    weights = random_state_dict(dtype)
    path = save_checkpoint(tmp_path / "start.safetensors", weights, {"dtype": dtype})

    model = torch_train.create_model(Config(), torch_train.DTYPES[dtype], torch.device("cpu"), path)
    with jax.enable_x64(dtype == "float64"):
        params = jax_train.create_params(Config(), jax_train.DTYPES[dtype], path)
        loaded = {"torch_ref": torch_train.state_dict_arrays(model), "jax_impl": jax_train.state_dict_arrays(params)}

    for backend, state_dict in loaded.items():
        for key, value in weights.items():
            assert state_dict[key].dtype == np.dtype(dtype), f"{backend} {key}: {state_dict[key].dtype}"
            assert state_dict[key].tobytes() == value.tobytes(), f"{backend} {key}: max |difference| {np.abs(state_dict[key] - value).max():.3g}"


def test_cli_float64_from_same_checkpoint(start_checkpoint, tmp_path):
    commands = {
        backend: [sys.executable, "-m", f"{backend}.train", "--dry-run", "--no-plots", "--dtype", "float64", "--init-from", str(start_checkpoint), "--out", str(tmp_path / backend)]
        for backend in BACKENDS
    }
    # Both trainers run at once: most of a dry run is single-threaded start-up and compilation.
    logs = {backend: tmp_path / f"{backend}.log" for backend in BACKENDS}
    processes = {}
    for backend, command in commands.items():
        with open(logs[backend], "w") as log:
            processes[backend] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    checkpoints = {}
    for backend, process in processes.items():
        process.wait(timeout=600)
        assert process.returncode == 0, f"{backend}.train failed:\n{logs[backend].read_text()[-3000:]}"
        metrics = json.loads((tmp_path / backend / "metrics.json").read_text())
        assert metrics["dtype"] == "float64", metrics["dtype"]
        assert metrics["init_from"] == str(start_checkpoint), metrics["init_from"]
        checkpoints[backend], _ = load_checkpoint(tmp_path / backend / "model.safetensors")

    for backend, tensors in checkpoints.items():
        dtypes = {value.dtype for value in tensors.values()}
        assert dtypes == {np.dtype(np.float64)}, f"{backend} saved {dtypes}, expected float64"
    per_layer = harness.max_difference_per_layer(checkpoints["torch_ref"], checkpoints["jax_impl"])
    for layer, difference in per_layer.items():
        assert difference <= DRY_RUN_FLOAT64_TOLERANCE, f"{layer}: max |param difference| {difference:.3g} after the 20-step dry run"
