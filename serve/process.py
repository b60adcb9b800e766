"""Run `python -m serve` as a child process on 127.0.0.1 and a free port, for the load benchmark and the end-to-end tests."""

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (another process could still take it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerProcess:
    """Context manager: start the server, wait until GET /health returns 200, and stop the server on exit.

    The server's output goes to `log_path`, readable through `log()`; without a `log_path` it goes to a
    temporary file that is removed on exit.
    """

    def __init__(self, checkpoint: Path, backend: str = "both", log_level: str = "info", log_path: Path | None = None, startup_timeout: float = 180.0):
        self.checkpoint = Path(checkpoint).resolve()
        self.backend = backend
        self.log_level = log_level
        self.startup_timeout = startup_timeout
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_path) if log_path else None
        self.remove_log = log_path is None
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "ServerProcess":
        if self.log_path is None:
            descriptor, name = tempfile.mkstemp(prefix="serve-", suffix=".log")
            os.close(descriptor)
            self.log_path = Path(name)
        command = [
            sys.executable, "-m", "serve", "--checkpoint", str(self.checkpoint), "--backend", self.backend,
            "--host", "127.0.0.1", "--port", str(self.port), "--log-level", self.log_level,
        ]
        environment = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
        with open(self.log_path, "wb") as log_file:
            self.process = subprocess.Popen(command, cwd=REPO_ROOT, env=environment, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            self.wait_until_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
        if self.remove_log and self.log_path is not None:
            self.log_path.unlink(missing_ok=True)

    def wait_until_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"python -m serve exited with status {self.process.returncode} before /health returned 200; its log:\n{self.log()[-4000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"python -m serve timed out: {self.url}/health did not return 200 within {self.startup_timeout:.0f} s; its log:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        """Stop the server: SIGTERM, then SIGKILL if it has not exited within 10 s."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log(self) -> str:
        """Return everything the server has written to stdout and stderr so far."""
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""
