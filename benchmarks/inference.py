"""Time one backend's evaluation of the 10,000 test images and its single-image latency; `benchmarks.epoch` runs this in a child process.

Both backends go through their own `evaluate` and `predict_logits`, set up as their trainer's `main` sets them up.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from mnist_common import cli, run

BACKENDS = ("torch_ref", "jax_impl")
EVAL_REPEATS = 5
LATENCY_WARMUP_CALLS = 50


def torch_backend(args: argparse.Namespace):
    """Build the PyTorch model and data as `torch_ref.train.main` does; return (device name, test images, evaluate_once, predict_one)."""
    import torch

    from torch_ref import train

    config = cli.config_from_args(args)
    device = train.select_device(args.device)
    arrays = run.load_data(args)
    images = torch.from_numpy(arrays["test_images"]).to(device)
    labels = torch.from_numpy(arrays["test_labels"]).to(device)
    table = torch.from_numpy(run.normalization_table(config)).to(device=device, dtype=torch.float32)
    model = train.create_model(config, torch.float32, device, args.init_from)

    def evaluate_once() -> float:
        _, accuracy, _ = train.evaluate(model, images, labels, table)
        return accuracy

    def predict_one(image: np.ndarray) -> np.ndarray:
        # A request pays the copy to the device and back, so the timing includes both.
        return train.predict_logits(model, torch.from_numpy(image).to(device), table).cpu().numpy()

    return str(device), arrays["test_images"], evaluate_once, predict_one


def jax_backend(args: argparse.Namespace):
    """Build the Flax params and data as `jax_impl.train.main` does; return (device name, test images, evaluate_once, predict_one)."""
    import jax

    from jax_impl import train

    config = cli.config_from_args(args)
    device = train.select_device(args.device)
    arrays = run.load_data(args)
    images = jax.device_put(arrays["test_images"], device)
    labels = jax.device_put(arrays["test_labels"], device)
    table = jax.device_put(run.normalization_table(config).astype(np.float32), device)
    params = jax.device_put(train.create_params(config, np.float32, args.init_from), device)

    def evaluate_once() -> float:
        _, accuracy, _ = train.evaluate(params, images, labels, table)
        return accuracy

    def predict_one(image: np.ndarray) -> np.ndarray:
        # np.asarray waits for the result, as a request would.
        return np.asarray(train.predict_logits(params, jax.device_put(image, device), table))

    return f"{device.platform}:{device.id}", arrays["test_images"], evaluate_once, predict_one


def time_evaluation(evaluate_once) -> dict:
    """Evaluate once to warm up, then EVAL_REPEATS times; return the median seconds and the accuracy."""
    accuracy = evaluate_once()
    seconds = []
    for _ in range(EVAL_REPEATS):
        start = time.perf_counter()
        evaluate_once()
        seconds.append(time.perf_counter() - start)
    return {"eval_seconds": statistics.median(seconds), "eval_seconds_all": seconds, "test_accuracy": accuracy}


def time_latency(predict_one, images: np.ndarray, calls: int) -> dict:
    """Predict single images, each a different test image; return p50, p99 and mean milliseconds after warm-up."""
    for index in range(LATENCY_WARMUP_CALLS):
        predict_one(images[index:index + 1])
    seconds = []
    for call in range(calls):
        index = call % len(images)
        start = time.perf_counter()
        predict_one(images[index:index + 1])
        seconds.append(time.perf_counter() - start)
    milliseconds = 1000 * np.asarray(seconds)
    return {
        "latency_calls": calls,
        "latency_p50_ms": float(np.percentile(milliseconds, 50)),
        "latency_p99_ms": float(np.percentile(milliseconds, 99)),
        "latency_mean_ms": float(milliseconds.mean()),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.inference", description="Time evaluation and single-image prediction of one backend; write the figures as JSON.")
    parser.add_argument("--backend", choices=BACKENDS, required=True, help="which implementation to time")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--device", choices=["auto", "cpu", "gpu", "cuda"], default="auto", help="'auto' picks a GPU when present (default auto)")
    parser.add_argument("--init-from", type=Path, default=None, help="model.safetensors to load; default: the untrained model of seed 0 (the timing does not depend on the weights)")
    parser.add_argument("--calls", type=cli.positive_int, default=500, help="timed single-image predictions (default 500)")
    args = parser.parse_args(argv)
    trainer_args = cli.train_parser(args.backend).parse_args(["--device", args.device] + (["--init-from", str(args.init_from)] if args.init_from else []))

    build = torch_backend if args.backend == "torch_ref" else jax_backend
    device, images, evaluate_once, predict_one = build(trainer_args)
    result = {"backend": args.backend, "device": device, "eval_images": len(images)}
    result |= time_evaluation(evaluate_once)
    result |= time_latency(predict_one, images, args.calls)

    run.write_json(args.out, result)
    print(
        f"{args.backend} inference: evaluation {result['eval_seconds']:.3f} s,"
        f" latency p50 {result['latency_p50_ms']:.3f} ms, p99 {result['latency_p99_ms']:.3f} ms",
        file=sys.stderr,
    )
    return result


if __name__ == "__main__":
    main()
