"""End-to-end specification of a real `python -m serve` process on 127.0.0.1: real test digits uploaded, rejections logged, digits drawn on its page in headless Chromium."""

import io
import json
import os
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from mnist_data import load_mnist
from serve.process import ServerProcess

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))  # GitHub's runners: their preinstalled Chrome
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SCREENSHOT_LIMIT_BYTES = 150 * 1024
# Set SERVE_SCREENSHOT=docs/img/page.png to keep the browser test's screenshot for the README.
SCREENSHOT_COPY = os.environ.get("SERVE_SCREENSHOT")


def encode(image: Image.Image, image_format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format)
    return buffer.getvalue()


def render(index: int, digit: np.ndarray) -> tuple[str, bytes, str]:
    """Render an MNIST digit as one of four kinds of upload: plain 28x28 PNG, large dark-on-light RGB PNG, JPEG on a margin, or strokes on transparency."""
    style = index % 4
    if style == 0:
        return "digit.png", encode(Image.fromarray(digit)), "image/png"
    drawn = Image.fromarray(255 - digit).resize((112, 112), Image.Resampling.BICUBIC)
    if style == 1:
        return "digit.png", encode(drawn.convert("RGB")), "image/png"
    if style == 2:
        page = Image.new("L", (200, 160), 255)
        page.paste(drawn, (60, 20))
        return "digit.jpg", encode(page, "JPEG"), "image/jpeg"
    strokes = Image.new("RGBA", drawn.size, (0, 0, 0, 0))
    strokes.putalpha(Image.fromarray(255 - np.asarray(drawn)))
    return "digit.png", encode(strokes), "image/png"


@pytest.fixture(scope="module")
def server(trained_runs, tmp_path_factory):
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    with ServerProcess(trained_runs["jax_impl"] / "model.safetensors", backend="both", log_path=log_path) as running:
        yield running


def test_uploaded_test_digits_predicted(server):
    images, labels = load_mnist("test")
    correct = {"jax": 0, "torch": 0}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for index in range(100):
            name, data, media_type = render(index, images[index])
            response = client.post("/predict", files={"file": (name, data, media_type)})
            assert response.status_code == 200, f"test digit {index}: {response.status_code} {response.text[:300]}"
            for backend, result in response.json()["results"].items():
                correct[backend] += result["digit"] == labels[index]
    for backend, count in correct.items():
        assert count >= 97, f"{backend}: {count} of the first 100 test digits correct after upload and preprocessing, expected >= 97"


def test_rejections_logged_once_each(server):
    bad_requests = [
        ({"files": {"file": ("notes.txt", b"plain text, not an image", "text/plain")}}, 415),
        ({"content": '{"image": [[NaN]]}', "headers": {"content-type": "application/json"}}, 422),
        ({"content": json.dumps({"image": [[float("nan")] * 28] * 28}), "headers": {"content-type": "application/json"}}, 422),
    ]
    before = server.log().count("rejected POST")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for arguments, status in bad_requests:
            response = client.post("/predict", **arguments)
            assert response.status_code == status, f"status {response.status_code}, expected {status}: {response.text[:200]}"
        batch = client.post("/predict/batch", json={"images": np.zeros((300, 28, 28), int).tolist()})
        assert batch.status_code == 413, batch.text[:200]
        assert client.get("/health").status_code == 200, "the server should keep serving after rejecting requests"
    lines = [line for line in server.log().splitlines() if "rejected POST" in line]
    assert len(lines) - before == len(bad_requests) + 1, f"expected one log line per rejected request, got:\n" + "\n".join(lines[before:])
    assert "over the batch limit of 256" in lines[-1]


def require_browser() -> None:
    """Skip locally, but fail under CI=true, when Chromium or Playwright is missing (CI installs Chromium with .ci/install-browser.sh, Playwright with the test extras)."""
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (bash .ci/install-browser.sh, as root)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("Playwright for Python (pip install playwright)")
    if missing:
        message = f"the browser test needs {' and '.join(missing)}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def draw(page, strokes: list[list[tuple[float, float]]]) -> None:
    """Draw strokes with the mouse on the pad; points are in pad pixels (0-280)."""
    box = page.locator("#pad").bounding_box()
    scale = box["width"] / 280
    for stroke in strokes:
        (x, y), rest = stroke[0], stroke[1:]
        page.mouse.move(box["x"] + x * scale, box["y"] + y * scale)
        page.mouse.down()
        for x, y in rest:
            page.mouse.move(box["x"] + x * scale, box["y"] + y * scale, steps=12)
        page.mouse.up()


def shown_digits(page) -> dict[str, str]:
    """Wait until the results describe the latest drawing, then read each backend's digit."""
    page.wait_for_function(
        "document.getElementById('results').dataset.version === document.getElementById('pad').dataset.version",
        timeout=15_000,
    )
    return {backend: page.inner_text(f"[data-backend={backend}] .digit") for backend in ("jax", "torch")}


def test_browser_draws_digits(server, tmp_path):
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 520})
            page.goto(f"{server.url}/")
            page.wait_for_selector("body[data-ready=true]", timeout=15_000)

            draw(page, [[(140, 40), (140, 240)]])
            assert shown_digits(page) == {"jax": "1", "torch": "1"}, "a vertical stroke should read as 1"

            page.click("#clear")
            assert page.inner_text("[data-backend=jax] .digit") == "–", "Clear should reset the prediction"
            draw(page, [[(70, 60), (210, 60), (120, 240)]])
            assert shown_digits(page) == {"jax": "7", "torch": "7"}, "a bar with a diagonal from its right end should read as 7"
            assert "agree: 7" in page.inner_text("#agreement")

            screenshot = tmp_path / "page.png"
            page.screenshot(path=str(screenshot))
        finally:
            browser.close()

    size = screenshot.stat().st_size
    assert size <= SCREENSHOT_LIMIT_BYTES, f"screenshot is {size:,} bytes, over {SCREENSHOT_LIMIT_BYTES:,}"
    if SCREENSHOT_COPY:
        target = Path(SCREENSHOT_COPY)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(screenshot, temporary)
        os.replace(temporary, target)
