"""The MNIST CNN ported to JAX/Flax: Linen modules, an explicit params pytree and jitted steps."""
