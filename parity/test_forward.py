"""Same weights, same inputs: the two backends' float32 logits and gradients agree to rounding."""

import numpy as np

from parity import harness

FORWARD_EXAMPLES = 1000
LOGIT_TOLERANCE = 1e-6
GRADIENT_ABS_TOLERANCE = 1e-6
GRADIENT_REL_TOLERANCE = 1e-4


def test_forward_logits_agree(start_checkpoint):
    images = harness.load_data()["test_images"][:FORWARD_EXAMPLES]
    torch_logits = harness.torch_logits(start_checkpoint, images)
    jax_logits = harness.jax_logits(start_checkpoint, images)

    assert torch_logits.dtype == jax_logits.dtype == np.float32
    difference = np.abs(torch_logits - jax_logits)
    worst = np.unravel_index(difference.argmax(), difference.shape)
    assert difference.max() <= LOGIT_TOLERANCE, (
        f"max |logit difference| {difference.max():.3g} > {LOGIT_TOLERANCE:g} at image {worst[0]}, class {worst[1]}: "
        f"torch {torch_logits[worst]:.9g} vs jax {jax_logits[worst]:.9g}"
    )
    differing = np.flatnonzero(torch_logits.argmax(1) != jax_logits.argmax(1))
    assert len(differing) == 0, f"argmax differs on {len(differing)} of {FORWARD_EXAMPLES} images, first {differing[:10].tolist()}"


def test_gradients_agree(start_checkpoint):
    images, labels = harness.first_batch()
    torch_grads = harness.torch_gradients(start_checkpoint, images, labels)
    jax_grads = harness.jax_gradients(start_checkpoint, images, labels)

    assert set(torch_grads) == set(jax_grads)
    for key, torch_grad in torch_grads.items():
        difference = np.abs(torch_grad - jax_grads[key]).max()
        relative = difference / np.abs(torch_grad).max()
        # Each tensor passes on either bound: tiny gradients only meet the absolute one, large ones the relative one.
        assert difference <= GRADIENT_ABS_TOLERANCE or relative <= GRADIENT_REL_TOLERANCE, (
            f"{key}: max |grad difference| {difference:.3g} > {GRADIENT_ABS_TOLERANCE:g} "
            f"and relative {relative:.3g} > {GRADIENT_REL_TOLERANCE:g} (max |torch grad| {np.abs(torch_grad).max():.3g})"
        )
