"""Known porting pitfalls: each wrong variant, built here, fails the forward check (float32 logits) or the float64 step-for-step check that the product passes.

The forward checks compare against PyTorch's logits of 1,000 test images at the starting weights,
the training checks against PyTorch's first 200 float64 steps of the default recipe, which the product
matches (`test_training.py`). SAME padding and ceil-mode pooling change the size of the map that fc1
reads, so for them the forward check fails with a shape error before any logits exist.
"""

import functools

import flax
import jax
import numpy as np
import optax
import pytest
from flax import linen as nn

from jax_impl import train as jax_train
from jax_impl.model import Net
from mnist_common import run
from mnist_common.checkpoint import load_checkpoint
from mnist_common.config import Config, learning_rate
from parity import harness
from parity.convert import torch_to_flax

FORWARD_EXAMPLES = 1000
LOGIT_TOLERANCE = 1e-6
FLOAT64_TOLERANCE = harness.FLOAT64_TOLERANCE  # 1e-10


class PortedNet(nn.Module):
    """The Flax port written out with switchable paddings; with the defaults it computes what `jax_impl.model.Net` does."""

    conv_padding: str = "VALID"
    pool_padding: str = "VALID"

    @nn.compact
    def __call__(self, x):
        x = nn.max_pool(nn.relu(nn.Conv(8, (3, 3), padding=self.conv_padding, name="conv1")(x)), (2, 2), strides=(2, 2))
        x = nn.relu(nn.Conv(16, (3, 3), padding=self.conv_padding, name="conv2")(x))
        x = nn.max_pool(x, (2, 2), strides=(2, 2), padding=self.pool_padding)
        x = nn.relu(nn.Conv(16, (3, 3), padding=self.conv_padding, name="conv3")(x))
        x = x.reshape(x.shape[0], -1)
        x = nn.relu(nn.Dense(64, name="fc1")(x))
        return nn.Dense(10, name="fc2")(x)


@pytest.fixture(scope="module")
def forward_case(start_checkpoint):
    """Return (PyTorch state_dict as numpy, the test images, PyTorch's float32 logits of them)."""
    state_dict, _ = load_checkpoint(start_checkpoint)
    images = harness.load_data()["test_images"][:FORWARD_EXAMPLES]
    return state_dict, images, harness.torch_logits(start_checkpoint, images)


def flax_logits(module: nn.Module, params: dict, images: np.ndarray) -> np.ndarray:
    with jax.enable_x64(False):
        table = run.normalization_table(Config()).astype(np.float32)
        return np.asarray(module.apply({"params": params}, table[images][..., None]))


def max_logit_difference(torch_logits: np.ndarray, logits: np.ndarray) -> float:
    return float(np.abs(torch_logits - logits).max())


def test_flatten_order(forward_case):
    state_dict, images, torch_logits = forward_case
    params = torch_to_flax(state_dict)
    assert max_logit_difference(torch_logits, flax_logits(Net(), params, images)) <= LOGIT_TOLERANCE

    # Wrong: fc1 transposed like any dense layer, as if Flax flattened C, H, W as PyTorch does (it flattens H, W, C).
    params["fc1"]["kernel"] = state_dict["fc1.weight"].T
    difference = max_logit_difference(torch_logits, flax_logits(Net(), params, images))
    assert difference > LOGIT_TOLERANCE, f"fc1 without the C,H,W -> H,W,C reorder still matches: max |logit difference| {difference:.3g}"


def test_kernel_transpose(forward_case):
    state_dict, images, torch_logits = forward_case
    params = torch_to_flax(state_dict)
    assert max_logit_difference(torch_logits, flax_logits(Net(), params, images)) <= LOGIT_TOLERANCE

    # Wrong: `.T` reverses all four axes, OIHW -> WHIO, so every 3x3 kernel is mirrored across its diagonal.
    for layer in ("conv1", "conv2", "conv3"):
        params[layer]["kernel"] = state_dict[f"{layer}.weight"].T
    difference = max_logit_difference(torch_logits, flax_logits(Net(), params, images))
    assert difference > LOGIT_TOLERANCE, f"conv kernels in W,H,I,O order still match: max |logit difference| {difference:.3g}"


def test_ported_net_matches_with_valid_padding(forward_case):
    state_dict, images, torch_logits = forward_case
    difference = max_logit_difference(torch_logits, flax_logits(PortedNet(), torch_to_flax(state_dict), images))
    assert difference <= LOGIT_TOLERANCE, f"max |logit difference| {difference:.3g} > {LOGIT_TOLERANCE:g}"


