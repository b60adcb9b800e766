"""Train the PyTorch model: `python -m torch_ref.train --help`. Mirrors `jax_impl/train.py` function for function."""

import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mnist_common import cli, run
from mnist_common.checkpoint import load_checkpoint, save_checkpoint
from mnist_common.config import Config, learning_rate, steps_per_epoch
from mnist_data import batch_indices
from parity.convert import check_state_dict
from torch_ref.model import Net

BACKEND = "torch_ref"
DTYPES = {"float32": torch.float32, "float64": torch.float64}
EVAL_BATCH_SIZE = 1000
PROGRESS_EVERY = 50  # steps between progress-bar updates; each one waits for the device
# A batch-16 step is too small to split across cores: on a 2-core CPU a second intra-op thread made
# epochs 8-10x slower whenever another process was busy (`python -m benchmarks.epoch`).
CPU_THREADS = 1


def select_device(name: str) -> torch.device:
    """Map --device to a torch device; 'auto' takes CUDA when present."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise SystemExit("--device gpu: no CUDA device is visible to PyTorch; use --device cpu or auto")
        return torch.device("cuda")
    return torch.device("cpu")


def use_cpu_threads(device: torch.device) -> None:
    """Set PyTorch to CPU_THREADS intra-op threads when `device` is the CPU. The thread count also changes float rounding."""
    if device.type == "cpu":
        torch.set_num_threads(CPU_THREADS)


def create_model(
    config: Config,
    dtype: torch.dtype,
    device: torch.device,
    init_from: Path | None = None,
    memory_format: torch.memory_format = torch.channels_last,
) -> Net:
    """Build the model from the config's seed, or from a checkpoint of either backend.

    Channels-last memory lets oneDNN (CPU) and cuDNN choose faster convolution and pooling kernels
    than the default `torch.contiguous_format`. The two differ only in float rounding. A batch-16
    step took 1.9 ms instead of 2.3 ms on a 2-core CPU.
    """
    torch.manual_seed(config.seed)
    # Cast before loading: load_state_dict copies into the params' dtype, so a float32 model would round float64 weights.
    model = Net().to(dtype=dtype)
    if init_from is not None:
        tensors, _ = load_checkpoint(init_from)
        model.load_state_dict(load_state_dict(tensors))
    return model.to(device=device, memory_format=memory_format)


def load_state_dict(tensors: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Turn checkpoint arrays into a state_dict, checking every key and shape against the model."""
    check_state_dict(tensors)
    return {key: torch.from_numpy(np.array(value, copy=True)) for key, value in tensors.items()}


def state_dict_arrays(model: Net) -> dict[str, np.ndarray]:
    """Copy the model's weights into numpy arrays in PyTorch's layout."""
    return {key: value.detach().cpu().numpy().copy() for key, value in model.state_dict().items()}


def create_optimizer(model: Net, config: Config, total_steps: int):
    """Adam with the config's linearly decaying rate; the scheduler steps once per training step.

    fused=True updates all parameters in one kernel instead of about ten small ops per tensor, which
    took another 0.2 ms off a batch-16 step on a 2-core CPU.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(config.adam_b1, config.adam_b2), eps=config.adam_eps, fused=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: learning_rate(step, total_steps, 1.0))
    return optimizer, scheduler


def train_step(model, optimizer, scheduler, x, y):
    """Take one Adam step on a batch; return the loss and correct count measured before the update."""
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()
    return loss.detach(), (logits.detach().argmax(1) == y).sum()


def train_epoch(model, optimizer, scheduler, data: dict, table: torch.Tensor, config: Config, epoch: int, max_steps: int | None = None):
    """Train one epoch on the shared batch order; return per-step losses and correct counts."""
    device = table.device
    images = data["train_images"]
    labels = data["train_labels"]
    batches = batch_indices(config.seed, epoch, len(images), config.batch_size)[:max_steps]
    step_loss = torch.empty(len(batches), dtype=table.dtype, device=device)
    step_correct = torch.empty(len(batches), dtype=torch.int64, device=device)
    model.train()
    with run.progress_bar(len(batches), f"epoch {epoch + 1}") as bar:
        for step, index in enumerate(batches):
            index = torch.from_numpy(index).to(device, non_blocking=True)
            x = table[images[index].int()].unsqueeze(1)
            y = labels[index]
            step_loss[step], step_correct[step] = train_step(model, optimizer, scheduler, x, y)
            if (step + 1) % PROGRESS_EVERY == 0 or step + 1 == len(batches):
                seen = min((step + 1) * config.batch_size, len(images))
                bar.set_postfix(acc=f"{100 * step_correct[: step + 1].sum().item() / seen:.2f}%", refresh=False)
                bar.update(step + 1 - bar.n)
    return step_loss.cpu().numpy(), step_correct.cpu().numpy()


@torch.inference_mode()
def predict_logits(model, images: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Return the logits of uint8 images (N, 28, 28), computed in batches of 1,000."""
    model.eval()
    chunks = [model(table[images[start:start + EVAL_BATCH_SIZE].int()].unsqueeze(1)) for start in range(0, len(images), EVAL_BATCH_SIZE)]
    return torch.cat(chunks)


