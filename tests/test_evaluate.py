"""The evaluation and comparison command lines: `BACKEND.evaluate` on checkpoints of both backends, `parity.compare` on two runs, and one-line errors for bad input."""

import json
import os
import subprocess
import sys

import pytest

from parity import compare

BACKENDS = ("torch_ref", "jax_impl")
TEST_EXAMPLES = 10_000
# Two float32 backends may flip the argmax of an example whose top two logits nearly tie.
MAX_FLIPPED = 2


def run_module(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True, timeout=300)


def read_json(path) -> dict:
    return json.loads(path.read_text())


def assert_one_line_error(completed: subprocess.CompletedProcess, *fragments: str) -> None:
    assert completed.returncode != 0, f"exit code 0 for bad input; stdout: {completed.stdout[-500:]!r}"
    assert "Traceback" not in completed.stderr, completed.stderr[-3000:]
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got: {completed.stderr!r}"
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"


@pytest.fixture(scope="module")
def evaluations(trained_runs, tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, dict]]:
    """Evaluate each backend's checkpoint with the other backend; key: trainer -> (process, evaluation.json)."""
    results = {}
    for trainer, evaluator in (("torch_ref", "jax_impl"), ("jax_impl", "torch_ref")):
        out = tmp_path_factory.mktemp(f"{evaluator}-evaluates-{trainer}")
        completed = run_module(f"{evaluator}.evaluate", trained_runs[trainer] / "model.safetensors", "--out", out)
        assert completed.returncode == 0, f"{evaluator}.evaluate failed:\n{completed.stderr[-3000:]}"
        results[trainer] = (completed, read_json(out / "evaluation.json") | {"out": str(out)})
    return results


@pytest.mark.parametrize("trainer", BACKENDS)
def test_cross_backend_evaluation_agrees(trainer, evaluations, trained_runs):
    """The other backend's figures for a checkpoint match those the trainer recorded with its own backend."""
    completed, evaluation = evaluations[trainer]
    recorded = read_json(trained_runs[trainer] / "metrics.json")["epochs"][-1]

    assert evaluation["trained_by"] == trainer
    assert evaluation["backend"] != trainer
    flipped = abs(evaluation["test_accuracy"] - recorded["test_accuracy"]) * TEST_EXAMPLES
    assert flipped <= MAX_FLIPPED + 1e-6, f"{evaluation['backend']}: {evaluation['test_accuracy']} vs {trainer}: {recorded['test_accuracy']}"
    assert evaluation["test_loss"] == pytest.approx(recorded["test_loss"], rel=1e-4), f"{evaluation['test_loss']} vs {recorded['test_loss']}"
    assert f"test accuracy {100 * evaluation['test_accuracy']:.2f}%" in completed.stdout, completed.stdout


@pytest.mark.parametrize("trainer", BACKENDS)
def test_evaluate_prints_per_class_table(trainer, evaluations):
    completed, evaluation = evaluations[trainer]
    table_rows = [line for line in completed.stdout.splitlines() if line.startswith("| ") and line.split("|")[1].strip().isdigit()]
    assert len(table_rows) == 10, f"per-class table has {len(table_rows)} rows, expected 10:\n{completed.stdout}"
    for row, per_class in zip(table_rows, evaluation["per_class"]):
        assert f"| {100 * per_class['accuracy']:.2f}% |" in row, f"{row!r} lacks accuracy {per_class['accuracy']}"


@pytest.mark.parametrize("trainer", BACKENDS)
def test_evaluate_writes_report(trainer, evaluations):
    completed, evaluation = evaluations[trainer]
    confusion = evaluation["confusion"]
    correct = sum(confusion[digit][digit] for digit in range(10))

    assert evaluation["test_examples"] == TEST_EXAMPLES
    assert sum(map(sum, confusion)) == TEST_EXAMPLES
    # JAX averages the accuracy in float32, so it can be 1e-7 off the exact count.
    assert correct / TEST_EXAMPLES == pytest.approx(evaluation["test_accuracy"], abs=1e-6)
    assert len(evaluation["mistakes"]) == TEST_EXAMPLES - correct
    assert [row["images"] for row in evaluation["per_class"]] == [sum(row) for row in confusion]
    confidences = [mistake["confidence"] for mistake in evaluation["mistakes"]]
    assert confidences == sorted(confidences, reverse=True), "mistakes are listed most confident first"
    assert all(mistake["label"] != mistake["prediction"] for mistake in evaluation["mistakes"])
    for name in ("confusion.png", "mistakes.png"):
        path = f"{evaluation['out']}/{name}"
        assert path in completed.stdout, f"{path} not reported as written"
        assert os.path.getsize(path) > 10_000, f"{path} is only {os.path.getsize(path)} bytes"


