"""Fixtures of the parity suite: full float32 precision on a GPU, one starting checkpoint and the training runs several tests compare."""

from pathlib import Path

import pytest

from parity import harness

harness.use_full_float32_precision()


@pytest.fixture(scope="session")
def start_checkpoint(tmp_path_factory) -> Path:
    """PyTorch's initialization for seed 0, saved as the checkpoint both backends start from."""
    return harness.write_start_checkpoint(tmp_path_factory.mktemp("start") / "seed0.safetensors", seed=0)


@pytest.fixture(scope="session")
def float64_runs(start_checkpoint) -> dict[str, harness.Run]:
    """The first 200 steps of the default recipe in float64, once per backend, from the same weights."""
    return {
        "torch_ref": harness.train_torch(start_checkpoint, "float64", max_steps=harness.FLOAT64_STEPS, evaluate_test=False),
        "jax_impl": harness.train_jax(start_checkpoint, "float64", max_steps=harness.FLOAT64_STEPS, evaluate_test=False),
    }


@pytest.fixture(scope="session")
def float32_epoch(tmp_path_factory):
    """Return a function seed -> {backend: Run} of one whole float32 epoch per backend from the same weights, each trained once per session."""
    runs: dict[int, dict[str, harness.Run]] = {}

    def epoch(seed: int) -> dict[str, harness.Run]:
        if seed not in runs:
            start = harness.write_start_checkpoint(tmp_path_factory.mktemp(f"start-seed{seed}") / "start.safetensors", seed)
            runs[seed] = {
                "torch_ref": harness.train_torch(start, "float32", seed=seed),
                "jax_impl": harness.train_jax(start, "float32", seed=seed),
            }
        return runs[seed]

    return epoch
