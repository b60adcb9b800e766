"""Both models: output shapes, per-layer parameter counts and PyTorch-style initialization."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jax_impl.model import init_params, layer_param_counts as flax_counts
from torch_ref.model import Net, layer_param_counts as torch_counts

EXPECTED_COUNTS = {"conv1": 80, "conv2": 1168, "conv3": 2320, "fc1": 9280, "fc2": 650}
FAN_IN = {"conv1": 9, "conv2": 72, "conv3": 144, "fc1": 144, "fc2": 64}


def test_torch_logits_shape():
    logits = Net()(torch.zeros(5, 1, 28, 28))
    assert tuple(logits.shape) == (5, 10)


def test_flax_logits_shape():
    from jax_impl.model import Net as FlaxNet

    params = init_params(jax.random.key(0))
    logits = FlaxNet().apply({"params": params}, jnp.zeros((5, 28, 28, 1)))
    assert logits.shape == (5, 10)


def test_torch_layer_counts():
    counts = torch_counts(Net())
    assert counts == EXPECTED_COUNTS
    assert sum(counts.values()) == 13498


def test_flax_layer_counts():
    counts = flax_counts(init_params(jax.random.key(0)))
    assert counts == EXPECTED_COUNTS
    assert sum(counts.values()) == 13498


@pytest.mark.parametrize("layer", sorted(FAN_IN))
def test_flax_init_matches_torch_bounds(layer):
    """Every Flax weight and bias lies in PyTorch's U(-1/sqrt(fan_in), 1/sqrt(fan_in)) and fills it."""
    bound = FAN_IN[layer] ** -0.5
    draws = {"kernel": [], "bias": []}
    for seed in range(20):
        params = init_params(jax.random.key(seed))
        for leaf in draws:
            draws[leaf].append(np.asarray(params[layer][leaf]).ravel())
    for leaf, values in draws.items():
        values = np.concatenate(values)
        assert values.min() >= -bound, f"{layer}/{leaf} min {values.min():.4f} below -{bound:.4f}"
        assert values.max() <= bound, f"{layer}/{leaf} max {values.max():.4f} above {bound:.4f}"
        # A uniform sample spans close to its bounds; the std of U(-b, b) is b/sqrt(3). 20% slack for the
        # smallest sample (conv1 bias: 160 draws).
        assert values.max() > 0.9 * bound, f"{layer}/{leaf} max {values.max():.4f} does not reach 0.9 × {bound:.4f}"
        assert values.min() < -0.9 * bound, f"{layer}/{leaf} min {values.min():.4f} does not reach -0.9 × {bound:.4f}"
        assert abs(values.std() - bound / np.sqrt(3)) < 0.2 * bound / np.sqrt(3), f"{layer}/{leaf} std {values.std():.4f}"


def test_torch_and_flax_init_statistics_agree():
    """Independent draws of both backends have the same per-layer weight spread (to 5%)."""
    torch_std, flax_std = {}, {}
    for seed in range(10):
        torch.manual_seed(seed)
        model = Net()
        params = init_params(jax.random.key(seed))
        for layer in EXPECTED_COUNTS:
            torch_std.setdefault(layer, []).append(getattr(model, layer).weight.detach().numpy().ravel())
            flax_std.setdefault(layer, []).append(np.asarray(params[layer]["kernel"]).ravel())
    for layer in EXPECTED_COUNTS:
        a, b = np.concatenate(torch_std[layer]).std(), np.concatenate(flax_std[layer]).std()
        assert abs(a - b) / a < 0.05, f"{layer}: torch std {a:.5f} vs flax std {b:.5f}"
