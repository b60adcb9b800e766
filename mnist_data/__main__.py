"""Command line: `python -m mnist_data fetch` fills and verifies the cache; `info` describes the files in use."""

import argparse
import gzip
import hashlib
import logging
import sys
import zlib
from pathlib import Path

import numpy as np

from mnist_data.cache import ALL_FILES, EXPECTED_SHA256, SPLIT_FILES, ChecksumError, cache_dir, checksum_mismatch
from mnist_data.fetch import FetchError, data_dir_from, fetch_files, find_in_data_dir
from mnist_data.idx import NUM_CLASSES, IDXError, read_image_label_pair


def raw_sha256(path: Path) -> str:
    """Return the SHA-256 of a file's raw bytes, decompressing it first if its name ends in .gz."""
    digest = hashlib.sha256()
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as file:
            while chunk := file.read(1 << 20):
                digest.update(chunk)
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise IDXError(f"{path}: invalid gzip data ({error})") from error
    return digest.hexdigest()


def _folder_description(user_folder: tuple[Path, str] | None) -> str:
    if user_folder:
        folder, origin = user_folder
        return f"{folder} (from {origin})"
    return f"{cache_dir()} (cache)"


def _class_counts(labels: np.ndarray) -> str:
    counts = np.bincount(labels, minlength=NUM_CLASSES)
    return " ".join(f"{digit}:{count}" for digit, count in enumerate(counts))


def fetch_command(data_dir: str | None) -> int:
    """Fetch (or find) the four files, check their SHA-256 and IDX structure, and print their paths."""
    user_folder = data_dir_from(data_dir)
    if user_folder:
        folder, origin = user_folder
        paths = find_in_data_dir(folder, ALL_FILES, origin)
        for name, path in paths.items():
            mismatch = checksum_mismatch(name, raw_sha256(path))
            if mismatch:
                raise ChecksumError(f"{path}: {mismatch}; this is not the published MNIST file")
    else:
        paths = fetch_files(ALL_FILES)

    sizes = {}
    for split, (images_name, labels_name) in SPLIT_FILES.items():
        _, labels = read_image_label_pair(paths[images_name], paths[labels_name])
        sizes[split] = len(labels)
    print(f"MNIST files in {_folder_description(user_folder)}, SHA-256 verified:")
    for path in paths.values():
        print(f"  {path}")
    print(f"train: {sizes['train']} examples, test: {sizes['test']} examples")
    return 0


def info_command(data_dir: str | None) -> int:
    """Print each file's path, size and checksum status and the per-class counts of each split."""
    user_folder = data_dir_from(data_dir)
    folder = user_folder[0] if user_folder else cache_dir()
    print(f"MNIST folder: {_folder_description(user_folder)}")

    problems = []
    paths = {}
    print(f"{'file':<25} {'bytes':>9}  {'sha256':<8}  path")
    for name in ALL_FILES:
        candidates = [folder / name, folder / f"{name}.gz"] if user_folder else [folder / name]
        path = next((candidate for candidate in candidates if candidate.is_file()), None)
        if path is None:
            problems.append(f"{name} is missing")
            print(f"{name:<25} {'-':>9}  {'missing':<8}  {candidates[0]}")
            continue
        try:
            status = "ok" if raw_sha256(path) == EXPECTED_SHA256[name] else "mismatch"
        except (OSError, IDXError) as error:
            status = "unreadable"
            problems.append(str(error))
        if status == "mismatch":
            problems.append(f"{name} has the wrong SHA-256")
        paths[name] = path
        print(f"{name:<25} {path.stat().st_size:>9}  {status:<8}  {path}")

    for split, (images_name, labels_name) in SPLIT_FILES.items():
        if images_name not in paths or labels_name not in paths:
            print(f"{split}: files missing")
            continue
        try:
            images, labels = read_image_label_pair(paths[images_name], paths[labels_name])
        except (ValueError, OSError) as error:
            problems.append(str(error))
            print(f"{split}: invalid ({error})")
            continue
        print(f"{split}: {len(images)} examples; per class {_class_counts(labels)}")

    if problems:
        remedy = f"put valid files in {folder}" if user_folder else "run `python -m mnist_data fetch` to fetch or replace them"
        print(f"error: {'; '.join(problems)}; {remedy}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the `fetch` or `info` command and return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m mnist_data", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("fetch", "fetch the four MNIST files into the cache and verify them"),
                            ("info", "show paths, sizes, checksum status and per-class counts; downloads nothing")):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--data-dir", help="read this folder of raw or .gz files instead of the cache "
                                                "(default: MNIST_DATA_DIR if set, else the cache)")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        return fetch_command(args.data_dir) if args.command == "fetch" else info_command(args.data_dir)
    except (FetchError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