@pytest.mark.parametrize(("backend", "content"), [("torch_ref", None), ("jax_impl", "not a checkpoint")], ids=["missing", "not-safetensors"])
def test_evaluate_bad_checkpoint(backend, content, tmp_path):
    path = tmp_path / "model.safetensors"
    if content is not None:
        path.write_text(content)
    completed = run_module(f"{backend}.evaluate", path)
    assert_one_line_error(completed, str(path))
    if content is None:
        assert "checkpoint not found" in completed.stderr


def test_compare_prints_table_and_plot(trained_runs, tmp_path):
    out = tmp_path / "compare"
    completed = run_module("parity.compare", trained_runs["torch_ref"], trained_runs["jax_impl"], "--out", out)
    assert completed.returncode == 0, completed.stderr[-3000:]

    torch_metrics = read_json(trained_runs["torch_ref"] / "metrics.json")
    jax_metrics = read_json(trained_runs["jax_impl"] / "metrics.json")
    lines = completed.stdout.splitlines()
    rows = {line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:5]] for line in lines if line.startswith("| ")}
    assert rows["backend"] == ["torch_ref", "jax_impl", "differs"], rows["backend"]
    assert rows["seed"] == ["0", "0", "same"], rows["seed"]
    assert rows["device"][2] == "same (cpu)", rows["device"]  # 'cpu' from PyTorch, 'cpu:0' from JAX
    assert rows["config"] == ["same recipe", "same recipe", "same"], rows.get("config")
    for key, name in (("test_accuracy", "test acc"), ("running_train_accuracy", "running train acc"), ("train_accuracy", "train acc")):
        expected = [f"{100 * torch_metrics['epochs'][0][key]:.2f}%", f"{100 * jax_metrics['epochs'][0][key]:.2f}%"]
        assert rows[f"epoch 1 {name}"][:2] == expected, f"{rows[f'epoch 1 {name}']} vs {expected}"
    for row in ("device", "dtype", "epoch 1 test loss", "epoch 1 seconds"):
        assert row in rows, f"no row {row!r} in:\n{completed.stdout}"
    assert (out / "curves.png").stat().st_size > 10_000
    assert lines[-1] == f"wrote {out / 'curves.png'}"


def test_compare_default_out_and_config_difference(trained_runs, tmp_path):
    run_a = tmp_path / "a"
    run_a.mkdir()
    metrics = read_json(trained_runs["jax_impl"] / "metrics.json")
    metrics["config"]["lr"] = 0.002
    (run_a / "metrics.json").write_text(json.dumps(metrics))

    completed = run_module("parity.compare", run_a, trained_runs["jax_impl"])
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "| config.lr | 0.002 | 0.004 | differs |" in completed.stdout, completed.stdout
    expected = tmp_path / f"compare-a-{trained_runs['jax_impl'].name}" / "curves.png"
    assert completed.stdout.splitlines()[-1] == f"wrote {expected}"
    assert expected.is_file()


def older_format(metrics: dict) -> dict:
    return {key: value for key, value in metrics.items() if key != "format"}


def missing_step_correct(metrics: dict) -> dict:
    metrics["epochs"][0].pop("step_correct")
    return metrics


def test_compare_missing_metrics_cli(trained_runs, tmp_path):
    completed = run_module("parity.compare", trained_runs["torch_ref"], tmp_path)
    assert_one_line_error(completed, f"{tmp_path / 'metrics.json'} not found")


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        (None, ["metrics.json not found"]),
        (older_format, ["metrics.json has no 'format' key", "expected format 1"]),
        (lambda metrics: metrics | {"format": 0}, ["metrics.json has format 0"]),
        (lambda metrics: {key: value for key, value in metrics.items() if key != "config"}, ["lacks required field(s) config"]),
        (missing_step_correct, ["epochs[0] lacks required field(s) step_correct"]),
        (lambda metrics: metrics | {"epochs": []}, ["has no epochs"]),
    ],
    ids=["no-metrics", "no-format", "format-0", "no-config", "missing-field", "no-epochs"],
)
def test_compare_bad_run_folder(change, fragments, trained_runs, tmp_path):
    """Called in-process: the exit message is the one line the command prints."""
    bad = tmp_path / "bad-run"
    bad.mkdir()
    if change is not None:
        metrics = read_json(trained_runs["torch_ref"] / "metrics.json")
        (bad / "metrics.json").write_text(json.dumps(change(metrics)))

    with pytest.raises(SystemExit) as raised:
        compare.main([str(trained_runs["torch_ref"]), str(bad)])
    message = raised.value.code
    assert isinstance(message, str), f"exit code {message!r}, expected a message"
    assert "\n" not in message, f"expected one line, got {message!r}"
    for fragment in (str(bad), *fragments):
        assert fragment in message, f"{fragment!r} not in {message!r}"
