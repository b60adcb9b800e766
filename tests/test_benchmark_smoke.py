"""The epoch benchmark's report and table, built from made-up figures so its formatting is checked without timing anything."""

import json

import pytest

from benchmarks import epoch

MACHINE = {"cpu": "test CPU", "cores": 2, "load_average_start": 0.5, "load_average_end": 0.7}


def summary(seconds: list[float], peak_rss_bytes: float, compile_seconds: float | None = None) -> dict:
    """Summarize made-up samples through the benchmark's own reduction."""
    samples = [{"epoch_seconds": value, "images": 60000, "peak_rss_bytes": peak_rss_bytes, "test_accuracy": 0.98} for value in seconds]
    if compile_seconds is not None:
        for sample in samples:
            sample["compile_seconds"] = compile_seconds
    return epoch.summarize(samples)


def full_report() -> dict:
    pipelines = {
        "original": summary([40.0, 39.0, 41.0], 4.6e8),
        "torch": summary([10.0, 10.5, 9.5], 5.0e8),
        "jax": summary([8.0, 7.0, 9.0], 2.0e9, compile_seconds=3.5),
    }
    inference = {
        name: {"device": "cpu", "eval_images": 10000, "eval_seconds": 0.5, "latency_p50_ms": 0.2, "latency_p99_ms": 0.9}
        for name in ("torch", "jax")
    }
    settings = {"repeats": 3, "device": "auto", "only": list(epoch.PIPELINES), "total_seconds": 200.0}
    return epoch.build_report(pipelines, inference, MACHINE, settings)


def results_by_name(report: dict) -> dict[str, str]:
    return {item["name"]: item["result"] for item in report["targets"]}


def test_summary_median_and_max():
    result = summary([10.0, 12.0, 11.0], 5.0e8)
    assert result["epoch_seconds"] == 11.0, result
    assert result["images_per_second"] == pytest.approx(60000 / 11.0, rel=1e-12), result
    assert result["peak_rss_bytes"] == 5.0e8, result


def test_report_ratios():
    report = full_report()
    assert report["jax_over_torch"] == pytest.approx(0.8, rel=1e-12), report["jax_over_torch"]
    assert report["torch_over_original"] == pytest.approx(0.25, rel=1e-12), report["torch_over_original"]
    assert report["jax_over_original"] == pytest.approx(0.2, rel=1e-12), report["jax_over_original"]


def test_report_targets_pass_and_fail():
    results = results_by_name(full_report())
    expected = {
        "jax_impl epoch / torch_ref epoch": "PASS",  # 0.8 sits on the limit, which passes
        "torch_ref epoch / original epoch": "PASS",
        "jax_impl epoch / original epoch": "PASS",
        "torch_ref peak RSS": "PASS",
        "jax_impl peak RSS": "FAIL",  # 2.0 GB > 1.5 GB
        "jax_impl compile": "FAIL",  # 3.5 s > 3 s
    }
    assert results == expected


def test_report_is_json():
    report = full_report()
    assert json.loads(json.dumps(report)) == report


def test_table_shows_every_row():
    table = epoch.format_table(full_report())
    for label in epoch.LABELS.values():
        assert f"| {label} |" in table, table
    assert "| jax_impl peak RSS | 2,000 MB | <= 1,500 MB | FAIL |" in table, table
    assert "| jax_impl epoch / torch_ref epoch | 0.80 | <= 0.80 | PASS |" in table, table
    assert "| torch_ref | cpu | 0.500 | 20,000 | 0.200 | 0.900 |" in table, table


def test_subset_marks_ratios_na():
    pipelines = {"torch": summary([10.0], 5.0e8)}
    settings = {"repeats": 1, "device": "cpu", "only": ["torch"], "total_seconds": 15.0}
    report = epoch.build_report(pipelines, {}, MACHINE, settings)
    results = results_by_name(report)
    assert report["jax_over_torch"] is None, report["jax_over_torch"]
    assert results["jax_impl epoch / torch_ref epoch"] == "n/a", results
    assert results["torch_ref peak RSS"] == "PASS", results
    assert "| jax_impl compile | n/a | <= 3.00 s | n/a |" in epoch.format_table(report)


def test_only_flag_orders_and_rejects():
    assert epoch.parse_args(["--only", "jax,original"]).only == ["original", "jax"]
    with pytest.raises(SystemExit):
        epoch.parse_args(["--only", "torch,tensorflow"])


def test_table_warns_under_load():
    report = full_report()
    assert "WARNING" not in epoch.format_table(report)
    report["machine"] = MACHINE | {"load_average_end": 6.0}
    assert "WARNING: the load average exceeded the core count" in epoch.format_table(report)
