"""Compare two run folders of either backend: `python -m parity.compare RUN_A RUN_B` prints their metrics side by side and writes one overlaid curves.png."""

import argparse
from pathlib import Path

from mnist_common import cli, plots
from mnist_common.evaluate import MetricsError, fail, read_metrics

PROG = "python -m parity.compare"
SETTINGS = ("backend", "device", "dtype", "seed", "params", "init_from", "dry_run")
EPOCH_ACCURACIES = (("running_train_accuracy", "running train acc"), ("train_accuracy", "train acc"), ("test_accuracy", "test acc"))


def compare_parser() -> argparse.ArgumentParser:
    parser = cli.OneLineParser(prog=PROG, description="Print the metrics of two training runs side by side and plot their curves overlaid.")
    parser.add_argument("run_a", type=Path, metavar="RUN_A", help="run folder holding metrics.json (from torch_ref.train or jax_impl.train)")
    parser.add_argument("run_b", type=Path, metavar="RUN_B", help="second run folder, of either backend")
    parser.add_argument("--out", type=Path, default=None, help="folder for the overlaid curves.png (default: RUN_A/../compare-<RUN_A name>-<RUN_B name>)")
    return parser


def default_out(run_a: Path, run_b: Path) -> Path:
    run_a, run_b = run_a.resolve(), run_b.resolve()
    return run_a.parent / f"compare-{run_a.name}-{run_b.name}"


def same_or_differs(a, b) -> str:
    return "same" if a == b else "differs"


def device_kind(device) -> str | None:
    """Return 'cpu' or 'gpu' for a recorded device: PyTorch writes 'cpu' or 'cuda', JAX 'cpu:0' or 'gpu:0'."""
    if device is None:
        return None
    kind = str(device).split(":")[0]
    return "gpu" if kind == "cuda" else kind


def signed(value: float, unit: str) -> str:
    return f"{value:+.2f}{unit}"


def comparison_rows(a: dict, b: dict) -> list[tuple[str, str, str, str]]:
    """Build (what, run A, run B, B − A) rows: settings first, then every epoch's figures."""
    rows = []
    for key in SETTINGS:
        if key == "device":  # the same CPU or GPU is "same" whichever backend named it
            kind_a, kind_b = device_kind(a.get(key)), device_kind(b.get(key))
            verdict = f"same ({kind_a})" if kind_a == kind_b else "differs"
        else:
            verdict = same_or_differs(a.get(key), b.get(key))
        rows.append((key, str(a.get(key, "-")), str(b.get(key, "-")), verdict))
    config_keys = [key for key in {**a["config"], **b["config"]} if a["config"].get(key) != b["config"].get(key)]
    for key in config_keys:
        rows.append((f"config.{key}", str(a["config"].get(key, "-")), str(b["config"].get(key, "-")), "differs"))
    if not config_keys:
        rows.append(("config", "same recipe", "same recipe", "same"))
    versions_a, versions_b = a.get("versions", {}), b.get("versions", {})
    for key in sorted(set(versions_a) & set(versions_b)):
        if versions_a[key] != versions_b[key]:
            rows.append((f"version of {key}", versions_a[key], versions_b[key], "differs"))

    for number in range(max(len(a["epochs"]), len(b["epochs"]))):
        record_a = a["epochs"][number] if number < len(a["epochs"]) else None
        record_b = b["epochs"][number] if number < len(b["epochs"]) else None
        for key, name in EPOCH_ACCURACIES:
            rows.append(epoch_row(number, name, record_a, record_b, key, lambda v: f"{100 * v:.2f}%", lambda d: signed(100 * d, " pp")))
        rows.append(epoch_row(number, "test loss", record_a, record_b, "test_loss", lambda v: f"{v:.4f}", lambda d: f"{d:+.4f}"))
        rows.append(epoch_row(number, "seconds", record_a, record_b, "epoch_seconds", lambda v: f"{v:.2f}", lambda d: signed(d, " s")))
    return rows


def epoch_row(number: int, name: str, record_a: dict | None, record_b: dict | None, key: str, show, show_difference) -> tuple[str, str, str, str]:
    value_a = record_a[key] if record_a else None
    value_b = record_b[key] if record_b else None
    difference = show_difference(value_b - value_a) if record_a and record_b else "-"
    return (f"epoch {number + 1} {name}", show(value_a) if record_a else "-", show(value_b) if record_b else "-", difference)


def format_table(rows: list[tuple[str, str, str, str]], label_a: str, label_b: str) -> str:
    lines = [f"| | A: {label_a} | B: {label_b} | B − A |", "|---|---:|---:|---:|"]
    lines += [f"| {what} | {value_a} | {value_b} | {difference} |" for what, value_a, value_b, difference in rows]
    return "\n".join(lines)


def main(argv=None) -> Path:
    args = compare_parser().parse_args(argv)
    try:
        a = read_metrics(args.run_a)
        b = read_metrics(args.run_b)
    except MetricsError as error:
        fail(PROG, str(error))
    label_a = f"{a['backend']} ({args.run_a.resolve().name})"
    label_b = f"{b['backend']} ({args.run_b.resolve().name})"

    print(format_table(comparison_rows(a, b), label_a, label_b))
    print("pp: percentage points")

    out = args.out or default_out(args.run_a, args.run_b)
    path = plots.write_curves(out / "curves.png", [(f"A {label_a}", a), (f"B {label_b}", b)], f"A: {args.run_a}   vs   B: {args.run_b}")
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
