"""Time the compilation a JAX training epoch pays: trace, lower and compile `train_chunk` for each input shape the epoch uses.

`benchmarks.epoch` runs this in a child process when the trainer's metrics.json records no `compile_seconds`.
"""

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np

from jax_impl import train
from mnist_common import cli, run
from mnist_common.config import steps_per_epoch
from mnist_data import batch_indices


def epoch_chunks(config, n_examples: int) -> list[np.ndarray]:
    """Return one index array per distinct shape `train.train_epoch` passes to `train_chunk` in the first epoch."""
    # Mirrors the chunking in jax_impl.train.train_epoch; only the shapes matter here.
    batches = batch_indices(config.seed, 0, n_examples, config.batch_size)
    full = [index for index in batches if len(index) == config.batch_size]
    chunks = [np.stack(full[start:start + train.CHUNK_STEPS]) for start in range(0, len(full), train.CHUNK_STEPS)]
    if len(full) < len(batches):
        chunks.append(batches[-1][None])
    by_shape = {chunk.shape: chunk for chunk in chunks}
    return list(by_shape.values())


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.jax_compile", description="Time the compilation of one JAX training epoch (default recipe); write it as JSON.")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--device", choices=["auto", "cpu", "gpu", "cuda"], default="auto", help="'auto' picks a GPU when present (default auto)")
    args = parser.parse_args(argv)
    trainer_args = cli.train_parser(train.BACKEND).parse_args(["--device", args.device])

    config = cli.config_from_args(trainer_args)
    device = train.select_device(trainer_args.device)
    arrays = run.load_data(trainer_args)
    data = {key: jax.device_put(value, device) for key, value in arrays.items()}
    table = jax.device_put(run.normalization_table(config).astype(np.float32), device)
    params = jax.device_put(train.create_params(config, np.float32), device)
    n_examples = len(arrays["train_images"])
    tx = train.create_optimizer(config, config.epochs * steps_per_epoch(n_examples, config.batch_size))
    opt_state = tx.init(params)

    start = time.perf_counter()
    for indices in epoch_chunks(config, n_examples):
        train.train_chunk.lower(tx, params, opt_state, data["train_images"], data["train_labels"], table, indices).compile()
    seconds = time.perf_counter() - start

    result = {"compile_seconds": seconds, "chunk_steps": train.CHUNK_STEPS, "device": f"{device.platform}:{device.id}"}
    run.write_json(args.out, result)
    print(f"jax_impl compile: {seconds:.2f} s for CHUNK_STEPS={train.CHUNK_STEPS}", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
