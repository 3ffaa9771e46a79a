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


@pytest.fixture(scope="session")
def device() -> torch.device:
    """Device of the model tests (golden parity, execution plans): $VGGTKIT_TEST_DEVICE, default cpu.

    On CUDA, TF32 is turned off for this test session: the golden fixture is float32 arithmetic.
    """
    dev = torch.device(os.environ.get("VGGTKIT_TEST_DEVICE", "cpu"))
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return dev


@pytest.fixture
def one_thread():
    """Small models run far faster on one thread than on two on a loaded 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
