"""Response models of the API; FastAPI renders them into the OpenAPI schema shown at /docs."""

from pydantic import BaseModel, Field


class BackendPrediction(BaseModel):
    digit: int = Field(description="most probable digit, 0-9")
    probabilities: list[float] = Field(description="softmax of the ten logits, for digits 0 to 9")
    milliseconds: float = Field(description="time this backend took to compute the logits")


class Prediction(BaseModel):
    digit: int = Field(description="most probable digit according to the first backend in `backends`")
    probabilities: list[float] = Field(description="the first backend's ten probabilities, for digits 0 to 9")
    backends: list[str] = Field(description="backends that ran, in order: 'jax', 'torch' or both")
    results: dict[str, BackendPrediction] = Field(description="each backend's prediction, keyed by backend")
    agree: bool = Field(description="whether every backend predicts the same digit")
    milliseconds: float = Field(description="server time for the whole request: reading, preprocessing and inference")
    input: list[list[int]] | None = Field(None, description="the 28x28 image the model read, when the request asked for it with include_input=true")


class BackendBatchPrediction(BaseModel):
    digits: list[int]
    probabilities: list[list[float]]
    milliseconds: float


class BatchPrediction(BaseModel):
    digits: list[int] = Field(description="most probable digit of each image according to the first backend")
    probabilities: list[list[float]] = Field(description="the first backend's ten probabilities per image")
    backends: list[str]
    results: dict[str, BackendBatchPrediction]
    agree: bool = Field(description="whether every backend predicts the same digit for every image")
    milliseconds: float


class Health(BaseModel):
    status: str
    backends: list[str]
    checkpoint: str


class Layer(BaseModel):
    name: str
    kind: str = Field(description="'conv' (3x3, valid padding, ReLU, some followed by 2x2 max pooling) or 'dense'")
    shape: list[int] = Field(description="weight shape in PyTorch's layout: (out, in, kh, kw) or (out, in)")
    params: int


class ModelInfo(BaseModel):
    architecture: str
    layers: list[Layer]
    params: int
    test_accuracy: float | None = Field(description="test accuracy the checkpoint recorded after training, a fraction; null if it records none")
    checkpoint: dict = Field(description="path, sha256 and the metadata stored in the checkpoint")
    backends: list[dict] = Field(description="framework, device, dtype and per-layer parameter counts of each loaded backend")
    limits: dict = Field(description="largest upload in bytes, largest image side in pixels, largest batch")