def evaluate(model, images: torch.Tensor, labels: torch.Tensor, table: torch.Tensor) -> tuple[float, float, np.ndarray]:
    """Return (mean cross-entropy, accuracy, logits as numpy) over a whole split."""
    logits = predict_logits(model, images, table)
    loss = F.cross_entropy(logits, labels.long()).item()
    accuracy = (logits.argmax(1) == labels).double().mean().item()
    return loss, accuracy, logits.cpu().numpy()


def main(argv=None) -> dict:
    args = cli.train_parser(BACKEND).parse_args(argv)
    config = cli.config_from_args(args)
    device = select_device(args.device)
    use_cpu_threads(device)
    dtype = DTYPES[args.dtype]
    out = cli.check_out_dir(args.out or cli.default_run_dir(BACKEND))

    arrays = run.load_data(args)
    data = {key: torch.from_numpy(value).to(device) for key, value in arrays.items()}
    data["train_labels"] = data["train_labels"].long()  # cross_entropy takes int64 class indices
    table = torch.from_numpy(run.normalization_table(config)).to(device=device, dtype=dtype)
    model = create_model(config, dtype, device, args.init_from)
    max_steps = run.DRY_RUN_STEPS if args.dry_run else None
    total_steps = config.epochs * (max_steps or steps_per_epoch(len(arrays["train_images"]), config.batch_size))
    optimizer, scheduler = create_optimizer(model, config, total_steps)
    metrics = run.run_metadata(BACKEND, str(device), config, args) | {"epochs": []}

    print(f"{BACKEND}: training on {device} ({args.dtype}), {config.epochs} epoch(s){' (dry run)' if args.dry_run else ''}, writing to {out}", file=sys.stderr)
    for epoch in range(config.epochs):
        start = time.perf_counter()
        step_loss, step_correct = train_epoch(model, optimizer, scheduler, data, table, config, epoch, max_steps)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        n_seen = min(len(step_loss) * config.batch_size, len(arrays["train_images"]))
        train_loss, train_accuracy, _ = evaluate(model, data["train_images"], data["train_labels"], table)
        test_loss, test_accuracy, test_logits = evaluate(model, data["test_images"], data["test_labels"], table)
        record = run.epoch_record(epoch + 1, step_loss, step_correct, n_seen, (train_loss, train_accuracy), (test_loss, test_accuracy), seconds)
        metrics["epochs"].append(record)
        run.write_json(out / "metrics.json", metrics)
        print(run.epoch_summary(epoch + 1, config.epochs, record))

    save_checkpoint(out / "model.safetensors", state_dict_arrays(model), run.checkpoint_metadata(metrics))
    run.finish(out, metrics, arrays, test_logits, plots=not args.no_plots)
    return metrics


if __name__ == "__main__":
    cli.run_main(main, f"python -m {BACKEND}.train")
