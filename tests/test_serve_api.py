"""Specification of the HTTP API through FastAPI's TestClient: each endpoint, each kind of bad input, and checkpoint lookup."""

import io
import json
import logging
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from mnist_common.checkpoint import CheckpointError, save_checkpoint
from mnist_common.config import Config
from mnist_data import load_mnist
from serve import checkpoints
from serve.app import create_app

PROBABILITY_TOLERANCE = 1e-5  # float32 JAX vs float32 PyTorch on the same weights


def encode(image: Image.Image, image_format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format)
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """Return a valid PNG header and one tiny IDAT chunk that declare width x height pixels (a decompression bomb's shape)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def first_test_digits() -> tuple[np.ndarray, np.ndarray]:
    images, labels = load_mnist("test")
    return images[:100], labels[:100]


@pytest.fixture(scope="module")
def fresh_checkpoint(tmp_path_factory) -> Path:
    """An untrained model's checkpoint: enough for checks that never look at the predicted digit."""
    import torch

    from torch_ref.train import create_model, state_dict_arrays

    model = create_model(Config(), torch.float32, torch.device("cpu"))
    path = tmp_path_factory.mktemp("fresh") / "model.safetensors"
    return save_checkpoint(path, state_dict_arrays(model), {"backend": "torch_ref", "config": Config().to_dict(), "epochs": 0})


@pytest.fixture(scope="module")
def torch_client(fresh_checkpoint):
    """A PyTorch-only app on the untrained checkpoint, for the input checks (they run before any backend)."""
    with TestClient(create_app(fresh_checkpoint, "torch")) as client:
        yield client


@pytest.fixture(scope="module")
def client(trained_runs):
    """Both backends on the checkpoint the PyTorch trainer wrote."""
    with TestClient(create_app(trained_runs["torch_ref"] / "model.safetensors", "both")) as client:
        yield client


# Health, model description, documentation and the page.

def test_health_lists_backends(client, trained_runs):
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["backends"] == ["jax", "torch"]
    assert body["checkpoint"] == str((trained_runs["torch_ref"] / "model.safetensors").resolve())


def test_model_describes_checkpoint(client, trained_runs):
    body = client.get("/model").json()
    metrics = json.loads((trained_runs["torch_ref"] / "metrics.json").read_text())
    assert body["params"] == 13498, f"params {body['params']}, expected 13,498"
    assert [layer["name"] for layer in body["layers"]] == ["conv1", "conv2", "conv3", "fc1", "fc2"]
    assert sum(layer["params"] for layer in body["layers"]) == 13498
    assert body["layers"][3]["shape"] == [64, 144], f"fc1 weight shape {body['layers'][3]['shape']}, expected [64, 144]"
    recorded = metrics["epochs"][-1]["test_accuracy"]
    assert body["test_accuracy"] == pytest.approx(recorded, abs=1e-12), f"test accuracy {body['test_accuracy']} vs metrics.json {recorded}"
    assert body["checkpoint"]["metadata"]["backend"] == "torch_ref"
    assert len(body["checkpoint"]["sha256"]) == 64
    assert [backend["name"] for backend in body["backends"]] == ["jax", "torch"]
    assert all(sum(backend["layer_params"].values()) == 13498 for backend in body["backends"])
    assert body["limits"] == {"max_upload_bytes": 5 * 1024 * 1024, "max_side_pixels": 4096, "max_batch": 256}


def test_docs_document_both_bodies(client):
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    content = schema["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json", "image/png", "image/jpeg"} <= set(content), f"documented bodies: {sorted(content)}"
    assert {"/predict", "/predict/batch", "/model", "/health"} <= set(schema["paths"]), f"documented paths: {sorted(schema['paths'])}"


def test_page_served_offline(client):
    page = client.get("/")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert '<canvas id="pad"' in page.text
    assert "/static/app.js" in page.text
    for asset in ("/static/app.js", "/static/style.css"):
        response = client.get(asset)
        assert response.status_code == 200, f"{asset}: status {response.status_code}"
        assert "://" not in response.text, f"{asset} refers to another host"
    assert "://" not in page.text, "the page refers to another host"


# Predictions.

def test_predict_json_digits(client, first_test_digits):
    images, labels = first_test_digits
    correct = 0
    for image, label in zip(images[:20], labels[:20]):
        response = client.post("/predict", json={"image": image.tolist()})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["backends"] == ["jax", "torch"]
        assert sum(body["probabilities"]) == pytest.approx(1.0, abs=1e-6)
        assert body["probabilities"][body["digit"]] == max(body["probabilities"])
        assert body["milliseconds"] > 0 and all(result["milliseconds"] > 0 for result in body["results"].values())
        assert body["input"] is None, "input is returned only on request"
        correct += body["digit"] == label
    assert correct >= 19, f"{correct} of the first 20 test digits predicted correctly, expected >= 19 (test accuracy ~98%)"


