"""The two inference backends behind the service, both loaded from one checkpoint and warmed up before serving.

Each backend reuses its trainer's own functions (`create_params` / `create_model`, `predict_logits`)
and the shared normalization table, so the service runs exactly the model that was trained.
"""

import dataclasses
import time

import numpy as np

from mnist_common.config import Config
from mnist_common.run import normalization_table
from serve.inputs import IMAGE_SIZE, MAX_BATCH

BACKEND_CHOICES = ("jax", "torch", "both")
# Batch sizes JAX compiles at start-up; a request is padded up to the next one, so no request waits for a compile.
JAX_BUCKETS = (1, 16, 64, MAX_BATCH)


def checkpoint_config(metadata: dict) -> Config:
    """Rebuild the training config recorded in a checkpoint, or the default one when it records none."""
    known = {field.name for field in dataclasses.fields(Config)}
    stored = metadata.get("config")
    if not isinstance(stored, dict):
        return Config()
    return Config(**{key: value for key, value in stored.items() if key in known})


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=-1, keepdims=True)


class JaxBackend:
    """The Flax model, params on JAX's default device, inference through the jitted `jax_impl.train.predict_logits`."""

    name = "jax"
    label = "JAX/Flax"

    def __init__(self, checkpoint, config: Config):
        # Imported here so that a server started with --backend torch never loads JAX.
        import jax
        import jax.numpy as jnp
        from jax_impl import train
        from jax_impl.model import Net, layer_param_counts

        self._jax = jax
        self._predict_logits = train.predict_logits
        self.device = train.select_device("auto")
        self.params = jax.device_put(train.create_params(config, jnp.float32, init_from=checkpoint), self.device)
        self.table = jax.device_put(normalization_table(config).astype(np.float32), self.device)
        self.layer_params = layer_param_counts(self.params)
        self.framework = f"jax {jax.__version__}"
        self.architecture = Net.__doc__

    def logits(self, images: np.ndarray) -> np.ndarray:
        """Return float32 logits (N, 10) of uint8 images (N, 28, 28), N at most 256."""
        count = len(images)
        bucket = next(size for size in JAX_BUCKETS if size >= count)
        padded = np.zeros((bucket, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
        padded[:count] = images
        logits = self._predict_logits(self.params, self._jax.device_put(padded, self.device), self.table)
        return np.asarray(logits)[:count]

    def warm_up(self) -> None:
        for size in JAX_BUCKETS:
            self.logits(np.zeros((size, IMAGE_SIZE, IMAGE_SIZE), np.uint8))

    def describe(self) -> dict:
        return {"name": self.name, "label": self.label, "framework": self.framework, "device": f"{self.device.platform}:{self.device.id}", "dtype": "float32", "layer_params": self.layer_params}


class TorchBackend:
    """The PyTorch model on CUDA when present, inference through `torch_ref.train.predict_logits` under torch.inference_mode()."""

    name = "torch"
    label = "PyTorch"

    def __init__(self, checkpoint, config: Config):
        # Imported here so that a server started with --backend jax never loads PyTorch.
        import torch
        from torch_ref import train
        from torch_ref.model import Net, layer_param_counts

        self._torch = torch
        self._predict_logits = train.predict_logits
        self.device = train.select_device("auto")
        self.model = train.create_model(config, torch.float32, self.device, init_from=checkpoint).eval()
        self.table = torch.from_numpy(normalization_table(config)).to(device=self.device, dtype=torch.float32)
        self.layer_params = layer_param_counts(self.model)
        self.framework = f"torch {torch.__version__}"
        self.architecture = Net.__doc__

    def logits(self, images: np.ndarray) -> np.ndarray:
        """Return float32 logits (N, 10) of uint8 images (N, 28, 28)."""
        with self._torch.inference_mode():
            batch = self._torch.from_numpy(np.ascontiguousarray(images)).to(self.device)
            return self._predict_logits(self.model, batch, self.table).cpu().numpy()

    def warm_up(self) -> None:
        for size in (1, MAX_BATCH):
            self.logits(np.zeros((size, IMAGE_SIZE, IMAGE_SIZE), np.uint8))

    def describe(self) -> dict:
        return {"name": self.name, "label": self.label, "framework": self.framework, "device": str(self.device), "dtype": "float32", "layer_params": self.layer_params}


def load_backends(choice: str, checkpoint, config: Config) -> list:
    """Load and warm up the backends named by `choice` ('jax', 'torch' or 'both'), JAX first."""
    if choice not in BACKEND_CHOICES:
        raise ValueError(f"backend must be one of {', '.join(BACKEND_CHOICES)}, got {choice!r}")
    classes = {"jax": [JaxBackend], "torch": [TorchBackend], "both": [JaxBackend, TorchBackend]}[choice]
    backends = []
    for backend_class in classes:
        backend = backend_class(checkpoint, config)
        backend.warm_up()
        backends.append(backend)
    return backends


def predict(backends: list, images: np.ndarray) -> dict[str, dict]:
    """Run every backend on uint8 images (N, 28, 28); return per backend its digits, probabilities and milliseconds."""
    results = {}
    for backend in backends:
        start = time.perf_counter()
        logits = backend.logits(images)
        milliseconds = 1000 * (time.perf_counter() - start)
        probabilities = softmax(logits)
        results[backend.name] = {
            "digits": probabilities.argmax(axis=-1).tolist(),
            "probabilities": probabilities.tolist(),
            "milliseconds": milliseconds,
        }
    return results
