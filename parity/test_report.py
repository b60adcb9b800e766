"""`python -m parity.report` on a short run: the folder it writes and the figures in it."""

import csv

import pytest
from PIL import Image

from parity import report

STEPS = 20


@pytest.fixture(scope="module")
def report_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("parity-report")
    assert report.main(["--out", str(out), "--steps", str(STEPS), "--seed", "1"]) == out
    return out


def test_report_files(report_folder):
    names = sorted(path.name for path in report_folder.iterdir())
    assert names == ["losses.csv", "losses.png", "report.md", "start.safetensors"], names


def test_report_csv_has_every_step(report_folder):
    with open(report_folder / "losses.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["step"]) for row in rows] == list(range(1, STEPS + 1))
    for row in rows:
        for dtype in ("float32", "float64"):
            difference = abs(float(row[f"{dtype}_torch_ref"]) - float(row[f"{dtype}_jax_impl"]))
            assert float(row[f"{dtype}_abs_difference"]) == pytest.approx(difference, abs=1e-15), row
        assert float(row[report.YARDSTICK_COLUMN]) > 0, row


def test_report_markdown_sections(report_folder):
    text = (report_folder / "report.md").read_text()
    headings = (
        "## Forward and gradients", "## Where the runs part", "## Yardstick: PyTorch against PyTorch (float32)",
        "## Loss per step", "## Largest parameter difference per layer", "## Accuracy at the end",
    )
    for heading in headings:
        assert heading in text, f"{heading!r} missing from report.md"
    assert "seed 1" in text
    assert f"| float64 | {STEPS} |" in text, "the float64 row of 'Where the runs part' is missing"


def test_report_png(report_folder):
    with Image.open(report_folder / "losses.png") as image:
        assert image.format == "PNG"
        assert image.width >= 800, image.size
        assert image.height >= 600, image.size


def test_report_yardstick_rows(report_folder):
    text = (report_folder / "report.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| jax_impl |") or line.startswith("| torch_ref, channels-first |")]
    assert len(rows) == 2, rows
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert len(cells) == 7, row
        assert cells[5].endswith(" points"), row
        assert cells[6].endswith("%"), row
