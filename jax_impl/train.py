"""Train the Flax model: `python -m jax_impl.train --help`. Mirrors `torch_ref/train.py` function for function."""

import functools
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jax_impl.model import Net, init_params
from mnist_common import cli, run
from mnist_common.checkpoint import load_checkpoint, save_checkpoint
from mnist_common.config import Config, learning_rate, steps_per_epoch
from mnist_data import batch_indices
from parity.convert import flax_to_torch, torch_to_flax

BACKEND = "jax_impl"
DTYPES = {"float32": jnp.float32, "float64": jnp.float64}
EVAL_BATCH_SIZE = 1000
CHUNK_STEPS = 50  # training steps per compiled call; the progress bar updates between calls


def select_device(name: str) -> jax.Device:
    """Map --device to a JAX device; 'auto' takes JAX's default backend, a GPU when present."""
    if name == "auto":
        return jax.devices()[0]
    if name in ("gpu", "cuda"):
        try:
            return jax.devices("gpu")[0]
        except RuntimeError:
            raise SystemExit("--device gpu: JAX sees no GPU (is jax[cuda] installed?); use --device cpu or auto") from None
    return jax.devices("cpu")[0]


def create_params(config: Config, dtype, init_from: Path | None = None) -> dict:
    """Build params from the config's seed, or from a checkpoint of either backend."""
    if init_from is None:
        params = init_params(jax.random.key(config.seed), dtype)
    else:
        tensors, _ = load_checkpoint(init_from)
        params = torch_to_flax(tensors)
    return jax.tree_util.tree_map(lambda leaf: jnp.asarray(leaf, dtype), params)


def state_dict_arrays(params: dict) -> dict[str, np.ndarray]:
    """Copy params into numpy arrays in PyTorch's layout and key names."""
    return flax_to_torch(jax.device_get(params))


def create_optimizer(config: Config, total_steps: int) -> optax.GradientTransformation:
    """Adam with the config's linearly decaying rate; optax counts steps from 0, as LambdaLR does."""

    def schedule(count):
        # optax's count is int32, and int32 / int gives float32 even under jax_enable_x64, so without
        # the cast a float64 run would use a rate rounded to float32.
        return learning_rate(count.astype(float), total_steps, config.lr)

    return optax.adam(
        learning_rate=schedule,
        b1=config.adam_b1,
        b2=config.adam_b2,
        eps=config.adam_eps,
    )


def loss_fn(params, x, y):
    logits = Net().apply({"params": params}, x)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return loss, logits


def train_step(tx, params, opt_state, x, y):
    """Take one Adam step on a batch; return new state, the loss and correct count measured before the update."""
    (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, x, y)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    return params, opt_state, loss, (logits.argmax(-1) == y).sum()


@functools.partial(jax.jit, static_argnums=0, donate_argnums=(1, 2))
def train_chunk(tx, params, opt_state, images, labels, table, indices):
    """Run `len(indices)` training steps in one compiled call; the data never leaves the device."""

    def step(carry, index):
        params, opt_state = carry
        x = table[images[index]][..., None]
        params, opt_state, loss, correct = train_step(tx, params, opt_state, x, labels[index])
        return (params, opt_state), (loss, correct)

    (params, opt_state), (losses, correct) = jax.lax.scan(step, (params, opt_state), indices)
    return params, opt_state, losses, correct


def train_epoch(tx, params, opt_state, data: dict, table: jax.Array, config: Config, epoch: int, max_steps: int | None = None, compiled: dict | None = None):
    """Train one epoch on the shared batch order; return new state, per-step losses and correct counts, compile seconds.

    `compiled` maps a chunk shape to its executable; pass the same dict every epoch so each shape compiles once.
    """
    compiled = {} if compiled is None else compiled
    images = data["train_images"]
    labels = data["train_labels"]
    batches = batch_indices(config.seed, epoch, len(images), config.batch_size)[:max_steps]
    full = [index for index in batches if len(index) == config.batch_size]
    chunks = [np.stack(full[start:start + CHUNK_STEPS]).astype(np.int32) for start in range(0, len(full), CHUNK_STEPS)]
    if len(full) < len(batches):  # a smaller last batch compiles once more, with its own shape
        chunks.append(batches[-1][None].astype(np.int32))
    step_loss, step_correct = [], []
    compile_seconds = 0.0
    with run.progress_bar(len(batches), f"epoch {epoch + 1}") as bar:
        for indices in chunks:
            if indices.shape not in compiled:
                start = time.perf_counter()
                compiled[indices.shape] = train_chunk.lower(tx, params, opt_state, images, labels, table, indices).compile()
                compile_seconds += time.perf_counter() - start
            params, opt_state, losses, correct = compiled[indices.shape](params, opt_state, images, labels, table, indices)
            step_loss.append(losses)
            step_correct.append(correct)
            bar.update(len(indices))
    step_loss = np.concatenate(jax.device_get(step_loss))
    step_correct = np.concatenate(jax.device_get(step_correct))
    return params, opt_state, step_loss, step_correct, compile_seconds


