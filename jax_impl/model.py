"""The Flax port of `torch_ref.model`: the same layers and names, channels-last, with PyTorch's initialization."""

import jax
import jax.numpy as jnp
from flax import linen as nn


def torch_uniform(fan_in: int):
    """Return an initializer drawing from U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    PyTorch's default for Conv2d and Linear: weights by kaiming_uniform_(a=sqrt(5)) reduce to this
    bound, and biases use it directly.
    """
    bound = fan_in ** -0.5

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def conv(features: int, in_channels: int, name: str) -> nn.Conv:
    fan_in = in_channels * 3 * 3
    return nn.Conv(features, (3, 3), padding="VALID", kernel_init=torch_uniform(fan_in), bias_init=torch_uniform(fan_in), name=name)


def dense(features: int, in_features: int, name: str) -> nn.Dense:
    return nn.Dense(features, kernel_init=torch_uniform(in_features), bias_init=torch_uniform(in_features), name=name)


class Net(nn.Module):
    """MNIST CNN of 13,498 parameters: 28x28 -> 26 -> 13 -> 11 -> 5 -> 3, then 144 -> 64 -> 10."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Map normalized images (N, 28, 28, 1) to logits (N, 10)."""
        x = nn.max_pool(nn.relu(conv(8, 1, "conv1")(x)), (2, 2), strides=(2, 2))
        x = nn.max_pool(nn.relu(conv(16, 8, "conv2")(x)), (2, 2), strides=(2, 2))  # 11x11 -> 5x5, as in PyTorch
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
