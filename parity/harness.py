"""Shared machinery of the parity tests and `parity.report`: one starting checkpoint, both trainers' own code run on the same batches, and the figures that compare the runs.

Every training run here goes through `torch_ref.train.train_epoch` and `jax_impl.train.train_epoch`, so a test of parity is a test of the product.
"""

import argparse
import dataclasses
import functools
import time
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np
import torch

from jax_impl import train as jax_train
from mnist_common import run
from mnist_common.checkpoint import save_checkpoint
from mnist_common.config import Config, steps_per_epoch
from mnist_data import batch_indices
from parity.convert import RULES, flax_to_torch
from torch_ref import train as torch_train

DTYPES = ("float32", "float64")
FLOAT64_STEPS = 200  # steps the float64 runs are compared over, step for step
# Float64 losses and params of the two backends agree to about 4e-14 over those steps (CPU). A tolerance
# of 1e-6 let a learning rate rounded to float32 pass (1.5e-7 after 200 steps), so it is much tighter.
FLOAT64_TOLERANCE = 1e-10
LAYERS = tuple(dict.fromkeys(key.split(".")[0] for key in RULES))


def use_full_float32_precision() -> None:
    """Turn off TF32 in both frameworks, so float32 matmuls and convolutions on a GPU round like on the CPU.

    JAX's default precision on recent GPUs and PyTorch's cuDNN default both use TF32 (10-bit mantissa).
    On the CPU these settings change nothing.
    """
    jax.config.update("jax_default_matmul_precision", "highest")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def device_description() -> str:
    """Name the devices the two trainers pick with --device auto."""
    torch_device = torch_train.select_device("auto")
    jax_device = jax_train.select_device("auto")
    return f"PyTorch on {torch_device}, JAX on {jax_device.platform}:{jax_device.id}"


@functools.cache
def load_data() -> dict[str, np.ndarray]:
    """Load both MNIST splits as the trainers do (uint8 images, int32 labels), once per process."""
    return run.load_data(argparse.Namespace(data_dir=None, data_source="auto", dry_run=False))


def write_start_checkpoint(path: Path, seed: int) -> Path:
    """Save PyTorch's float32 initialization for `seed` as the checkpoint both backends start from."""
    model = torch_train.create_model(Config(seed=seed), torch.float32, torch.device("cpu"))
    metadata = {"backend": torch_train.BACKEND, "seed": seed, "dtype": "float32", "epochs": 0, "purpose": "parity starting weights"}
    return save_checkpoint(path, torch_train.state_dict_arrays(model), metadata)


@dataclasses.dataclass
class Run:
    """The output of one backend's training run, params in PyTorch's layout."""

    backend: str
    dtype: str
    step_loss: np.ndarray  # loss of each step, measured before its update
    step_correct: np.ndarray  # correct predictions of each step's batch, before its update
    state_dict: dict[str, np.ndarray]  # params after the last step
    test_logits: np.ndarray | None  # logits of the 10,000 test images after the last step
    seconds: float

    def running_accuracy(self, batch_size: int) -> float:
        """Return the fraction of training examples the run classified correctly as it saw them."""
        return float(self.step_correct.sum()) / min(len(self.step_correct) * batch_size, len(load_data()["train_images"]))

    def test_accuracy(self) -> float:
        return float((self.test_logits.argmax(1) == load_data()["test_labels"]).mean())


def total_steps(config: Config) -> int:
    """Return the steps of the default recipe's schedule; a run cut short still decays over the whole epoch."""
    return config.epochs * steps_per_epoch(len(load_data()["train_images"]), config.batch_size)


def train_torch(
    start: Path,
    dtype: str,
    seed: int = 0,
    max_steps: int | None = None,
    evaluate_test: bool = True,
    memory_format: torch.memory_format = torch.channels_last,
) -> Run:
    """Train PyTorch from the checkpoint `start` for one epoch (or its first `max_steps` steps) with the default recipe.

    `memory_format` is the model's: torch_ref's channels-last, or `torch.contiguous_format` for a
    second PyTorch run that differs from the first only in float rounding.
    """
    config = Config(seed=seed)
    device = torch_train.select_device("auto")
    torch_train.use_cpu_threads(device)  # as torch_ref.train does, so a run here repeats the CLI's run bit for bit
    torch_dtype = torch_train.DTYPES[dtype]
    arrays = load_data()
    data = {key: torch.from_numpy(value).to(device) for key, value in arrays.items()}
    data["train_labels"] = data["train_labels"].long()  # as in torch_ref.train.main
    table = torch.from_numpy(run.normalization_table(config)).to(device=device, dtype=torch_dtype)

    started = time.perf_counter()
    model = torch_train.create_model(config, torch_dtype, device, start, memory_format)
    optimizer, scheduler = torch_train.create_optimizer(model, config, total_steps(config))
    step_loss, step_correct = torch_train.train_epoch(model, optimizer, scheduler, data, table, config, 0, max_steps)
    test_logits = None
    if evaluate_test:
        test_logits = torch_train.predict_logits(model, data["test_images"], table).cpu().numpy()
    seconds = time.perf_counter() - started
    return Run(torch_train.BACKEND, dtype, step_loss.astype(np.float64), step_correct, torch_train.state_dict_arrays(model), test_logits, seconds)


