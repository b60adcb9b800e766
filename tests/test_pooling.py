"""`jax_impl.model.max_pool_2x2` against PyTorch's `F.max_pool2d(x, 2)`: values and gradients, ties and odd sizes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from flax import linen as nn

from jax_impl.model import max_pool_2x2

# (N, H, W, C): the model's two pooled maps, and odd or uneven ones.
SHAPES = [(2, 26, 26, 8), (2, 11, 11, 16), (3, 5, 8, 2), (1, 7, 3, 1)]


def torch_pool(x: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return PyTorch's pooled values and input gradient, both channels-last."""
    x_t = torch.from_numpy(x).permute(0, 3, 1, 2).requires_grad_()
    y_t = F.max_pool2d(x_t, 2)
    y_t.backward(torch.from_numpy(g).permute(0, 3, 1, 2))
    return y_t.detach().permute(0, 2, 3, 1).numpy(), x_t.grad.permute(0, 2, 3, 1).numpy()


def flax_pool(x: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, vjp = jax.vjp(max_pool_2x2, jnp.asarray(x))
    (dx,) = vjp(jnp.asarray(g))
    return np.asarray(y), np.asarray(dx)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("values", ["ties", "distinct"])
def test_max_pool_matches_torch(shape, values):
    rng = np.random.default_rng(sum(shape))
    if values == "ties":  # few distinct values: most windows hold a tie, as ReLU zeros do in the model
        x = rng.integers(0, 3, size=shape).astype(np.float32)
    else:
        x = rng.standard_normal(shape).astype(np.float32)
    n, h, w, c = shape
    g = rng.standard_normal((n, h // 2, w // 2, c)).astype(np.float32)
    y_torch, dx_torch = torch_pool(x, g)
    y_flax, dx_flax = flax_pool(x, g)
    np.testing.assert_array_equal(y_flax, y_torch)
    np.testing.assert_array_equal(dx_flax, dx_torch)  # exact: pooling only moves values


def test_max_pool_values_same_with_and_without_gradient():
    # Called plainly the op runs nn.max_pool; under jax.vjp it runs its own forward rule.
    x = jnp.asarray(np.random.default_rng(0).standard_normal((4, 11, 11, 3)).astype(np.float32))
    expected = nn.max_pool(x, (2, 2), strides=(2, 2))
    values, _ = jax.vjp(max_pool_2x2, x)
    np.testing.assert_array_equal(np.asarray(max_pool_2x2(x)), np.asarray(expected))
    np.testing.assert_array_equal(np.asarray(values), np.asarray(expected))


def test_tied_window_gradient_goes_to_one_element():
    # A plain jnp.max would give each of the four tied elements a quarter of the gradient.
    x = jnp.ones((1, 2, 2, 1))
    dx = jax.grad(lambda x: max_pool_2x2(x).sum())(x)
    np.testing.assert_array_equal(np.asarray(dx)[0, :, :, 0], [[1.0, 0.0], [0.0, 0.0]])
