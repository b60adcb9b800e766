"""Time one training epoch of the original pipeline, `torch_ref` and `jax_impl` side by side: `python -m benchmarks.epoch --help`.

Every measurement runs in a fresh child process, so each peak resident memory figure belongs to one run.
Progress goes to stderr, a markdown table to stdout, and with --json the same figures to a file.
"""

import argparse
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from mnist_common.cli import positive_int
from mnist_common.run import write_json

PIPELINES = ("original", "torch", "jax")
LABELS = {
    "original": "original (DataLoader, PIL rotation, batch 32)",
    "torch": "torch_ref (batch 16)",
    "jax": "jax_impl (batch 16)",
}
TRAINER_MODULES = {"torch": "torch_ref", "jax": "jax_impl"}
TRAIN_IMAGES = 60000
CHILD_TIMEOUT_SECONDS = 3600  # a guard against hangs only: an epoch on a CPU shared with other jobs can take many minutes
LIBRARIES = ("torch", "jax", "jaxlib", "flax", "optax", "numpy", "pillow")

JAX_OVER_TORCH_MAX = 0.8
OVER_ORIGINAL_MAX = 0.25
PEAK_RSS_MAX_BYTES = 1.5e9
COMPILE_MAX_SECONDS = 3.0


class BenchmarkError(Exception):
    """A child process of the benchmark failed; the message names the command and shows its last output."""


def pipeline_list(text: str) -> list[str]:
    """Parse --only: a comma-separated subset of PIPELINES, kept in PIPELINES order."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in PIPELINES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"invalid pipeline list {text!r}: choose from {', '.join(PIPELINES)}")
    return [name for name in PIPELINES if name in names]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.epoch",
        description="Time one training epoch of the original pipeline, torch_ref and jax_impl, each in fresh child processes; print a markdown table.",
    )
    parser.add_argument("--repeats", type=positive_int, default=3, help="runs of each pipeline; the table shows the median (default 3)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    parser.add_argument("--only", type=pipeline_list, default=list(PIPELINES), help="comma-separated subset of original,torch,jax (default all three)")
    parser.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto", help="passed to every child: 'auto' picks a GPU when present (default auto)")
    return parser.parse_args(argv)


def run_child(command: list[str], log_path: Path) -> int:
    """Run `command` to completion with its output in `log_path`; return its peak resident memory in bytes.

    os.wait4 reports the rusage of this one child, where RUSAGE_CHILDREN would take the maximum over all children so far.
    """
    timed_out = threading.Event()
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

        def kill() -> None:
            timed_out.set()
            process.kill()

        timer = threading.Timer(CHILD_TIMEOUT_SECONDS, kill)
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
        outcome = f"timed out after {CHILD_TIMEOUT_SECONDS} s" if timed_out.is_set() else f"failed with exit code {process.returncode}"
        raise BenchmarkError(f"`{' '.join(command)}` {outcome}; its last output:\n{tail}")
    return usage.ru_maxrss * 1024  # Linux reports kibibytes


def measure_original(device: str, folder: Path) -> dict:
    """Train one epoch of the original pipeline in a child process."""
    out = folder / "original.json"
    peak_rss_bytes = run_child([sys.executable, "-m", "benchmarks.original", "--out", str(out), "--device", device], folder / "original.log")
    result = json.loads(out.read_text())
    return {
        "epoch_seconds": result["epoch_seconds"],
        "images": result["images"],
        "peak_rss_bytes": peak_rss_bytes,
        "test_accuracy": result["test_accuracy"],
    }


def measure_trainer(name: str, device: str, folder: Path) -> dict:
    """Train one epoch through a backend's own CLI in a child process and read its metrics.json."""
    module = TRAINER_MODULES[name]
    out = folder / module
    command = [sys.executable, "-m", f"{module}.train", "--no-plots", "--out", str(out), "--device", device]
    peak_rss_bytes = run_child(command, folder / f"{module}.log")
    metrics = json.loads((out / "metrics.json").read_text())
    record = metrics["epochs"][-1]
    sample = {
        "epoch_seconds": record["epoch_seconds"],
        "images": min(record["steps"] * metrics["config"]["batch_size"], TRAIN_IMAGES),
        "peak_rss_bytes": peak_rss_bytes,
        "test_accuracy": record["test_accuracy"],
        "device": metrics["device"],
        "checkpoint": str(out / "model.safetensors"),
    }
    if "compile_seconds" in record:
        sample["compile_seconds"] = record["compile_seconds"]
    return sample