def train_jax(
    start: Path,
    dtype: str,
    seed: int = 0,
    max_steps: int | None = None,
    evaluate_test: bool = True,
    create_optimizer: Callable = jax_train.create_optimizer,
) -> Run:
    """Train JAX from the checkpoint `start` like `train_torch`; `create_optimizer(config, total_steps)` may swap in another optax chain."""
    config = Config(seed=seed)
    # jax_enable_x64 is global, and jax_impl.train.main sets it; this context fixes it for this thread either way.
    with jax.enable_x64(dtype == "float64"):
        device = jax_train.select_device("auto")
        jax_dtype = jax_train.DTYPES[dtype]
        data = {key: jax.device_put(value, device) for key, value in load_data().items()}
        table = jax.device_put(run.normalization_table(config).astype(jax_dtype), device)

        started = time.perf_counter()
        params = jax.device_put(jax_train.create_params(config, jax_dtype, start), device)
        tx = create_optimizer(config, total_steps(config))
        opt_state = tx.init(params)
        params, opt_state, step_loss, step_correct, _ = jax_train.train_epoch(tx, params, opt_state, data, table, config, 0, max_steps)
        test_logits = None
        if evaluate_test:
            test_logits = np.asarray(jax_train.predict_logits(params, data["test_images"], table))
        state_dict = jax_train.state_dict_arrays(params)
        seconds = time.perf_counter() - started
    return Run(jax_train.BACKEND, dtype, np.asarray(step_loss, np.float64), np.asarray(step_correct), state_dict, test_logits, seconds)


def torch_logits(start: Path, images: np.ndarray, dtype: str = "float32") -> np.ndarray:
    """Return PyTorch's logits of uint8 `images` with the weights of checkpoint `start`."""
    config = Config()
    device = torch_train.select_device("auto")
    torch_dtype = torch_train.DTYPES[dtype]
    table = torch.from_numpy(run.normalization_table(config)).to(device=device, dtype=torch_dtype)
    model = torch_train.create_model(config, torch_dtype, device, start)
    return torch_train.predict_logits(model, torch.from_numpy(images).to(device), table).cpu().numpy()


def jax_logits(start: Path, images: np.ndarray, dtype: str = "float32") -> np.ndarray:
    """Return JAX's logits of uint8 `images` with the weights of checkpoint `start`."""
    config = Config()
    with jax.enable_x64(dtype == "float64"):
        device = jax_train.select_device("auto")
        jax_dtype = jax_train.DTYPES[dtype]
        table = jax.device_put(run.normalization_table(config).astype(jax_dtype), device)
        params = jax.device_put(jax_train.create_params(config, jax_dtype, start), device)
        return np.asarray(jax_train.predict_logits(params, jax.device_put(images, device), table))


def first_batch(seed: int = 0, batch_size: int = Config.batch_size) -> tuple[np.ndarray, np.ndarray]:
    """Return the first training batch of epoch 0 in the shared order, as uint8 images and int32 labels."""
    arrays = load_data()
    index = batch_indices(seed, 0, len(arrays["train_images"]), batch_size)[0]
    return arrays["train_images"][index], arrays["train_labels"][index]


def torch_gradients(start: Path, images: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Return the float32 gradients `torch_ref.train.train_step` takes on one batch at the weights of `start`."""
    config = Config()
    device = torch_train.select_device("auto")
    table = torch.from_numpy(run.normalization_table(config)).to(device=device, dtype=torch.float32)
    model = torch_train.create_model(config, torch.float32, device, start)
    optimizer, scheduler = torch_train.create_optimizer(model, config, total_steps(config))
    x = table[torch.from_numpy(images).to(device).int()].unsqueeze(1)
    y = torch.from_numpy(labels).to(device).long()

    torch_train.train_step(model, optimizer, scheduler, x, y)
    # train_step runs backward before it updates, so .grad contains the gradients at the weights of `start`.
    return {name: param.grad.cpu().numpy().copy() for name, param in model.named_parameters()}


def jax_gradients(start: Path, images: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Return the float32 gradients of `jax_impl.train.loss_fn` on one batch at the weights of `start`, in PyTorch's layout."""
    config = Config()
    with jax.enable_x64(False):
        device = jax_train.select_device("auto")
        table = jax.device_put(run.normalization_table(config).astype(np.float32), device)
        params = jax.device_put(jax_train.create_params(config, np.float32, start), device)
        x = table[jax.device_put(images, device)][..., None]
        grads, _ = jax.grad(jax_train.loss_fn, has_aux=True)(params, x, jax.device_put(labels, device))
        return flax_to_torch(jax.device_get(grads))


def first_step_above(difference: np.ndarray, threshold: float) -> int | None:
    """Return the 1-based step where `difference` first exceeds `threshold`, or None if it never does."""
    above = np.flatnonzero(difference > threshold)
    return int(above[0]) + 1 if len(above) else None


def max_difference_per_layer(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, float]:
    """Return the largest absolute difference between two PyTorch-layout state dicts, per layer."""
    per_layer = dict.fromkeys(LAYERS, 0.0)
    for key in RULES:
        layer = key.split(".")[0]
        difference = np.abs(np.asarray(a[key], np.float64) - np.asarray(b[key], np.float64)).max()
        per_layer[layer] = max(per_layer[layer], float(difference))
    return per_layer


def prediction_agreement(logits_a: np.ndarray, logits_b: np.ndarray) -> float:
    """Return the fraction of examples on which two sets of logits predict the same class."""
    return float((logits_a.argmax(1) == logits_b.argmax(1)).mean())
