"""The Flax port of `torch_ref.model`: the same layers and names, channels-last, with PyTorch's initialization."""

import jax
import jax.numpy as jnp
from flax import linen as nn
from jax import lax

NHWC_HWIO = lax.ConvDimensionNumbers(lhs_spec=(0, 3, 1, 2), rhs_spec=(3, 2, 0, 1), out_spec=(0, 3, 1, 2))


def torch_uniform(fan_in: int):
    """Return an initializer drawing from U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    PyTorch's default for Conv2d and Linear: weights by kaiming_uniform_(a=sqrt(5)) reduce to this
    bound, and biases use it directly.
    """
    bound = fan_in ** -0.5

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def matmul_conv(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None, dimension_numbers=None, feature_group_count=1, precision=None):
    """Compute `lax.conv_general_dilated` as one matrix product over stacked shifted views (im2col).

    Handles what this model uses (NHWC input, HWIO kernel, stride 1, valid padding, no dilation) and
    passes anything else to `lax.conv_general_dilated`. On the CPU, XLA's own convolution made a
    training step several times slower than this (jaxlib 0.10.2, batch 16, `python -m benchmarks.epoch`).
    """
    plain = (
        padding == "VALID"
        and tuple(window_strides) == (1, 1)
        and all(d == 1 for d in (lhs_dilation or (1, 1)) + (rhs_dilation or (1, 1)))
        and feature_group_count == 1
        and dimension_numbers == NHWC_HWIO
    )
    if not plain:
        return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers, feature_group_count, precision=precision)
    kernel_h, kernel_w, in_channels, out_channels = rhs.shape
    n, h, w, _ = lhs.shape
    out_h, out_w = h - kernel_h + 1, w - kernel_w + 1
    views = [lhs[:, i:i + out_h, j:j + out_w, :] for i in range(kernel_h) for j in range(kernel_w)]
    patches = jnp.stack(views, axis=3).reshape(n, out_h, out_w, kernel_h * kernel_w * in_channels)
    return jnp.matmul(patches, rhs.reshape(kernel_h * kernel_w * in_channels, out_channels), precision=precision)


def _pool_windows(x: jax.Array) -> jax.Array:
    """View (N, H, W, C) as (N, H // 2, 2, W // 2, 2, C). An odd last row or column is dropped, as in PyTorch."""
    n, h, w, c = x.shape
    return x[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c)


@jax.custom_vjp
def max_pool_2x2(x: jax.Array) -> jax.Array:
    """Max-pool 2x2 windows with stride 2, as PyTorch's `F.max_pool2d(x, 2)` does.

    The values are those of `nn.max_pool(x, (2, 2), strides=(2, 2))`. In the backward pass each
    window's gradient goes to the first of its largest values in row-major order, the element
    PyTorch records as the index. A plain `jnp.max` would split it among tied values. With
    `nn.max_pool`'s own select-and-scatter gradient a training step took 1.2 ms instead of
    0.9 ms on a 2-core CPU (jaxlib 0.10.2, batch 16, whole step under `lax.scan`).
    """
    return nn.max_pool(x, (2, 2), strides=(2, 2))


def _max_pool_2x2_fwd(x):
    # A max over the reshaped windows is faster than nn.max_pool's reduce_window at batch 16, and slower at batch 1,000.
    y = _pool_windows(x).max(axis=(2, 4))
    return y, (x, y)


def _max_pool_2x2_bwd(residuals, g):
    x, y = residuals
    windows = _pool_windows(x)
    is_max = windows == y[:, :, None, :, None, :]
    # Row-major order within a window: (0, 0), (0, 1), (1, 0), (1, 1).
    first = is_max[:, :, 0, :, 0]
    second = is_max[:, :, 0, :, 1] & ~first
    third = is_max[:, :, 1, :, 0] & ~(first | second)
    fourth = ~(first | second | third)
    # Four selects at g's shape, stacked afterwards, keep a training step at 0.86 ms.
    # One select broadcast over the 2x2 windows made it 1.05 ms.
    zero = jnp.zeros_like(g)
    top = jnp.stack([jnp.where(first, g, zero), jnp.where(second, g, zero)], axis=3)
    bottom = jnp.stack([jnp.where(third, g, zero), jnp.where(fourth, g, zero)], axis=3)
    n, h, w, c = x.shape
    dx = jnp.stack([top, bottom], axis=2).reshape(n, h // 2 * 2, w // 2 * 2, c)
    return (jnp.pad(dx, ((0, 0), (0, h % 2), (0, w % 2), (0, 0))),)


max_pool_2x2.defvjp(_max_pool_2x2_fwd, _max_pool_2x2_bwd)


def conv(features: int, in_channels: int, name: str) -> nn.Conv:
    fan_in = in_channels * 3 * 3
    return nn.Conv(
        features, (3, 3), padding="VALID", kernel_init=torch_uniform(fan_in), bias_init=torch_uniform(fan_in),
        conv_general_dilated=matmul_conv, name=name,
    )


def dense(features: int, in_features: int, name: str) -> nn.Dense:
    return nn.Dense(features, kernel_init=torch_uniform(in_features), bias_init=torch_uniform(in_features), name=name)


class Net(nn.Module):
    """MNIST CNN of 13,498 parameters: 28x28 -> 26 -> 13 -> 11 -> 5 -> 3, then 144 -> 64 -> 10."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Map normalized images (N, 28, 28, 1) to logits (N, 10)."""
        x = max_pool_2x2(nn.relu(conv(8, 1, "conv1")(x)))
        x = max_pool_2x2(nn.relu(conv(16, 8, "conv2")(x)))  # 11x11 -> 5x5, as in PyTorch
        x = nn.relu(conv(16, 16, "conv3")(x))
        x = x.reshape(x.shape[0], -1)  # channels-last: H, W, C (the weight conversion reorders fc1)
        x = nn.relu(dense(64, 144, "fc1")(x))
        return dense(10, 64, "fc2")(x)


def init_params(key: jax.Array, dtype=jnp.float32) -> dict:
    """Draw a fresh params pytree from `key`."""
    params = Net().init(key, jnp.zeros((1, 28, 28, 1), jnp.float32))["params"]
    return jax.tree_util.tree_map(lambda p: p.astype(dtype), params)


def layer_param_counts(params: dict) -> dict[str, int]:
    """Count parameters per layer, keyed by layer name ('conv1', ..., 'fc2')."""
    return {layer: sum(leaf.size for leaf in jax.tree_util.tree_leaves(tree)) for layer, tree in params.items()}