def measure_inference(name: str, device: str, checkpoint: str | None, folder: Path) -> dict:
    """Time a backend's evaluation and single-image latency in a child process."""
    module = TRAINER_MODULES[name]
    out = folder / f"inference-{module}.json"
    command = [sys.executable, "-m", "benchmarks.inference", "--backend", module, "--out", str(out), "--device", device]
    if checkpoint:
        command += ["--init-from", checkpoint]
    peak_rss_bytes = run_child(command, folder / f"inference-{module}.log")
    return json.loads(out.read_text()) | {"peak_rss_bytes": peak_rss_bytes}


def summarize(samples: list[dict]) -> dict:
    """Reduce one pipeline's repeated samples: median seconds, maximum peak memory."""
    seconds = [sample["epoch_seconds"] for sample in samples]
    median = statistics.median(seconds)
    summary = {
        "epoch_seconds": median,
        "epoch_seconds_all": seconds,
        "images": samples[0]["images"],
        "images_per_second": samples[0]["images"] / median,
        "peak_rss_bytes": max(sample["peak_rss_bytes"] for sample in samples),
        "test_accuracy": statistics.median(sample["test_accuracy"] for sample in samples),
        "runs": len(samples),
    }
    if "device" in samples[0]:
        summary["device"] = samples[0]["device"]
    compile_seconds = [sample["compile_seconds"] for sample in samples if "compile_seconds" in sample]
    if compile_seconds:
        summary["compile_seconds"] = statistics.median(compile_seconds)
        summary["compile_seconds_all"] = compile_seconds
    return summary


def epoch_ratio(pipelines: dict, numerator: str, denominator: str) -> float | None:
    if numerator not in pipelines or denominator not in pipelines:
        return None
    return pipelines[numerator]["epoch_seconds"] / pipelines[denominator]["epoch_seconds"]


def target(name: str, measured: float | None, limit: float, unit: str) -> dict:
    """Compare one figure with its upper limit; 'n/a' when the pipeline was not run."""
    if measured is None:
        result = "n/a"
    else:
        result = "PASS" if measured <= limit else "FAIL"
    return {"name": name, "measured": measured, "limit": limit, "unit": unit, "result": result}


def check_targets(report: dict) -> list[dict]:
    pipelines = report["pipelines"]
    return [
        target("jax_impl epoch / torch_ref epoch", report["jax_over_torch"], JAX_OVER_TORCH_MAX, "ratio"),
        target("torch_ref epoch / original epoch", report["torch_over_original"], OVER_ORIGINAL_MAX, "ratio"),
        target("jax_impl epoch / original epoch", report["jax_over_original"], OVER_ORIGINAL_MAX, "ratio"),
        target("torch_ref peak RSS", pipelines.get("torch", {}).get("peak_rss_bytes"), PEAK_RSS_MAX_BYTES, "bytes"),
        target("jax_impl peak RSS", pipelines.get("jax", {}).get("peak_rss_bytes"), PEAK_RSS_MAX_BYTES, "bytes"),
        target("jax_impl compile", pipelines.get("jax", {}).get("compile_seconds"), COMPILE_MAX_SECONDS, "seconds"),
    ]


def build_report(pipelines: dict, inference: dict, machine: dict, settings: dict) -> dict:
    """Assemble the JSON document: summaries per pipeline, the three epoch ratios, inference figures and targets."""
    report = {
        "settings": settings,
        "machine": machine,
        "pipelines": pipelines,
        "jax_over_torch": epoch_ratio(pipelines, "jax", "torch"),
        "torch_over_original": epoch_ratio(pipelines, "torch", "original"),
        "jax_over_original": epoch_ratio(pipelines, "jax", "original"),
        "inference": inference,
    }
    report["targets"] = check_targets(report)
    return report


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "bytes":
        return f"{value / 1e6:,.0f} MB"
    if unit == "seconds":
        return f"{value:.2f} s"
    return f"{value:.2f}"


