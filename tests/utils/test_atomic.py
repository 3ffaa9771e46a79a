"""Atomic writes publish files and folders with ordinary permissions, and leave nothing behind on errors."""

from __future__ import annotations

import os
import stat

import pytest

from vggtkit.utils.atomic import atomic_dir, atomic_path


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_files_and_folders_get_the_umask_mode_not_the_temporary_one(tmp_path, umask_022):
    with atomic_path(tmp_path / "a.ply") as tmp:
        tmp.write_text("x")
    with atomic_dir(tmp_path / "sparse") as tmp:
        (tmp / "cameras.txt").write_text("x")
    assert stat.S_IMODE((tmp_path / "a.ply").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "sparse").stat().st_mode) == 0o755


def test_an_error_leaves_neither_target_nor_temporary(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "a.glb") as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "depth") as tmp:
        raise RuntimeError("writer failed")
    assert list(tmp_path.iterdir()) == []
