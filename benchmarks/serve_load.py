"""Load test of the HTTP service: `python -m benchmarks.serve_load --help`.

For each backend choice it starts `python -m serve` on 127.0.0.1 and a free port, then sends a
bounded number of POST /predict requests, a fixed number at a time. It prints requests/s, p50 and
p99 latency and the error count, and stops the server. Client and server share this machine's CPUs.
"""

import argparse
import asyncio
import collections
import io
import os
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from mnist_common import cli, run
from mnist_data import load_mnist
from serve.backends import BACKEND_CHOICES
from serve.checkpoints import find_or_train_checkpoint
from serve.process import ServerProcess

PAYLOADS = ("json", "png")
DISTINCT_IMAGES = 100  # requests cycle through the first 100 test digits
WARMUP_REQUESTS = 32
REQUEST_TIMEOUT_SECONDS = 30.0


def build_payloads(kind: str) -> list[dict]:
    """Return request arguments for httpx: JSON 28x28 arrays, or 280x280 dark-on-light PNGs like the drawing page sends."""
    images, _ = load_mnist("test")
    payloads = []
    for image in images[:DISTINCT_IMAGES]:
        if kind == "json":
            payloads.append({"json": {"image": image.tolist()}})
        else:
            buffer = io.BytesIO()
            Image.fromarray(255 - image).resize((280, 280), Image.Resampling.BICUBIC).save(buffer, "PNG")
            payloads.append({"files": {"file": ("drawing.png", buffer.getvalue(), "image/png")}})
    return payloads


async def send_load(url: str, payloads: list[dict], requests: int, concurrency: int, time_limit: float) -> dict:
    """Send up to `requests` requests, `concurrency` at a time, stopping early after `time_limit` seconds."""
    latencies: list[float] = []
    failures: collections.Counter = collections.Counter()
    issued = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT_SECONDS, limits=limits) as client:
        for index in range(WARMUP_REQUESTS):
            await client.post("/predict", **payloads[index % len(payloads)])

        start = time.perf_counter()
        deadline = start + time_limit

        async def worker() -> None:
            nonlocal issued
            while issued < requests and time.perf_counter() < deadline:
                payload = payloads[issued % len(payloads)]
                issued += 1
                sent = time.perf_counter()
                try:
                    response = await client.post("/predict", **payload)
                    if response.status_code != 200:
                        failures[f"HTTP {response.status_code}"] += 1
                except httpx.HTTPError as error:
                    failures[type(error).__name__] += 1
                latencies.append(time.perf_counter() - sent)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start

    milliseconds = 1000 * np.asarray(latencies)
    return {
        "requests": len(latencies),
        "errors": sum(failures.values()),
        "error_kinds": dict(failures),
        "seconds": elapsed,
        "requests_per_second": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(milliseconds, 50)),
        "p99_ms": float(np.percentile(milliseconds, 99)),
        "stopped_by_time_limit": len(latencies) < requests,
    }


def comma_list(choices: tuple[str, ...]):
    def parse(text: str) -> list[str]:
        values = [value.strip() for value in text.split(",") if value.strip()]
        unknown = [value for value in values if value not in choices]
        if not values or unknown:
            raise argparse.ArgumentTypeError(f"expected a comma-separated subset of {','.join(choices)}, got {text!r}")
        return values

    return parse


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serve_load", description="Load-test POST /predict of `python -m serve` for each backend and print a table.")
    parser.add_argument("--checkpoint", type=Path, default=None, help="model.safetensors to serve (default: the newest runs/*/model.safetensors, training the default JAX model once when there is none)")
    parser.add_argument("--backends", type=comma_list(BACKEND_CHOICES), default=["torch", "jax", "both"], help="server backend choices to test, comma-separated (default torch,jax,both)")
    parser.add_argument("--payloads", type=comma_list(PAYLOADS), default=list(PAYLOADS), help="'json' sends 28x28 arrays, 'png' sends 280x280 drawings to preprocess (default json,png)")
    parser.add_argument("--requests", type=cli.positive_int, default=2000, help="timed requests per backend and payload (default 2000)")
    parser.add_argument("--concurrency", type=cli.positive_int, default=16, help="requests in flight at once (default 16)")
    parser.add_argument("--time-limit", type=cli.positive_float, default=120.0, help="seconds after which a run stops sending, whatever its count (default 120)")
    parser.add_argument("--json-out", type=Path, default=None, help="also write the figures to this JSON file")
    return parser.parse_args(argv)


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    checkpoint = (args.checkpoint or find_or_train_checkpoint()).resolve()
    payloads = {kind: build_payloads(kind) for kind in args.payloads}
    rows = []
    for backend in args.backends:
        with ServerProcess(checkpoint, backend=backend, log_level="warning") as server:
            devices = ", ".join(item["device"] for item in httpx.get(f"{server.url}/model", timeout=30).json()["backends"])
            for kind in args.payloads:
                result = asyncio.run(send_load(server.url, payloads[kind], args.requests, args.concurrency, args.time_limit))
                rows.append({"backend": backend, "devices": devices, "payload": kind} | result)
                print(f"{backend} ({devices}), {kind}: {result['requests']} requests, {result['requests_per_second']:.0f}/s, {result['errors']} errors", flush=True)

    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"\nPOST /predict, {args.concurrency} in flight, checkpoint {checkpoint}")
    print(f"client and server on one machine with {os.cpu_count()} CPUs, load average at the end {load} (1, 5, 15 min)")
    print("| backend | payload | requests | errors | requests/s | p50 ms | p99 ms |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for row in rows:
        note = " (time limit)" if row["stopped_by_time_limit"] else ""
        print(f"| {row['backend']} | {row['payload']} | {row['requests']:,}{note} | {row['errors']} | {row['requests_per_second']:.0f} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} |")
    for row in rows:
        if row["error_kinds"]:
            print(f"{row['backend']} {row['payload']} errors: {row['error_kinds']}")
    if args.json_out:
        run.write_json(args.json_out, {"checkpoint": str(checkpoint), "concurrency": args.concurrency, "cpus": os.cpu_count(), "runs": rows})
    return rows


if __name__ == "__main__":
    main()
