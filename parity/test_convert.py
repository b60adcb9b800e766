"""Weight conversion: bitwise round trips, no memory shared with the source, and errors naming the key and both shapes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jax_impl.model import init_params
from parity.convert import FLAX_SHAPES, RULES, TORCH_SHAPES, ConversionError, check_state_dict, flax_to_torch, torch_to_flax
from torch_ref.model import Net


def torch_state_dict(seed: int = 0, dtype=torch.float32) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return Net().to(dtype).state_dict()


def assert_bitwise_equal(a: np.ndarray, b: np.ndarray, key: str) -> None:
    assert a.dtype == b.dtype, f"{key}: {a.dtype} vs {b.dtype}"
    assert a.shape == b.shape, f"{key}: {a.shape} vs {b.shape}"
    assert a.tobytes() == b.tobytes(), f"{key}: max |difference| {np.abs(a.astype(np.float64) - b).max():.3g}"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_torch_flax_torch_bitwise(dtype):
    state_dict = torch_state_dict(dtype=dtype)
    back = flax_to_torch(torch_to_flax(state_dict))

    assert set(back) == set(state_dict)
    for key, tensor in state_dict.items():
        assert_bitwise_equal(back[key], tensor.numpy(), key)


def test_flax_torch_flax_bitwise():
    params = init_params(jax.random.key(0))
    back = torch_to_flax(flax_to_torch(params))

    assert set(back) == set(params)
    for layer, leaves in params.items():
        for leaf, value in leaves.items():
            assert_bitwise_equal(back[layer][leaf], np.asarray(value), f"{layer}/{leaf}")


def test_torch_to_flax_copies():
    model = Net()
    params = torch_to_flax(model.state_dict())
    # jnp.asarray may alias a numpy array on the CPU; aliasing a copy is harmless, aliasing the torch tensor is not.
    jax_params = jax.tree_util.tree_map(jnp.asarray, params)
    before = jax.tree_util.tree_map(np.array, params)

    model(torch.randn(4, 1, 28, 28)).square().sum().backward()
    torch.optim.Adam(model.parameters(), lr=0.1).step()  # updates the tensors of the state_dict in place

    assert not torch.equal(model.fc1.bias, torch.from_numpy(before["fc1"]["bias"])), "the optimizer step changed nothing"
    for layer, leaves in before.items():
        for leaf, value in leaves.items():
            assert_bitwise_equal(params[layer][leaf], value, f"numpy {layer}/{leaf}")
            assert_bitwise_equal(np.asarray(jax_params[layer][leaf]), value, f"jax {layer}/{leaf}")


def test_flax_to_torch_copies():
    params = jax.tree_util.tree_map(np.array, init_params(jax.random.key(0)))
    state_dict = flax_to_torch(params)
    before = {key: value.copy() for key, value in state_dict.items()}

    for leaves in params.values():
        for value in leaves.values():
            value += 1.0

    for key, value in state_dict.items():
        assert_bitwise_equal(value, before[key], key)


def test_converted_arrays_share_no_memory():
    state_dict = {key: value.numpy() for key, value in torch_state_dict().items()}
    params = torch_to_flax(state_dict)
    back = flax_to_torch(params)

    for key, (layer, leaf, *_) in RULES.items():
        assert not np.shares_memory(params[layer][leaf], state_dict[key]), f"{layer}/{leaf} shares memory with {key}"
        assert not np.shares_memory(back[key], params[layer][leaf]), f"{key} shares memory with {layer}/{leaf}"


def test_fc1_rule_matches_flatten_orders():
    torch.manual_seed(0)
    features = torch.randn(2, 16, 3, 3, dtype=torch.float64)  # N, C, H, W: what conv3 feeds fc1
    weight = torch.randn(64, 144, dtype=torch.float64)
    state_dict = {key: torch.zeros(shape, dtype=torch.float64) for key, shape in TORCH_SHAPES.items()} | {"fc1.weight": weight}
    kernel = torch_to_flax(state_dict)["fc1"]["kernel"]

    torch_out = (torch.flatten(features, 1) @ weight.T).numpy()
    flax_out = features.permute(0, 2, 3, 1).reshape(2, -1).numpy() @ kernel  # Flax flattens N, H, W, C
    np.testing.assert_allclose(flax_out, torch_out, rtol=1e-12, atol=1e-12)  # float64 summation order only


def test_conv_rule_matches_convolution():
    torch.manual_seed(0)
    images = torch.randn(2, 8, 7, 7, dtype=torch.float64)
    weight = torch.randn(16, 8, 3, 3, dtype=torch.float64)
    state_dict = {key: torch.zeros(shape, dtype=torch.float64) for key, shape in TORCH_SHAPES.items()} | {"conv2.weight": weight}
    kernel = torch_to_flax(state_dict)["conv2"]["kernel"]

    torch_out = torch.nn.functional.conv2d(images, weight).permute(0, 2, 3, 1).numpy()
    with jax.enable_x64(True):
        flax_out = jax.lax.conv_general_dilated(
            images.permute(0, 2, 3, 1).numpy(), kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        np.testing.assert_allclose(np.asarray(flax_out), torch_out, rtol=1e-12, atol=1e-12)  # float64 summation order only


@pytest.mark.parametrize("side", ["torch", "flax"])
def test_missing_key(side):
    if side == "torch":
        state_dict = torch_state_dict()
        del state_dict["conv2.bias"]
        with pytest.raises(ConversionError, match=r"PyTorch key 'conv2.bias' is missing: expected shape \(16,\), got none"):
            torch_to_flax(state_dict)
    else:
        params = init_params(jax.random.key(0))
        del params["conv2"]["bias"]
        with pytest.raises(ConversionError, match=r"Flax key 'conv2/bias' is missing: expected shape \(16,\), got none"):
            flax_to_torch(params)


@pytest.mark.parametrize("side", ["torch", "flax"])
def test_extra_key(side):
    if side == "torch":
        state_dict = torch_state_dict() | {"fc3.weight": torch.zeros(10, 10)}
        with pytest.raises(ConversionError, match=r"PyTorch key 'fc3.weight' has shape \(10, 10\), but the model has no such key"):
            torch_to_flax(state_dict)
    else:
        params = init_params(jax.random.key(0)) | {"fc3": {"kernel": np.zeros((10, 10))}}
        with pytest.raises(ConversionError, match=r"Flax key 'fc3/kernel' has shape \(10, 10\), but the model has no such key"):
            flax_to_torch(params)


@pytest.mark.parametrize("side", ["torch", "flax"])
def test_misshapen_key(side):
    if side == "torch":
        state_dict = torch_state_dict() | {"fc1.weight": torch.zeros(64, 256)}
        with pytest.raises(ConversionError, match=r"PyTorch key 'fc1.weight' has shape \(64, 256\), expected \(64, 144\)"):
            torch_to_flax(state_dict)
    else:
        params = init_params(jax.random.key(0))
        params["fc2"]["kernel"] = np.zeros((10, 64))  # PyTorch's layout, not transposed
        with pytest.raises(ConversionError, match=r"Flax key 'fc2/kernel' has shape \(10, 64\), expected \(64, 10\)"):
            flax_to_torch(params)


def test_check_state_dict_names_key():
    state_dict = torch_state_dict() | {"conv1.weight": torch.zeros(8, 3, 3, 3)}
    with pytest.raises(ConversionError, match=r"'conv1.weight' has shape \(8, 3, 3, 3\), expected \(8, 1, 3, 3\)"):
        check_state_dict(state_dict)


def test_whole_variables_dict_rejected():
    variables = {"params": init_params(jax.random.key(0))}
    with pytest.raises(ConversionError, match=r"pass variables\['params'\]"):
        flax_to_torch(variables)


def test_flax_shapes_table():
    assert FLAX_SHAPES == {
        f"{layer}/{leaf}": tuple(np.shape(value)) for layer, leaves in init_params(jax.random.key(0)).items() for leaf, value in leaves.items()
    }
