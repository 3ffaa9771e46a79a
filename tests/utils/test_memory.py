from __future__ import annotations

import platform
import time

import numpy as np
import pytest
import torch

from vggtkit.utils import memory
from vggtkit.utils.dtypes import parse_dtype


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is a glibc function")
def test_release_free_memory_trims_glibc_heaps():
    assert memory.release_free_memory() is True


def test_release_free_memory_is_a_no_op_without_malloc_trim(monkeypatch):
    monkeypatch.setattr(memory, "_libc", lambda: None)
    assert memory.release_free_memory() is False


def test_parse_and_format_memory():
    assert memory.parse_memory("8GB") == 8_000_000_000
    assert memory.parse_memory("1.5 GiB") == int(1.5 * 2**30)
    assert memory.parse_memory(1024) == 1024
    for bad in ("lots", "-1GB", 0, True):
        with pytest.raises(ValueError):
            memory.parse_memory(bad, "max_memory")
    assert memory.format_bytes(1.234e9) == "1.23 GB"
    assert memory.format_bytes(45.6e6) == "45.60 MB"
    assert memory.format_bytes(1.231e9, up=True) == "1.24 GB"


def test_peak_memory_sees_a_large_temporary_allocation():
    with memory.PeakMemory("cpu") as meter:
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
        del block
    assert meter.peak_bytes - meter.start_bytes >= 48 * 2**20


def test_peak_memory_sampling_fallback(monkeypatch):
    monkeypatch.setattr(memory, "_reset_high_water_mark", lambda: False)
    monkeypatch.setattr(memory, "_high_water_mark", lambda: 0)
    with memory.PeakMemory("cpu", interval=0.001) as meter:
        block = np.ones(64 * 2**20 // 8)

        time.sleep(0.05)
        del block
    assert meter.peak_bytes - meter.start_bytes >= 48 * 2**20


def test_parse_dtype_names():
    assert parse_dtype("bf16") is torch.bfloat16
    assert parse_dtype(torch.float16) is torch.float16
    with pytest.raises(ValueError, match="float32, bfloat16, float16"):
        parse_dtype("int8")
    with pytest.raises(ValueError):
        parse_dtype(torch.float64)


def test_shared_measurement_never_resets_the_process_peak(monkeypatch):
    resets = []
    monkeypatch.setattr(memory, "_reset_high_water_mark", lambda: resets.append(1) or True)
    with memory.PeakMemory("cpu", interval=0.001, shared=True) as meter:
        block = np.ones(64 * 2**20 // 8)
        time.sleep(0.05)
        del block
    assert not resets and meter.peak_bytes - meter.start_bytes >= 48 * 2**20
