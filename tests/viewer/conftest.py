"""Fixtures of the viewer tests: the reconstructions of :mod:`_viewer_scenes`, as objects and as run folders."""

from __future__ import annotations

from pathlib import Path

import pytest
from _viewer_scenes import make_reconstruction

from vggtkit.pipeline import Reconstruction


@pytest.fixture
def rec() -> Reconstruction:
    """3 frames of 6 x 8 pixels (144 points)."""
    return make_reconstruction()


@pytest.fixture
def run_folder(tmp_path) -> Path:
    """A run's output folder: predictions.npz of :func:`make_reconstruction` and nothing else."""
    make_reconstruction().save_npz(tmp_path / "predictions.npz")
    return tmp_path


@pytest.fixture
def refined_folder(run_folder) -> Path:
    """``run_folder`` plus ``predictions_refined.npz`` with every camera moved 0.05 along x."""
    make_reconstruction(shift=0.05).save_npz(run_folder / "predictions_refined.npz")
    return run_folder


@pytest.fixture
def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