@jax.jit
def predict_logits_batch(params, images, table):
    return Net().apply({"params": params}, table[images][..., None])


def predict_logits(params, images: jax.Array, table: jax.Array) -> jax.Array:
    """Return the logits of uint8 images (N, 28, 28), computed in batches of 1,000."""
    chunks = [predict_logits_batch(params, images[start:start + EVAL_BATCH_SIZE], table) for start in range(0, len(images), EVAL_BATCH_SIZE)]
    return jnp.concatenate(chunks)


def evaluate(params, images: jax.Array, labels: jax.Array, table: jax.Array) -> tuple[float, float, np.ndarray]:
    """Return (mean cross-entropy, accuracy, logits as numpy) over a whole split."""
    logits = predict_logits(params, images, table)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    accuracy = (logits.argmax(-1) == labels).mean()
    return float(loss), float(accuracy), np.asarray(logits)


def main(argv=None) -> dict:
    args = cli.train_parser(BACKEND).parse_args(argv)
    jax.config.update("jax_enable_x64", args.dtype == "float64")
    config = cli.config_from_args(args)
    device = select_device(args.device)
    dtype = DTYPES[args.dtype]
    out = cli.check_out_dir(args.out or cli.default_run_dir(BACKEND))

    arrays = run.load_data(args)
    data = {key: jax.device_put(value, device) for key, value in arrays.items()}
    table = jax.device_put(run.normalization_table(config).astype(dtype), device)
    params = jax.device_put(create_params(config, dtype, args.init_from), device)
    max_steps = run.DRY_RUN_STEPS if args.dry_run else None
    total_steps = config.epochs * (max_steps or steps_per_epoch(len(arrays["train_images"]), config.batch_size))
    tx = create_optimizer(config, total_steps)
    opt_state = tx.init(params)
    metrics = run.run_metadata(BACKEND, f"{device.platform}:{device.id}", config, args) | {"epochs": []}
    compiled = {}

    print(f"{BACKEND}: training on {device.platform} ({args.dtype}), {config.epochs} epoch(s){' (dry run)' if args.dry_run else ''}, writing to {out}", file=sys.stderr)
    for epoch in range(config.epochs):
        start = time.perf_counter()
        params, opt_state, step_loss, step_correct, compile_seconds = train_epoch(tx, params, opt_state, data, table, config, epoch, max_steps, compiled)
        seconds = time.perf_counter() - start - compile_seconds
        n_seen = min(len(step_loss) * config.batch_size, len(arrays["train_images"]))
        train_loss, train_accuracy, _ = evaluate(params, data["train_images"], data["train_labels"], table)
        test_loss, test_accuracy, test_logits = evaluate(params, data["test_images"], data["test_labels"], table)
        record = run.epoch_record(epoch + 1, step_loss, step_correct, n_seen, (train_loss, train_accuracy), (test_loss, test_accuracy), seconds)
        record["compile_seconds"] = compile_seconds
        metrics["epochs"].append(record)
        run.write_json(out / "metrics.json", metrics)
        print(run.epoch_summary(epoch + 1, config.epochs, record))

    save_checkpoint(out / "model.safetensors", state_dict_arrays(params), run.checkpoint_metadata(metrics))
    run.finish(out, metrics, arrays, test_logits, plots=not args.no_plots)
    return metrics


if __name__ == "__main__":
    cli.run_main(main, f"python -m {BACKEND}.train")
