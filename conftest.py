"""Fixtures shared by tests/ and parity/: one real one-epoch training run per backend, trained once per session."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BACKENDS = ("torch_ref", "jax_impl")


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory) -> dict[str, Path]:
    """Train each backend for one epoch with the default recipe (seed 0) through its CLI; return the run folders.

    Every test that needs a trained model shares these, so a test session trains each backend once.
    """
    runs = {}
    for backend in BACKENDS:
        out = tmp_path_factory.mktemp(f"run-{backend}")
        completed = subprocess.run(
            [sys.executable, "-m", f"{backend}.train", "--out", str(out), "--no-plots"],
            capture_output=True, text=True, timeout=900,
        )
        assert completed.returncode == 0, f"{backend}.train failed:\n{completed.stdout}\n{completed.stderr[-4000:]}"
        runs[backend] = out
    return runs


def read_metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())
