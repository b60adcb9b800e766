"""Evaluate a checkpoint of either backend with JAX/Flax: `python -m jax_impl.evaluate --help`. Mirrors `torch_ref/evaluate.py`."""

import jax

from jax_impl import train
from mnist_common import cli, evaluate, run

BACKEND = "jax_impl"


def main(argv=None) -> dict:
    args = evaluate.evaluate_parser(BACKEND).parse_args(argv)
    metadata, config, dtype_name = evaluate.open_checkpoint(args.checkpoint)
    dtype_name = args.dtype or dtype_name
    jax.config.update("jax_enable_x64", dtype_name == "float64")
    device = train.select_device(args.device)
    dtype = train.DTYPES[dtype_name]

    images, labels = evaluate.load_test_split(args)
    table = jax.device_put(run.normalization_table(config).astype(dtype), device)
    params = jax.device_put(train.create_params(config, dtype, init_from=args.checkpoint), device)
    loss, accuracy, logits = train.evaluate(params, jax.device_put(images, device), jax.device_put(labels, device), table)

    return evaluate.report(args, BACKEND, f"{device.platform}:{device.id}", dtype_name, metadata, images, labels, loss, accuracy, logits)


if __name__ == "__main__":
    cli.run_main(main, f"python -m {BACKEND}.evaluate")
