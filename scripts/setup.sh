#!/usr/bin/env bash
# Creates .venv with the CPU torch wheel first, then everything else constrained to it
# (an unconstrained resolve would pull a CUDA torch and gigabytes of CUDA packages).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
export PIP_DISABLE_PIP_VERSION_CHECK=1
.venv/bin/python -m pip install -q "torch==${TORCH_VERSION}"
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
.venv/bin/python -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > "$constraints"
.venv/bin/python -m pip install -q -c "$constraints" -e ".[dev]"
