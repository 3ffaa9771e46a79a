# Quick start: `make run` (set up + main job), `make test` (set up + test suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test lint bench clean gpu-check

$(STAMP): pyproject.toml scripts/setup.sh
	PYTHON=$(PYTHON) bash scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/vggtkit quickstart $(ARGS)

test: $(STAMP)
	HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False MPLBACKEND=Agg $(PY) -m pytest -q -p no:cacheprovider tests

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/forward.py --config tiny --frames 1 4

clean:
	rm -rf $(VENV)

# On a CUDA machine: model tests and golden fixtures on the GPU, drift, VGGT-1B bf16 at 1-200 frames, the
# largest frame count in one pass (results in benchmarks/results/gpu).
gpu-check: $(STAMP)
	$(PY) benchmarks/gpu_check.py --out benchmarks/results/gpu
