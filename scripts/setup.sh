#!/usr/bin/env bash
# Create .venv with everything the project and its tests need, then fetch and verify MNIST.
# Safe to rerun: each step skips what is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $("$python" --version)" >&2
  "$python" -m venv .venv
fi
# shellcheck disable=SC1091
source .venv/bin/activate

stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -e "$stamp" ]; then
  echo "setup: installing the project and its extras into .venv" >&2
  python -m pip install --quiet --upgrade pip
  python -m pip install --quiet -e ".[test,serve,tfds]"
  touch "$stamp"
fi

if [ -x .ci/install-browser.sh ] || [ -f .ci/install-browser.sh ]; then
  bash .ci/install-browser.sh
fi

python -m mnist_data fetch
