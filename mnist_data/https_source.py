"""Fetch the gzip-compressed MNIST files over HTTPS from a list of mirrors.

Each download is decompressed while it streams into the cache, so the SHA-256 check applies to
the raw bytes (the sums of the `.gz` files are not published).
"""

import http.client
import logging
import os
import ssl
import sys
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from tqdm import tqdm

from mnist_data.cache import ChecksumError, store_verified

DEFAULT_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
DOWNLOAD_TIMEOUT_S = 30
_CHUNK_SIZE = 1 << 16
_GZIP_WBITS = 31  # zlib's setting for a gzip header and trailer

logger = logging.getLogger(__name__)


class DownloadError(Exception):
    """A download that failed after the server sent a response."""


def configured_mirrors() -> list[str]:
    """Return the mirror base URLs: `MNIST_MIRRORS` (comma-separated) if set, else DEFAULT_MIRRORS."""
    value = os.environ.get("MNIST_MIRRORS", "")
    mirrors = [url.strip() for url in value.split(",") if url.strip()] or list(DEFAULT_MIRRORS)
    for url in mirrors:
        if urlsplit(url).scheme != "https":
            raise ValueError(f"MNIST_MIRRORS entry {url!r} is not an https:// URL; only HTTPS mirrors are supported")
    return [url if url.endswith("/") else url + "/" for url in mirrors]


def ssl_context() -> ssl.SSLContext:
    """Return the TLS context for downloads: it trusts only `MNIST_CA_FILE` (a PEM file) if set, else the system CAs."""
    ca_file = os.environ.get("MNIST_CA_FILE") or None
    return ssl.create_default_context(cafile=ca_file)


def _gunzip_response(response: http.client.HTTPResponse, name: str) -> Iterator[bytes]:
    total = response.length
    received = 0
    decompressor = zlib.decompressobj(wbits=_GZIP_WBITS)
    with tqdm(total=total, unit="B", unit_scale=True, desc=f"{name}.gz", file=sys.stderr) as progress:
        while True:
            try:
                chunk = response.read(_CHUNK_SIZE)
            except http.client.IncompleteRead as error:
                received += len(error.partial)
                raise DownloadError(f"connection closed after {received} of {total} bytes") from error
            if not chunk:
                break
            received += len(chunk)
            progress.update(len(chunk))
            while chunk:
                # A gzip file may hold several members back to back; each needs a fresh decompressor.
                if decompressor.eof:
                    decompressor = zlib.decompressobj(wbits=_GZIP_WBITS)
                yield decompressor.decompress(chunk)
                chunk = decompressor.unused_data if decompressor.eof else b""
    # HTTPResponse.read(amt) returns b"" rather than raising when the connection closes early.
    if total is not None and received < total:
        raise DownloadError(f"connection closed after {received} of {total} bytes")
    if not decompressor.eof:
        raise DownloadError(f"gzip data ended early after {received} bytes; the server closed the connection mid-file")
    yield decompressor.flush()


def _download(url: str, name: str, cache_folder: Path, context: ssl.SSLContext) -> None:
    logger.info("Downloading %s", url)
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S, context=context) as response:
        store_verified(_gunzip_response(response, name), cache_folder, name)


def fetch_from_https(names: list[str], cache_folder: Path) -> dict[str, str]:
    """Store `names` from the first mirror that serves each; return {name: reason} for those not stored."""
    mirrors = configured_mirrors()
    if not mirrors:
        return dict.fromkeys(names, "no mirrors configured; set MNIST_MIRRORS to comma-separated base URLs")
    context = ssl_context()
    unreachable = {}
    failures = {}
    for name in names:
        reasons = []
        for mirror in mirrors:
            url = f"{mirror}{name}.gz"
            if mirror in unreachable:
                reasons.append(f"{url}: skipped because {mirror} failed earlier ({unreachable[mirror]})")
                continue
            try:
                _download(url, name, cache_folder, context)
                break
            except urllib.error.HTTPError as error:
                reasons.append(f"{url}: HTTP {error.code} {error.reason}")
            except urllib.error.URLError as error:
                # The host did not respond (refused, DNS, TLS or timeout), so the other files would fail alike.
                unreachable[mirror] = str(error.reason)
                reasons.append(f"{url}: {error.reason}")
            except TimeoutError:
                reasons.append(f"{url}: timed out after {DOWNLOAD_TIMEOUT_S} s")
            except zlib.error as error:
                reasons.append(f"{url}: invalid gzip data ({error})")
            except (DownloadError, ChecksumError, http.client.HTTPException, OSError) as error:
                reasons.append(f"{url}: {error}")
        else:
            failures[name] = "; ".join(reasons)
    return failures
