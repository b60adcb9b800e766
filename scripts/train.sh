#!/usr/bin/env bash
# The main job on a fresh machine: set up, then train the JAX model for one epoch on real MNIST.
# Extra arguments go to `python -m jax_impl.train` (see its --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m jax_impl.train "$@"
