from __future__ import annotations

import platform

import pytest

from vggtkit import heap


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is a glibc function")
def test_release_free_memory_trims_glibc_heaps():
    assert heap.release_free_memory() is True


def test_release_free_memory_is_a_no_op_without_malloc_trim(monkeypatch):
    monkeypatch.setattr(heap, "_libc", lambda: None)
    assert heap.release_free_memory() is False
