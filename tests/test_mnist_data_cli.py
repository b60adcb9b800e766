"""`python -m mnist_data fetch` and `info` on a synthetic cache or folder."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mnist_data.__main__ import main
from mnist_data.cache import ALL_FILES, SPLIT_FILES
from mnist_data.idx import parse_idx
from mnist_data.testing import synthetic_mnist_files, write_synthetic_mnist

pytestmark = pytest.mark.usefixtures("mnist_env")
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def filled_cache(mnist_env, synthetic_mnist):
    mnist_env.mkdir(parents=True)
    for name, data in synthetic_mnist.items():
        (mnist_env / name).write_bytes(data)
    return mnist_env


def expected_counts(files: dict[str, bytes], split: str) -> str:
    labels = parse_idx(files[SPLIT_FILES[split][1]], "labels")
    return " ".join(f"{digit}:{count}" for digit, count in enumerate(np.bincount(labels, minlength=10)))


def test_fetch_prints_cached_paths(filled_cache, capsys):
    assert main(["fetch"]) == 0
    output = capsys.readouterr().out
    assert f"MNIST files in {filled_cache} (cache), SHA-256 verified:" in output, output
    for name in ALL_FILES:
        assert f"  {filled_cache / name}\n" in output, f"{name} path missing from {output!r}"
    assert "train: 30 examples, test: 20 examples" in output, output


def test_fetch_failure_exits_nonzero(mnist_env, monkeypatch, capsys):
    monkeypatch.setenv("MNIST_SOURCES", "cache")
    assert main(["fetch"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: Could not fetch the MNIST files train-images-idx3-ubyte"), error


def test_fetch_data_dir_verifies_sums(tmp_path, synthetic_mnist, capsys):
    folder = tmp_path / "data"
    write_synthetic_mnist(folder, compress=True)
    assert main(["fetch", "--data-dir", str(folder)]) == 0
    assert f"MNIST files in {folder} (from --data-dir), SHA-256 verified:" in capsys.readouterr().out


def test_fetch_data_dir_rejects_other_files(tmp_path, synthetic_mnist, capsys):
    folder = tmp_path / "data"
    write_synthetic_mnist(folder, seed=99)
    assert main(["fetch", "--data-dir", str(folder)]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"error: {folder / 'train-images-idx3-ubyte'}: train-images-idx3-ubyte: SHA-256 mismatch"), error
    assert error.count("\n") == 1, f"expected a one-line error, got {error!r}"


def test_info_reports_files_and_classes(filled_cache, synthetic_mnist, capsys):
    assert main(["info"]) == 0
    output = capsys.readouterr().out
    for name in ALL_FILES:
        size = len(synthetic_mnist[name])
        assert f"{name:<25} {size:>9}  ok        {filled_cache / name}" in output, f"{name} line missing from:\n{output}"
    for split, n in (("train", 30), ("test", 20)):
        line = f"{split}: {n} examples; per class {expected_counts(synthetic_mnist, split)}"
        assert line in output, f"{line!r} missing from:\n{output}"


def test_info_flags_corrupt_file(filled_cache, capsys):
    path = filled_cache / "t10k-labels-idx1-ubyte"
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert main(["info"]) == 1
    captured = capsys.readouterr()
    corrupt_lines = [line for line in captured.out.splitlines() if line.startswith("t10k-labels-idx1-ubyte")]
    assert len(corrupt_lines) == 1, captured.out
    assert "  mismatch  " in corrupt_lines[0], corrupt_lines[0]
    assert captured.err == ("error: t10k-labels-idx1-ubyte has the wrong SHA-256; "
                            "run `python -m mnist_data fetch` to fetch or replace them\n"), captured.err


def test_info_downloads_nothing(mnist_env, capsys):
    assert main(["info"]) == 1
    captured = capsys.readouterr()
    missing_lines = [line for line in captured.out.splitlines() if "  missing  " in line]
    assert len(missing_lines) == 4, captured.out
    assert captured.err.startswith("error: train-images-idx3-ubyte is missing; "), captured.err
    assert not mnist_env.exists(), f"info created the cache folder {mnist_env}"


def test_module_entry_point_one_line_error(mnist_env, tmp_path):
    # A real subprocess: the sums are the published ones here, so the synthetic folder fails its check.
    folder = tmp_path / "data"
    folder.mkdir()
    for name, data in synthetic_mnist_files().items():
        (folder / name).write_bytes(data)
    result = subprocess.run([sys.executable, "-m", "mnist_data", "info", "--data-dir", str(folder)],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, f"exit status {result.returncode}, stderr {result.stderr!r}"
    assert result.stderr.count("\n") == 1, f"expected a one-line error, got {result.stderr!r}"
    assert result.stderr.startswith("error: train-images-idx3-ubyte has the wrong SHA-256"), result.stderr
    assert f"put valid files in {folder}" in result.stderr, result.stderr
    assert "train: 30 examples; per class" in result.stdout, result.stdout
