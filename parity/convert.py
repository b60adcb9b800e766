"""Weight conversion between a PyTorch state_dict and the Flax params pytree, as one table of rules.

| PyTorch key      | PyTorch shape  | Flax leaf      | Flax shape     | rule                                  |
|------------------|----------------|----------------|----------------|---------------------------------------|
| convN.weight     | (O, I, 3, 3)   | convN/kernel   | (3, 3, I, O)   | OIHW <-> HWIO                         |
| convN.bias       | (O,)           | convN/bias     | (O,)           | as is                                 |
| fc1.weight       | (64, 144)      | fc1/kernel     | (144, 64)      | transpose, inputs C*H*W <-> H*W*C     |
| fc2.weight       | (10, 64)       | fc2/kernel     | (64, 10)       | transpose                             |
| fcN.bias         | (O,)           | fcN/bias       | (O,)           | as is                                 |

Every result is a fresh copy: it never shares memory with its source, so an optimizer updating the
source in place cannot change it.
"""

from collections.abc import Callable, Mapping

import numpy as np

# The feature map that fc1 reads: 16 channels of 3x3.
FC1_CHANNELS, FC1_HEIGHT, FC1_WIDTH = 16, 3, 3


def _conv_to_flax(weight: np.ndarray) -> np.ndarray:
    return weight.transpose(2, 3, 1, 0)


def _conv_to_torch(kernel: np.ndarray) -> np.ndarray:
    return kernel.transpose(3, 2, 0, 1)


def _fc1_to_flax(weight: np.ndarray) -> np.ndarray:
    out_features = weight.shape[0]
    chw = weight.reshape(out_features, FC1_CHANNELS, FC1_HEIGHT, FC1_WIDTH)
    return chw.transpose(2, 3, 1, 0).reshape(-1, out_features)


def _fc1_to_torch(kernel: np.ndarray) -> np.ndarray:
    out_features = kernel.shape[1]
    hwc = kernel.reshape(FC1_HEIGHT, FC1_WIDTH, FC1_CHANNELS, out_features)
    return hwc.transpose(3, 2, 0, 1).reshape(out_features, -1)


def _dense_to_flax(weight: np.ndarray) -> np.ndarray:
    return weight.T


def _dense_to_torch(kernel: np.ndarray) -> np.ndarray:
    return kernel.T


def _same(array: np.ndarray) -> np.ndarray:
    return array


# PyTorch key -> (Flax layer, Flax leaf, PyTorch shape, to Flax, to PyTorch).
RULES: dict[str, tuple[str, str, tuple[int, ...], Callable, Callable]] = {
    "conv1.weight": ("conv1", "kernel", (8, 1, 3, 3), _conv_to_flax, _conv_to_torch),
    "conv1.bias": ("conv1", "bias", (8,), _same, _same),
    "conv2.weight": ("conv2", "kernel", (16, 8, 3, 3), _conv_to_flax, _conv_to_torch),
    "conv2.bias": ("conv2", "bias", (16,), _same, _same),
    "conv3.weight": ("conv3", "kernel", (16, 16, 3, 3), _conv_to_flax, _conv_to_torch),
    "conv3.bias": ("conv3", "bias", (16,), _same, _same),
    "fc1.weight": ("fc1", "kernel", (64, 144), _fc1_to_flax, _fc1_to_torch),
    "fc1.bias": ("fc1", "bias", (64,), _same, _same),
    "fc2.weight": ("fc2", "kernel", (10, 64), _dense_to_flax, _dense_to_torch),
    "fc2.bias": ("fc2", "bias", (10,), _same, _same),
}

TORCH_SHAPES = {key: rule[2] for key, rule in RULES.items()}
FLAX_SHAPES = {f"{layer}/{leaf}": to_flax(np.empty(shape)).shape for layer, leaf, shape, to_flax, _ in RULES.values()}


class ConversionError(ValueError):
    """A state_dict or params pytree whose keys or shapes do not match the model."""


def _as_numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch.Tensor; torch itself is not imported here
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _check(arrays: Mapping[str, np.ndarray], expected: Mapping[str, tuple[int, ...]], side: str) -> None:
    missing = [key for key in expected if key not in arrays]
    extra = [key for key in arrays if key not in expected]
    if missing:
        key = missing[0]
        raise ConversionError(f"{side} key {key!r} is missing: expected shape {tuple(expected[key])}, got none; missing keys: {missing}")
    if extra:
        key = extra[0]
        raise ConversionError(f"{side} key {key!r} has shape {tuple(arrays[key].shape)}, but the model has no such key (expected shape none); unexpected keys: {extra}")
    for key, shape in expected.items():
        if tuple(arrays[key].shape) != tuple(shape):
            raise ConversionError(f"{side} key {key!r} has shape {tuple(arrays[key].shape)}, expected {tuple(shape)}")


def check_state_dict(state_dict: Mapping) -> None:
    """Raise ConversionError unless `state_dict` has exactly the model's PyTorch keys and shapes."""
    _check({key: _as_numpy(value) for key, value in state_dict.items()}, TORCH_SHAPES, "PyTorch")


def torch_to_flax(state_dict: Mapping) -> dict[str, dict[str, np.ndarray]]:
    """Convert a PyTorch state_dict (tensors or arrays) into a Flax params pytree of numpy copies."""
    arrays = {key: _as_numpy(value) for key, value in state_dict.items()}
    _check(arrays, TORCH_SHAPES, "PyTorch")
    params: dict[str, dict[str, np.ndarray]] = {}
    for key, (layer, leaf, _, to_flax, _) in RULES.items():
        params.setdefault(layer, {})[leaf] = np.array(to_flax(arrays[key]), copy=True, order="C")
    return params


def flax_to_torch(params: Mapping) -> dict[str, np.ndarray]:
    """Convert a Flax params pytree into a PyTorch-layout dict of numpy copies (PyTorch key names)."""
    if set(params) == {"params"}:
        raise ConversionError("Flax params have the single key 'params': pass variables['params'], not the whole variables dict")
    flat = {}
    for layer, leaves in params.items():
        if not isinstance(leaves, Mapping):
            raise ConversionError(f"Flax key {layer!r} is a {type(leaves).__name__}, expected a dict of 'kernel' and 'bias' arrays")
        flat.update({f"{layer}/{leaf}": _as_numpy(value) for leaf, value in leaves.items()})
    _check(flat, FLAX_SHAPES, "Flax")
    state = {}
    for key, (layer, leaf, _, _, to_torch) in RULES.items():
        state[key] = np.array(to_torch(flat[f"{layer}/{leaf}"]), copy=True, order="C")
    return state