def format_table(report: dict) -> str:
    """Format the report as markdown: epochs, targets with PASS/FAIL, then inference."""
    settings, machine, pipelines = report["settings"], report["machine"], report["pipelines"]
    lines = [
        f"## One training epoch, median of {settings['repeats']} run(s), --device {settings['device']}",
        "",
        f"{machine['cpu']}, {machine['cores']} cores; load average {machine['load_average_start']:.1f} at start, {machine['load_average_end']:.1f} at end",
        "",
        "| pipeline | epoch s | min-max s | compile s | images/s | peak RSS | test acc | vs original |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, summary in pipelines.items():
        seconds = summary["epoch_seconds_all"]
        vs_original = epoch_ratio(pipelines, name, "original")
        lines.append(
            f"| {LABELS[name]} | {summary['epoch_seconds']:.2f} | {min(seconds):.2f}-{max(seconds):.2f}"
            f" | {format_value(summary.get('compile_seconds'), 'ratio') if name == 'jax' else '-'}"
            f" | {summary['images_per_second']:,.0f} | {format_value(summary['peak_rss_bytes'], 'bytes')}"
            f" | {100 * summary['test_accuracy']:.2f}% | {format_value(vs_original, 'ratio')} |"
        )
    lines += ["", f"jax/torch {format_value(report['jax_over_torch'], 'ratio')}, torch/original {format_value(report['torch_over_original'], 'ratio')}, jax/original {format_value(report['jax_over_original'], 'ratio')}"]
    if "jax" in pipelines:
        lines.append(compile_note(pipelines["jax"]))

    if max(machine["load_average_start"], machine["load_average_end"]) > machine["cores"]:
        lines.append("WARNING: the load average exceeded the core count, so other processes inflated these timings.")

    lines += ["", "## Targets", "", "| target | measured | limit | result |", "|---|---:|---:|---|"]
    for item in report["targets"]:
        lines.append(f"| {item['name']} | {format_value(item['measured'], item['unit'])} | <= {format_value(item['limit'], item['unit'])} | {item['result']} |")

    if report["inference"]:
        lines += [
            "",
            "## Inference: evaluation of the test split, latency of single-image predict_logits",
            "",
            "| backend | device | eval s | eval images/s | latency p50 ms | latency p99 ms |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for name, result in report["inference"].items():
            lines.append(
                f"| {TRAINER_MODULES[name]} | {result['device']} | {result['eval_seconds']:.3f} | {result['eval_images'] / result['eval_seconds']:,.0f}"
                f" | {result['latency_p50_ms']:.3f} | {result['latency_p99_ms']:.3f} |"
            )
    return "\n".join(lines)


def compile_note(summary: dict) -> str:
    if "compile_seconds" not in summary:
        return "jax_impl compile s: n/a, because its metrics.json records no `compile_seconds`."
    return "jax_impl compile s: the trainer's `compile_seconds` from metrics.json, timed apart from its epoch s."


def describe_machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for library in LIBRARIES:
        try:
            versions[library] = importlib.metadata.version(library)
        except importlib.metadata.PackageNotFoundError:
            versions[library] = None
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "load_average_start": os.getloadavg()[0],
    }


def progress(message: str) -> None:
    print(f"[benchmarks.epoch] {message}", file=sys.stderr, flush=True)


def measure_all(args: argparse.Namespace, folder: Path) -> tuple[dict, dict]:
    """Run every selected pipeline `--repeats` times, interleaved so slow drifts of the machine hit all alike, then time inference."""
    samples = {name: [] for name in args.only}
    for repeat in range(args.repeats):
        for name in args.only:
            run_folder = folder / f"{name}-{repeat}"
            run_folder.mkdir()
            progress(f"repeat {repeat + 1}/{args.repeats}: {LABELS[name]} ...")
            if name == "original":
                sample = measure_original(args.device, run_folder)
            else:
                sample = measure_trainer(name, args.device, run_folder)
            samples[name].append(sample)
            compile_text = f", compile {sample['compile_seconds']:.2f} s" if "compile_seconds" in sample else ""
            progress(f"  epoch {sample['epoch_seconds']:.2f} s{compile_text}, peak RSS {sample['peak_rss_bytes'] / 1e6:,.0f} MB, test acc {100 * sample['test_accuracy']:.2f}%")

    inference = {}
    for name in args.only:
        if name in TRAINER_MODULES:
            progress(f"inference: {TRAINER_MODULES[name]} ...")
            inference[name] = measure_inference(name, args.device, samples[name][-1]["checkpoint"], folder)
    pipelines = {name: summarize(runs) for name, runs in samples.items()}
    return pipelines, inference


def main(argv=None) -> int:
    args = parse_args(argv)
    machine = describe_machine()
    if machine["load_average_start"] > machine["cores"]:
        progress(f"warning: load average {machine['load_average_start']:.1f} on {machine['cores']} cores; other processes will inflate these timings")
    start = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="benchmarks-epoch-") as folder:
        try:
            pipelines, inference = measure_all(args, Path(folder))
        except BenchmarkError as error:
            print(f"benchmarks.epoch: {error}", file=sys.stderr)
            return 1

    machine["load_average_end"] = os.getloadavg()[0]
    settings = {"repeats": args.repeats, "device": args.device, "only": args.only, "total_seconds": time.perf_counter() - start}
    report = build_report(pipelines, inference, machine, settings)
    print(format_table(report))
    if args.json:
        write_json(args.json, report)
        progress(f"wrote {args.json}")
    progress(f"done in {settings['total_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
