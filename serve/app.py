"""The FastAPI application: the drawing page at /, predictions at /predict and /predict/batch, /health and /model."""

import hashlib
import logging
import time
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from mnist_common.checkpoint import load_checkpoint
from serve.backends import checkpoint_config, load_backends, predict
from serve.inputs import (
    IMAGE_TYPES, MAX_BATCH, batch_from_json, field_value, image_from_json, media_type, read_json, read_upload,
)
from serve.preprocess import MAX_SIDE, MAX_UPLOAD_BYTES, InputError, preprocess_upload
from serve.schemas import BatchPrediction, Health, ModelInfo, Prediction

STATIC = Path(__file__).parent / "static"
IMAGE_EXAMPLE = '{"image": [[0, 0, ...28 values], ...28 rows]}'
BATCH_EXAMPLE = '{"images": [[[0, 0, ...], ...28 rows], ...up to 256 images]}'

logger = logging.getLogger("serve")

ARRAY_28 = {
    "type": "array", "minItems": 28, "maxItems": 28,
    "items": {"type": "array", "minItems": 28, "maxItems": 28, "items": {"type": "number", "minimum": 0, "maximum": 255}},
    "description": "28 rows of 28 gray levels 0-255, MNIST-style: light digit on black, centred; used as is, values rounded to integers",
}
PREDICT_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {"file": {
        "type": "string", "format": "binary",
        "description": f"PNG or JPEG of any size and colour mode, at most {MAX_UPLOAD_BYTES:,} bytes and {MAX_SIDE:,} pixels a side; preprocessed MNIST-style",
    }}}},
    "image/png": {"schema": {"type": "string", "format": "binary"}},
    "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
    "application/json": {"schema": {"type": "object", "required": ["image"], "properties": {"image": ARRAY_28}}},
}}}
BATCH_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "object", "required": ["images"], "properties": {
        "images": {"type": "array", "minItems": 1, "maxItems": MAX_BATCH, "items": ARRAY_28},
    }}},
}}}


class Error(BaseModel):
    detail: str


ERRORS = {status: {"model": Error, "description": description} for status, description in {
    400: "empty upload, undecodable image or invalid JSON",
    413: f"upload over {MAX_UPLOAD_BYTES:,} bytes, image over {MAX_SIDE:,} pixels a side, or batch over {MAX_BATCH}",
    415: "not a PNG or JPEG image, or an unsupported Content-Type",
    422: "wrong shape, type or range of a JSON array, NaN, or a blank image",
}.items()}


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def describe_model(checkpoint: Path, tensors: dict[str, np.ndarray], metadata: dict, backends: list) -> dict:
    """Gather what GET /model returns: layers from the checkpoint's tensors, counts from the backends' own functions."""
    layers = []
    for key in sorted(key for key in tensors if key.endswith(".weight")):
        name = key.removesuffix(".weight")
        weight = tensors[key]
        bias = tensors.get(f"{name}.bias")
        params = weight.size + (bias.size if bias is not None else 0)
        layers.append({"name": name, "kind": "conv" if weight.ndim == 4 else "dense", "shape": list(weight.shape), "params": int(params)})
    accuracy = metadata.get("test_accuracy")
    return {
        "architecture": backends[0].architecture,
        "layers": layers,
        "params": sum(backends[0].layer_params.values()),
        "test_accuracy": float(accuracy) if isinstance(accuracy, (int, float)) else None,
        "checkpoint": {"path": str(checkpoint), "sha256": sha256_file(checkpoint), "metadata": metadata},
        "backends": [backend.describe() for backend in backends],
        "limits": {"max_upload_bytes": MAX_UPLOAD_BYTES, "max_side_pixels": MAX_SIDE, "max_batch": MAX_BATCH},
    }


def single_prediction(names: list[str], results: dict, image: np.ndarray, start: float, include_input: bool) -> dict:
    per_backend = {
        name: {"digit": result["digits"][0], "probabilities": result["probabilities"][0], "milliseconds": result["milliseconds"]}
        for name, result in results.items()
    }
    first = per_backend[names[0]]
    return {
        "digit": first["digit"],
        "probabilities": first["probabilities"],
        "backends": names,
        "results": per_backend,
        "agree": len({result["digit"] for result in per_backend.values()}) == 1,
        "milliseconds": 1000 * (time.perf_counter() - start),
        "input": image.tolist() if include_input else None,
    }