def test_predict_bare_array(client, first_test_digits):
    images, labels = first_test_digits
    body = client.post("/predict", json=images[0].tolist()).json()
    assert body["digit"] == labels[0], f"digit {body['digit']}, label {labels[0]}"


def test_backends_agree(client, first_test_digits):
    images, _ = first_test_digits
    body = client.post("/predict/batch", json={"images": images.tolist()}).json()
    jax_result, torch_result = body["results"]["jax"], body["results"]["torch"]
    assert jax_result["digits"] == torch_result["digits"]
    assert body["agree"] is True
    difference = np.abs(np.array(jax_result["probabilities"]) - np.array(torch_result["probabilities"])).max()
    assert difference <= PROBABILITY_TOLERANCE, f"max probability difference {difference:.2e}, expected <= {PROBABILITY_TOLERANCE:.0e}"


def test_batch_matches_single(client, first_test_digits):
    images, labels = first_test_digits
    body = client.post("/predict/batch", json={"images": images.tolist()}).json()
    correct = int((np.array(body["digits"]) == labels).sum())
    assert correct >= 97, f"{correct} of the first 100 test digits correct, expected >= 97"
    for index in (0, 1, 57):
        single = client.post("/predict", json={"image": images[index].tolist()}).json()
        assert single["digit"] == body["digits"][index]
        assert single["probabilities"] == pytest.approx(body["probabilities"][index], abs=1e-6)


def test_batch_of_256_accepted(client, first_test_digits):
    images, _ = first_test_digits
    batch = np.concatenate([images, images, images[:56]])
    response = client.post("/predict/batch", json=batch.tolist())
    assert response.status_code == 200, response.text
    assert len(response.json()["digits"]) == 256


@pytest.mark.parametrize(("mode", "image_format", "media_type"), [("L", "PNG", "image/png"), ("RGB", "JPEG", "image/jpeg")])
def test_predict_upload(client, first_test_digits, mode, image_format, media_type):
    images, labels = first_test_digits
    drawn = Image.fromarray(255 - images[1]).resize((140, 140), Image.Resampling.BICUBIC).convert(mode)
    response = client.post("/predict", files={"file": (f"digit.{image_format.lower()}", encode(drawn, image_format), media_type)})
    assert response.status_code == 200, response.text
    assert response.json()["digit"] == labels[1], f"digit {response.json()['digit']}, label {labels[1]}"


def test_predict_raw_image_body(client, first_test_digits):
    images, labels = first_test_digits
    response = client.post("/predict", content=encode(Image.fromarray(images[2])), headers={"content-type": "image/png"})
    assert response.status_code == 200, response.text
    assert response.json()["digit"] == labels[2]


def test_include_input_returns_28x28(client, first_test_digits):
    images, _ = first_test_digits
    body = client.post("/predict?include_input=true", files={"file": ("d.png", encode(Image.fromarray(images[3])), "image/png")}).json()
    model_input = np.array(body["input"])
    assert model_input.shape == (28, 28)
    assert model_input.max() == 255, f"the preprocessed ink should reach 255, got {model_input.max()}"


def test_single_backend_app(torch_client):
    body = torch_client.post("/predict", json={"image": np.zeros((28, 28), int).tolist()}).json()
    assert body["backends"] == ["torch"]
    assert set(body["results"]) == {"torch"}
    assert body["agree"] is True


# Bad input: every rejection is a 4xx whose message names the fault, logged in one line, and the app keeps serving.

def image_with(row: int, column: int, value) -> list:
    image = np.zeros((28, 28), int).tolist()
    image[row][column] = value
    return image


def json_body(document) -> dict:
    return {"content": json.dumps(document), "headers": {"content-type": "application/json"}}


def upload(name: str, data: bytes, media_type: str = "image/png") -> dict:
    return {"files": {"file": (name, data, media_type)}}


