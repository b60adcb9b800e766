"""Evaluate a checkpoint of either backend with PyTorch: `python -m torch_ref.evaluate --help`. Mirrors `jax_impl/evaluate.py`."""

import torch

from mnist_common import cli, evaluate, run
from torch_ref import train

BACKEND = "torch_ref"


def main(argv=None) -> dict:
    args = evaluate.evaluate_parser(BACKEND).parse_args(argv)
    metadata, config, dtype_name = evaluate.open_checkpoint(args.checkpoint)
    dtype_name = args.dtype or dtype_name
    device = train.select_device(args.device)
    dtype = train.DTYPES[dtype_name]

    images, labels = evaluate.load_test_split(args)
    table = torch.from_numpy(run.normalization_table(config)).to(device=device, dtype=dtype)
    model = train.create_model(config, dtype, device, init_from=args.checkpoint)
    loss, accuracy, logits = train.evaluate(model, torch.from_numpy(images).to(device), torch.from_numpy(labels).to(device), table)

    return evaluate.report(args, BACKEND, str(device), dtype_name, metadata, images, labels, loss, accuracy, logits)


if __name__ == "__main__":
    cli.run_main(main, f"python -m {BACKEND}.evaluate")
