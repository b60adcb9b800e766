"""The checkpoint format both backends read and write: safetensors in PyTorch's layout, with run metadata."""

import json
import platform
from importlib import metadata as importlib_metadata
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from mnist_common.files import atomic_path

FORMAT = "mnist-port-checkpoint/1"
LIBRARIES = ("numpy", "torch", "jax", "jaxlib", "flax", "optax", "safetensors")


class CheckpointError(ValueError):
    """A file that is missing, truncated or not a checkpoint of this project."""


def library_versions() -> dict[str, str]:
    """Return the installed versions of the libraries a result depends on (absent ones omitted)."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            pass
    return versions


def save_checkpoint(path: str | Path, tensors: dict[str, np.ndarray], metadata: dict) -> Path:
    """Write `tensors` (PyTorch key names and layout) and JSON-encoded `metadata` atomically to `path`."""
    path = Path(path)
    header = {"format": FORMAT}
    header.update({key: value if isinstance(value, str) else json.dumps(value) for key, value in metadata.items()})
    arrays = {key: np.ascontiguousarray(value) for key, value in tensors.items()}
    with atomic_path(path) as temporary:
        save_file(arrays, temporary, metadata=header)
    return path


def load_checkpoint(path: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """Read a checkpoint written by either backend; return (tensors, metadata with JSON values decoded)."""
    path = Path(path)
    if path.is_dir():
        hint = f"; did you mean {path / 'model.safetensors'}?" if (path / "model.safetensors").is_file() else ""
        raise CheckpointError(f"{path} is a folder, not a checkpoint file{hint}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path} (the trainers write model.safetensors into their --out folder)")
    try:
        tensors = load_file(path)
        with open(path, "rb") as handle:
            header_size = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(header_size))
    except (SafetensorError, ValueError, OSError) as error:
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint (truncated or another format): {error}") from None
    raw = header.get("__metadata__") or {}
    if raw.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a safetensors file but not a checkpoint of this project (metadata 'format' is {raw.get('format')!r}, expected {FORMAT!r})")
    metadata = {}
    for key, value in raw.items():
        try:
            metadata[key] = json.loads(value)
        except json.JSONDecodeError:
            metadata[key] = value
    return tensors, metadata