def create_app(checkpoint: str | Path, backend: str = "both") -> FastAPI:
    """Load the checkpoint into the chosen backends ('jax', 'torch' or 'both'), warm them up, and build the app.

    Raises `mnist_common.checkpoint.CheckpointError` for a missing or unreadable checkpoint.
    """
    checkpoint = Path(checkpoint).resolve()
    tensors, metadata = load_checkpoint(checkpoint)
    config = checkpoint_config(metadata)
    start = time.perf_counter()
    backends = load_backends(backend, checkpoint, config)
    names = [loaded.name for loaded in backends]
    model_info = describe_model(checkpoint, tensors, metadata, backends)
    devices = ", ".join(f"{loaded.name} on {loaded.describe()['device']}" for loaded in backends)
    logger.info("loaded %s (%s) and warmed up in %.1f s", checkpoint, devices, time.perf_counter() - start)

    app = FastAPI(
        title="MNIST digit classifier",
        version="0.1.0",
        description=(
            "The MNIST CNN of this project served by its JAX/Flax and PyTorch backends side by side, from one checkpoint.\n\n"
            "Draw a digit at `/`. `POST /predict` takes a PNG or JPEG (multipart field `file`, or a raw `image/png` / "
            "`image/jpeg` body), preprocessed MNIST-style, or a JSON 28x28 array used as is. `POST /predict/batch` takes up "
            f"to {MAX_BATCH} arrays. Errors are JSON `{{\"detail\": message}}` with a 4xx status."
        ),
    )
    # NOTE: FastAPI's /docs page loads Swagger UI's script and CSS from a CDN, so offline it stays blank; /openapi.json needs no network.
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(InputError)
    async def reject(request: Request, error: InputError) -> JSONResponse:
        client = request.client.host if request.client else "-"
        logger.warning("rejected %s %s from %s: %d %s", request.method, request.url.path, client, error.status, error.message)
        return JSONResponse({"detail": error.message}, status_code=error.status)

    @app.exception_handler(RequestValidationError)
    async def reject_invalid_parameters(request: Request, error: RequestValidationError) -> JSONResponse:
        client = request.client.host if request.client else "-"
        problems = "; ".join(f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}" for item in error.errors())
        logger.warning("rejected %s %s from %s: 422 %s", request.method, request.url.path, client, problems)
        return await request_validation_exception_handler(request, error)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/health", response_model=Health)
    def health() -> dict:
        """Report that the server is up and which backends it loaded."""
        return {"status": "ok", "backends": names, "checkpoint": str(checkpoint)}

    @app.get("/model", response_model=ModelInfo)
    def model() -> dict:
        """Describe the served model: architecture, parameter count, checkpoint metadata and recorded test accuracy."""
        return model_info

    @app.post("/predict", response_model=Prediction, openapi_extra=PREDICT_BODY, responses=ERRORS)
    async def predict_one(
        request: Request,
        include_input: bool = Query(False, description="also return the 28x28 image the model read (after preprocessing, for uploads)"),
    ) -> dict:
        """Predict the digit in one image with every loaded backend.

        Send a PNG or JPEG as the multipart field `file`, or as the raw bytes with Content-Type image/png or
        image/jpeg. The image is turned to grayscale and inverted when the background is light. Then it is
        cropped to the ink, fitted into 20x20 keeping the aspect ratio and centred by mass in 28x28.
        Or send JSON `{"image": 28x28 array of 0-255}` (or the bare array), which the model reads as is.
        """
        start = time.perf_counter()
        kind = media_type(request)
        if kind == "application/json" or kind.endswith("+json"):
            image = image_from_json(field_value(await read_json(request, IMAGE_EXAMPLE), "image", IMAGE_EXAMPLE))
        elif kind == "multipart/form-data" or kind in IMAGE_TYPES:
            data, name = await read_upload(request)
            image = await run_in_threadpool(preprocess_upload, data, name)
        else:
            raise InputError(415, f"Content-Type {kind or '(none)'!r} is not accepted; send multipart/form-data with a 'file' field, image/png, image/jpeg or application/json")
        # One image takes about a millisecond per backend. Run on the event loop, it measured faster than a hop to
        # the thread pool (python -m benchmarks.serve_load), so only batches and image decoding go to threads.
        results = predict(backends, image[None])
        return single_prediction(names, results, image, start, include_input)

    @app.post("/predict/batch", response_model=BatchPrediction, openapi_extra=BATCH_BODY, responses=ERRORS)
    async def predict_batch(request: Request) -> dict:
        """Predict up to 256 digits given as JSON `{"images": [28x28 arrays of 0-255]}` (or the bare list); more is a 413."""
        start = time.perf_counter()
        kind = media_type(request)
        if kind != "application/json" and not kind.endswith("+json"):
            raise InputError(415, f"Content-Type {kind or '(none)'!r} is not accepted; send application/json {BATCH_EXAMPLE}")
        document = await read_json(request, BATCH_EXAMPLE)
        # Checking up to 256 x 784 values takes milliseconds, so it runs off the event loop.
        images = await run_in_threadpool(batch_from_json, field_value(document, "images", BATCH_EXAMPLE))
        results = await run_in_threadpool(predict, backends, images)
        first = results[names[0]]
        return {
            "digits": first["digits"],
            "probabilities": first["probabilities"],
            "backends": names,
            "results": results,
            "agree": all(result["digits"] == first["digits"] for result in results.values()),
            "milliseconds": 1000 * (time.perf_counter() - start),
        }

    return app
