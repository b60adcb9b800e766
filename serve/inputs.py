"""Checks on what a client sends: request size, content type, multipart fields and 28x28 JSON arrays.

Every rejection is an `InputError` that carries the HTTP status and a message naming the field or value at fault.
"""

import json
import math

import numpy as np
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from serve.preprocess import MAX_UPLOAD_BYTES, InputError

IMAGE_SIZE = 28
MAX_BATCH = 256
# Room for the multipart boundaries and part headers around one uploaded file.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
# A full batch of 256 arrays written as JSON floats stays far below this.
MAX_JSON_BYTES = 16 * 1024 * 1024
IMAGE_TYPES = ("image/png", "image/jpeg")


def media_type(request: Request) -> str:
    """Return the request's Content-Type without parameters, lower-cased ('' when absent)."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_body(request: Request, limit: int, description: str, note: str = "") -> bytes:
    """Read the request body, rejecting it with 413 as soon as it is known to exceed `limit` bytes; `note` ends the message."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise InputError(413, f"{description} is {int(declared):,} bytes, over the limit of {limit:,} bytes{note}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise InputError(413, f"{description} is over the limit of {limit:,} bytes{note}")
    return bytes(body)


async def read_upload(request: Request) -> tuple[bytes, str]:
    """Return (bytes, file name) of the image in a multipart body's 'file' field or in a raw image/png or image/jpeg body."""
    kind = media_type(request)
    if kind in IMAGE_TYPES:
        data = await read_body(request, MAX_UPLOAD_BYTES, f"uploaded {kind} body")
        return data, "request body"

    limit = MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD_BYTES
    body = await read_body(request, limit, "multipart body", f" (an image may be at most {MAX_UPLOAD_BYTES:,} bytes)")

    async def stream():
        yield body

    try:
        form = await MultiPartParser(request.headers, stream(), max_files=4, max_fields=16).parse()
    except MultiPartException as error:
        raise InputError(400, f"invalid multipart body: {error.message}") from None
    try:
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            fields = ", ".join(repr(key) for key in form.keys()) or "none"
            raise InputError(422, f"multipart body has no file in a field named 'file' (fields sent: {fields}); send the image as file=@digit.png")
        data = await upload.read()
    finally:
        await form.close()
    return data, upload.filename or "upload"


async def read_json(request: Request, example: str) -> object:
    """Parse the JSON body; Python's parser accepts NaN and Infinity, which the array checks then reject."""
    body = await read_body(request, MAX_JSON_BYTES, "JSON body")
    if not body:
        raise InputError(400, f"JSON body is empty; send {example}")
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(400, f"request body is not valid JSON: {error}") from None


def json_type(value: object) -> str:
    """Name a decoded JSON value's type the way JSON does, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def field_value(document: object, field: str, example: str) -> object:
    """Return `document[field]` from a JSON object, or `document` itself when it is a bare array."""
    if isinstance(document, list):
        return document
    if not isinstance(document, dict):
        raise InputError(422, f"JSON body must be an object with an '{field}' field or a bare array, got {json_type(document)}; send {example}")
    if field not in document:
        fields = ", ".join(repr(key) for key in list(document)[:8]) or "none"
        raise InputError(422, f"JSON body has no '{field}' field (fields sent: {fields}); send {example}")
    return document[field]


def image_from_json(value: object, name: str = "image") -> np.ndarray:
    """Validate a 28x28 array of numbers within 0..255 and return it as uint8, each value rounded to the nearest integer."""
    if not isinstance(value, list):
        raise InputError(422, f"'{name}' must be a 28x28 array of numbers 0-255, got {json_type(value)}")
    if len(value) != IMAGE_SIZE:
        raise InputError(422, f"'{name}' must have 28 rows of 28 values, got {len(value)} rows")
    for row_index, row in enumerate(value):
        if not isinstance(row, list):
            raise InputError(422, f"'{name}[{row_index}]' must be a row of 28 numbers, got {json_type(row)}")
        if len(row) != IMAGE_SIZE:
            raise InputError(422, f"'{name}[{row_index}]' must have 28 values, got {len(row)}")
        # bool is a subclass of int in Python, so exact types keep true/false out.
        if not all(type(item) is int or type(item) is float for item in row):
            column = next(index for index, item in enumerate(row) if type(item) is not int and type(item) is not float)
            item = row[column]
            raise InputError(422, f"'{name}[{row_index}][{column}]' must be a number 0-255, got {json_type(item)} ({json.dumps(item)[:40]})")

    pixels = np.array(value, dtype=np.float64)
    finite = np.isfinite(pixels)
    if not finite.all():
        row_index, column = np.argwhere(~finite)[0]
        item = value[row_index][column]
        label = "NaN" if math.isnan(item) else "infinite"
        raise InputError(422, f"'{name}[{row_index}][{column}]' is {label}; values must be finite numbers 0-255")
    outside = (pixels < 0) | (pixels > 255)
    if outside.any():
        row_index, column = np.argwhere(outside)[0]
        raise InputError(422, f"'{name}[{row_index}][{column}]' is {value[row_index][column]}, outside 0-255")
    return np.rint(pixels).astype(np.uint8)


def batch_from_json(value: object) -> np.ndarray:
    """Validate a list of 1 to 256 arrays of 28x28 and return them as uint8 (N, 28, 28); more than 256 is a 413."""
    if not isinstance(value, list):
        raise InputError(422, f"'images' must be an array of 28x28 arrays, got {json_type(value)}")
    if not value:
        raise InputError(422, f"'images' is empty; send 1 to {MAX_BATCH} arrays of 28x28")
    if len(value) > MAX_BATCH:
        raise InputError(413, f"'images' contains {len(value)} arrays, over the batch limit of {MAX_BATCH}; split it into requests of at most {MAX_BATCH}")
    return np.stack([image_from_json(item, f"images[{index}]") for index, item in enumerate(value)])
