"""Shared test set-up: importable helpers in tests/, offline hub, tiny models."""

import os
import pathlib
import sys

# Helper modules in tests/ (e.g. `_golden`) are importable from test files in sub-folders.
sys.path.insert(0, str(pathlib.Path(__file__).parent))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from _golden import golden_model  # noqa: E402


@pytest.fixture(scope="session")
def golden_vggt():
    """The golden tiny model with the official random weights, in eval mode."""
    return golden_model()


@pytest.fixture
def device() -> torch.device:
    """Device under test: $VGGTKIT_TEST_DEVICE, default cpu."""
    return torch.device(os.environ.get("VGGTKIT_TEST_DEVICE", "cpu"))


@pytest.fixture
def one_thread():
    """Small models run far faster on one thread than on two on a loaded 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