BAD_REQUESTS = [
    # (id, path, request arguments, status, fragment of the message)
    ("empty-upload", "/predict", lambda: upload("empty.png", b""), 400, "'empty.png' is empty"),
    ("non-image-bytes", "/predict", lambda: upload("notes.png", b"these bytes are not an image"), 415, "'notes.png' is not a PNG or JPEG"),
    ("gif", "/predict", lambda: upload("digit.gif", encode(Image.new("L", (28, 28)), "GIF"), "image/gif"), 415, "it is a GIF image"),
    ("over-5-mib", "/predict", lambda: upload("huge.png", b"\x89PNG" + bytes(6 * 1024 * 1024)), 413, "over the limit"),
    ("raw-over-5-mib", "/predict", lambda: {"content": bytes(6 * 1024 * 1024), "headers": {"content-type": "image/png"}}, 413, "over the limit of 5,242,880 bytes"),
    ("side-over-4096", "/predict", lambda: upload("wide.png", encode(Image.new("L", (4097, 8)))), 413, "4,097x8 pixels"),
    ("decompression-bomb", "/predict", lambda: upload("bomb.png", png_declaring(100_000, 100_000)), 413, "at most 4,096 pixels"),
    ("bomb-under-pillow-limit", "/predict", lambda: upload("bomb.png", png_declaring(8000, 8000)), 413, "8,000x8,000 pixels"),
    ("truncated-png", "/predict", lambda: upload("cut.png", encode(Image.effect_noise((64, 64), 60))[:300]), 400, "'cut.png' is a PNG image but could not be decoded"),
    ("blank-image", "/predict", lambda: upload("white.png", encode(Image.new("RGB", (50, 50), "white"))), 422, "'white.png' is blank"),
    ("no-file-field", "/predict", lambda: {"data": {"picture": "x"}, "files": {"other": ("d.png", b"x", "image/png")}}, 422, "no file in a field named 'file'"),
    ("text-content-type", "/predict", lambda: {"content": b"7", "headers": {"content-type": "text/plain"}}, 415, "'text/plain' is not accepted"),
    ("empty-json", "/predict/batch", lambda: {"content": b"", "headers": {"content-type": "application/json"}}, 400, "JSON body is empty; send {\"images\""),
    ("invalid-json", "/predict", lambda: {"content": b"{\"image\": [1, 2", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
    ("json-not-object", "/predict", lambda: json_body("seven"), 422, "got a string"),
    ("json-missing-field", "/predict", lambda: json_body({"pixels": []}), 422, "no 'image' field (fields sent: 'pixels')"),
    ("27-rows", "/predict", lambda: json_body({"image": np.zeros((27, 28), int).tolist()}), 422, "28 rows of 28 values, got 27 rows"),
    ("row-of-29", "/predict", lambda: json_body({"image": [[0] * 28] * 5 + [[0] * 29] + [[0] * 28] * 22}), 422, "'image[5]' must have 28 values, got 29"),
    ("row-not-array", "/predict", lambda: json_body({"image": [[0] * 28] * 27 + [7]}), 422, "'image[27]' must be a row of 28 numbers, got a number"),
    ("string-value", "/predict", lambda: json_body({"image": image_with(3, 5, "12")}), 422, "'image[3][5]' must be a number 0-255, got a string"),
    ("boolean-value", "/predict", lambda: json_body({"image": image_with(0, 0, True)}), 422, "'image[0][0]' must be a number 0-255, got a boolean"),
    ("null-value", "/predict", lambda: json_body({"image": image_with(1, 2, None)}), 422, "got null"),
    ("nested-value", "/predict", lambda: json_body({"image": image_with(1, 2, [1])}), 422, "got an array"),
    ("nan", "/predict", lambda: json_body({"image": image_with(4, 6, float("nan"))}), 422, "'image[4][6]' is NaN"),
    ("infinity", "/predict", lambda: json_body({"image": image_with(4, 6, float("inf"))}), 422, "'image[4][6]' is infinite"),
    ("negative", "/predict", lambda: json_body({"image": image_with(7, 8, -1)}), 422, "'image[7][8]' is -1, outside 0-255"),
    ("over-255", "/predict", lambda: json_body({"image": image_with(9, 10, 256)}), 422, "'image[9][10]' is 256, outside 0-255"),
    ("batch-over-256", "/predict/batch", lambda: json_body({"images": np.zeros((257, 28, 28), int).tolist()}), 413, "257 arrays, over the batch limit of 256"),
    ("batch-empty", "/predict/batch", lambda: json_body({"images": []}), 422, "'images' is empty"),
    ("batch-bad-item", "/predict/batch", lambda: json_body({"images": [image_with(0, 0, 0), image_with(2, 3, 300)]}), 422, "'images[1][2][3]' is 300"),
    ("batch-multipart", "/predict/batch", lambda: upload("d.png", b"x"), 415, "send application/json"),
    ("query-not-boolean", "/predict?include_input=maybe", lambda: json_body({"image": image_with(0, 0, 0)}), 422, "include_input"),
]


@pytest.mark.parametrize(("path", "make_request", "status", "fragment"), [case[1:] for case in BAD_REQUESTS], ids=[case[0] for case in BAD_REQUESTS])
def test_bad_input_rejected(torch_client, caplog, path, make_request, status, fragment):
    with caplog.at_level(logging.WARNING, logger="serve"):
        response = torch_client.post(path, **make_request())
    assert response.status_code == status, f"status {response.status_code}, expected {status}: {response.text[:300]}"
    detail = response.json()["detail"]
    assert fragment in str(detail), f"message {detail!r} should contain {fragment!r}"
    rejections = [record.getMessage() for record in caplog.records if record.getMessage().startswith("rejected ")]
    assert len(rejections) == 1, f"expected one 'rejected' log line, got {rejections}"
    assert "\n" not in rejections[0]
    assert f"{path.split('?')[0]} from testclient: {status}" in rejections[0], rejections[0]


def test_serving_continues_after_bad_input(torch_client):
    for path, make_request, _, _ in [case[1:] for case in BAD_REQUESTS]:
        torch_client.post(path, **make_request())
    assert torch_client.get("/health").status_code == 200
    response = torch_client.post("/predict", json={"image": np.zeros((28, 28), int).tolist()})
    assert response.status_code == 200, response.text


def test_float_values_rounded(torch_client):
    rounded = torch_client.post("/predict?include_input=true", json={"image": image_with(10, 10, 254.6)}).json()
    assert rounded["input"][10][10] == 255, f"254.6 should round to 255, got {rounded['input'][10][10]}"


# Checkpoints.

def test_missing_checkpoint_rejected(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        create_app(tmp_path / "absent.safetensors", "torch")


def test_cli_missing_checkpoint_exits(tmp_path):
    from serve.__main__ import main

    with pytest.raises(SystemExit) as caught:
        # --backend jax: with torch, main would also set this test process's PyTorch thread count.
        main(["--checkpoint", str(tmp_path / "absent.safetensors"), "--backend", "jax", "--log-level", "warning"])
    assert "checkpoint not found" in str(caught.value.code)
    assert "pass --checkpoint" in str(caught.value.code)


def test_newest_run_chosen(tmp_path, fresh_checkpoint):
    for index, name in enumerate(["torch_ref-old", "jax_impl-new", "torch_ref-middle"]):
        run = tmp_path / name
        run.mkdir()
        checkpoint = run / "model.safetensors"
        checkpoint.write_bytes(fresh_checkpoint.read_bytes())
        stamp = 1_700_000_000 + {"torch_ref-old": 0, "jax_impl-new": 200, "torch_ref-middle": 100}[name]
        os.utime(checkpoint, (stamp, stamp))
    (tmp_path / "unfinished").mkdir()  # a run still training has no checkpoint yet
    assert checkpoints.find_or_train_checkpoint(tmp_path) == tmp_path / "jax_impl-new" / "model.safetensors"


def test_newest_run_skips_dry_runs(tmp_path, fresh_checkpoint):
    for name, stamp, dry_run in [("jax_impl-real", 1_700_000_000, False), ("torch_ref-smoke", 1_700_000_100, True)]:
        run = tmp_path / name
        run.mkdir()
        (run / "metrics.json").write_text(json.dumps({"dry_run": dry_run}))
        checkpoint = run / "model.safetensors"
        checkpoint.write_bytes(fresh_checkpoint.read_bytes())
        os.utime(checkpoint, (stamp, stamp))
    assert checkpoints.newest_checkpoint(tmp_path) == tmp_path / "jax_impl-real" / "model.safetensors"


def test_no_runs_trains_jax_once(tmp_path, fresh_checkpoint, monkeypatch):
    import jax_impl.train

    calls = []

    def record_training(argv):
        # Stands in for one epoch of training (about 20 s); the argument list is what this test checks.
        calls.append(argv)
        out = Path(argv[argv.index("--out") + 1])
        out.mkdir(parents=True)
        (out / "model.safetensors").write_bytes(fresh_checkpoint.read_bytes())

    monkeypatch.setattr(jax_impl.train, "main", record_training)
    runs = tmp_path / "runs"
    first = checkpoints.find_or_train_checkpoint(runs)
    second = checkpoints.find_or_train_checkpoint(runs)
    assert len(calls) == 1, f"expected one training run, got {len(calls)}: {calls}"
    assert calls[0][0] == "--out"
    assert Path(calls[0][1]).parent == runs
    assert Path(calls[0][1]).name.startswith("jax_impl-")
    assert first == second == Path(calls[0][1]) / "model.safetensors"
