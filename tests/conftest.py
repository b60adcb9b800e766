"""Fixtures shared by the mnist_data tests: an isolated cache and environment, and synthetic MNIST files."""

import os
import sys

import pytest

from mnist_data import cache, https_source
from mnist_data.testing import sha256_of, synthetic_mnist_files


@pytest.fixture
def mnist_env(tmp_path, monkeypatch):
    """Point the cache at tmp_path and make every download source fail unless a test sets one up.

    Returns the cache folder. The default mirror list is emptied and a stand-in `npm` that exits
    with an error comes first on PATH, so no test reaches the real npm registry or mirrors.
    """
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    for name in ("MNIST_DATA_DIR", "MNIST_SOURCES", "MNIST_MIRRORS", "MNIST_CA_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(https_source, "DEFAULT_MIRRORS", ())

    bin_folder = tmp_path / "no-npm-bin"
    bin_folder.mkdir()
    npm = bin_folder / "npm"
    npm.write_text(f"#!{sys.executable}\nimport sys\nsys.exit('stand-in npm: this test set up no npm package')\n")
    npm.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_folder}{os.pathsep}{os.environ.get('PATH', '')}")
    return cache.cache_dir()


@pytest.fixture
def synthetic_mnist(monkeypatch):
    """Return synthetic raw MNIST files {name: bytes} and make them the expected SHA-256 sums."""
    files = synthetic_mnist_files()
    for name, digest in sha256_of(files).items():
        monkeypatch.setitem(cache.EXPECTED_SHA256, name, digest)
    return files