def test_same_padding(forward_case):
    state_dict, images, _ = forward_case
    # Wrong: nn.Conv pads 'SAME' by default. The maps stay 28, 14 and 7 wide, so fc1 would read
    # 7*7*16 = 784 features; PyTorch's weights cannot even be applied, which fails the forward check.
    with pytest.raises(flax.errors.ScopeParamShapeError, match=r"/fc1.*\(784, 64\).*\(144, 64\)"):
        flax_logits(PortedNet(conv_padding="SAME"), torch_to_flax(state_dict), images)


def test_pool_ceil_mode(forward_case):
    state_dict, images, _ = forward_case
    # Wrong: padding the odd 11x11 map so pooling keeps its last row and column (PyTorch's ceil_mode=True)
    # gives 6x6, then conv3 gives 4x4 and fc1 would read 256 features instead of 144.
    with pytest.raises(flax.errors.ScopeParamShapeError, match=r"/fc1.*\(256, 64\).*\(144, 64\)"):
        flax_logits(PortedNet(pool_padding="SAME"), torch_to_flax(state_dict), images)


def decaying_rate(config: Config, total_steps: int, offset: int = 0):
    """Return the product's schedule (a float64 rate in a float64 run), optionally `offset` steps ahead."""
    return lambda count: learning_rate(count.astype(float) + offset, total_steps, config.lr)


def rebuilt_adam(config: Config, total_steps: int) -> optax.GradientTransformation:
    """The product's optimizer written out as the wrong variants below are, to show they differ in one thing only."""
    return optax.adam(decaying_rate(config, total_steps), config.adam_b1, config.adam_b2, eps=config.adam_eps)


def adam_eps_inside_sqrt(config: Config, total_steps: int) -> optax.GradientTransformation:
    """Adam dividing by sqrt(v + eps) instead of sqrt(v) + eps."""
    return optax.adam(decaying_rate(config, total_steps), config.adam_b1, config.adam_b2, eps=0.0, eps_root=config.adam_eps)


def summed_loss(config: Config, total_steps: int) -> optax.GradientTransformation:
    """The product's Adam fed the gradients of the summed loss instead of the mean.

    The gradient of the sum is batch_size times the gradient of the mean, and scaling by 16 is exact
    in binary, so this trains bit for bit as a summed loss would while the logged loss stays the mean.
    """
    return optax.chain(optax.scale(config.batch_size), jax_train.create_optimizer(config, total_steps))


def schedule_one_step_ahead(config: Config, total_steps: int) -> optax.GradientTransformation:
    """Adam whose step k uses the rate of step k + 1, as a schedule counting from 1 would."""
    return optax.adam(decaying_rate(config, total_steps, offset=1), config.adam_b1, config.adam_b2, eps=config.adam_eps)


def rate_in_float32(config: Config, total_steps: int) -> optax.GradientTransformation:
    """Adam whose rate is computed from optax's int32 step count as is: int32 / int gives float32 even under jax_enable_x64."""
    schedule = functools.partial(learning_rate, total_steps=total_steps, peak_lr=config.lr)
    return optax.adam(schedule, config.adam_b1, config.adam_b2, eps=config.adam_eps)


def float64_loss_difference(float64_runs, start_checkpoint, create_optimizer) -> np.ndarray:
    """Return |PyTorch loss - JAX loss| per step over the float64 comparison, JAX using `create_optimizer`."""
    run = harness.train_jax(start_checkpoint, "float64", max_steps=harness.FLOAT64_STEPS, evaluate_test=False, create_optimizer=create_optimizer)
    return np.abs(float64_runs["torch_ref"].step_loss - run.step_loss)


def test_rebuilt_adam_matches(float64_runs, start_checkpoint):
    difference = float64_loss_difference(float64_runs, start_checkpoint, rebuilt_adam)
    assert difference.max() <= FLOAT64_TOLERANCE, f"max |loss difference| {difference.max():.3g} > {FLOAT64_TOLERANCE:g}"


@pytest.mark.parametrize("create_optimizer", [adam_eps_inside_sqrt, summed_loss, schedule_one_step_ahead, rate_in_float32], ids=lambda f: f.__name__)
def test_training_pitfall(create_optimizer, float64_runs, start_checkpoint):
    difference = float64_loss_difference(float64_runs, start_checkpoint, create_optimizer)
    assert difference.max() > FLOAT64_TOLERANCE, (
        f"{create_optimizer.__name__} still matches PyTorch over {harness.FLOAT64_STEPS} float64 steps: max |loss difference| {difference.max():.3g}"
    )
