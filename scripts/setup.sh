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
.venv/bin/python -c "import torch; print('torch==' + torch.__version__.split('+')[0])" 2>/dev/null > "$constraints"
.venv/bin/python -m pip install -q -c "$constraints" -e ".[dev]"

# Debian's chromium for the web demo's browser tests (tests/app/test_browser.py, driven by Playwright).
# Never fails the set-up: without it those tests are skipped.
if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup.sh: installing chromium with apt-get (about 30 s)"
        if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; then
            echo "setup.sh: warning: apt-get could not install chromium; the browser tests will be skipped" >&2
        fi
    else
        echo "setup.sh: warning: /usr/bin/chromium is missing and apt-get is unavailable (or this is not root);" \
            "install Debian's chromium package to run the browser tests" >&2
    fi
fi
