"""Fixtures of the VGGT-Omega tests: the golden tiny model, loaded once."""

import pytest
from _omega_golden import omega_golden_model


@pytest.fixture(scope="session")
def omega_model():
    """The golden tiny VGGT-Omega with the official random weights, in eval mode."""
    return omega_golden_model()


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Tiny models run far faster on one thread than on two on a loaded 2-core machine."""
