"""Memory of this process: sizes in bytes, peak measurement, and giving freed heap pages back to the system.

glibc's malloc serves blocks below its mmap threshold from heaps that it only shrinks from the top, and it raises
that threshold to the largest block freed so far (up to 32 MiB). Once the first large tensors are freed, later
tensors of up to 32 MiB come from those heaps, and the holes they leave when freed stay resident.
:func:`release_free_memory` (``malloc_trim(0)``) returns the free pages of every heap to the system without
changing any process-wide setting; the lean inference plans call it where their peaks are.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math
import os
import re
import resource
import sys
import threading
from typing import Any

import torch

_MEMORY_UNITS = {
    "": 1,
    "b": 1,
    "k": 1e3,
    "kb": 1e3,
    "m": 1e6,
    "mb": 1e6,
    "g": 1e9,
    "gb": 1e9,
    "t": 1e12,
    "tb": 1e12,
}
_MEMORY_UNITS.update({"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40})


def parse_memory(value: int | float | str, what: str = "memory size") -> int:
    """Bytes from a number or a string such as '8GB', '6.5 GiB', '512MB' (decimal and binary units).

    Raises:
        ValueError: not a positive size.
    """
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number of bytes or a string like '8GB', got {value!r}")
    if isinstance(value, int | float):
        amount = float(value)
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z]*)\s*", str(value).lower())
        if not match or match.group(2) not in _MEMORY_UNITS:
            raise ValueError(
                f"cannot read {what} {value!r}: use bytes or a number with a unit, e.g. '8GB', '6GiB', '512MB'"
            )
        amount = float(match.group(1)) * _MEMORY_UNITS[match.group(2)]
    if not math.isfinite(amount) or amount <= 0:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return int(amount)


def format_bytes(n: float, up: bool = False) -> str:
    """'1.23 GB' / '45.6 MB' (decimal units); ``up`` rounds up (for a minimum to ask for)."""
    unit, scale = ("GB", 1e9) if n >= 1e9 else ("MB", 1e6)
    value = math.ceil(n / scale * 100) / 100 if up else n / scale
    return f"{value:.2f} {unit}"


# ----------------------------------------------------------------------------- the C heap
@functools.cache
def _libc() -> Any:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def release_free_memory() -> bool:
    """Return the free pages of the C heap to the system (glibc ``malloc_trim(0)``).

    Returns:
        False where the C library has no ``malloc_trim`` (macOS, Windows, musl): nothing is done there.
    """
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


# ----------------------------------------------------------------------------- measurement
def rss_bytes() -> int:
    """Resident set size of this process now (Linux); elsewhere its lifetime peak, the best available."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return _lifetime_peak_rss()


def _lifetime_peak_rss() -> int:
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _high_water_mark() -> int:
    """VmHWM: the peak RSS since the process started or since the last reset (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _reset_high_water_mark() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


class PeakMemory:
    """Peak memory of a code section: the allocator's peak on CUDA, the process's peak RSS elsewhere.

    On Linux the kernel's high-water mark is reset at the start; where that is not possible a background thread
    samples the RSS every ``interval`` seconds. Use as a context manager or with :meth:`start` / :meth:`stop`::

        with PeakMemory(device) as meter:
            run()
        meter.peak_bytes, meter.start_bytes
    """

    def __init__(
        self, device: torch.device | str = "cpu", interval: float = 0.05, shared: bool = False
    ) -> None:
        """``shared``: other measurements may run at the same time in this process (a server's concurrent
        requests), so the process-wide peak is never reset: the RSS is sampled instead (CPU), and on CUDA the
        allocator's peak is read without a reset (an upper bound)."""
        self.device = torch.device(device)
        self.interval = interval
        self.shared = shared
        self.start_bytes = 0
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def kind(self) -> str:
        """What is measured, in words."""
        return "GPU memory allocated" if self.device.type == "cuda" else "process RSS"

    def start(self) -> int:
        """Release free memory, reset the peak and return the baseline in bytes."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            if not self.shared:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(self.device)
            self.start_bytes = self.peak_bytes = torch.cuda.memory_allocated(self.device)
            return self.start_bytes
        if not self.shared:
            release_free_memory()
        self.start_bytes = self.peak_bytes = rss_bytes()
        if self.shared or not _reset_high_water_mark():
            self._stop.clear()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self.start_bytes

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_bytes = max(self.peak_bytes, rss_bytes())

    def current_peak(self) -> int:
        """The peak so far, in bytes."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return int(torch.cuda.max_memory_allocated(self.device))
        if self.shared:
            return max(self.peak_bytes, rss_bytes())
        return max(self.peak_bytes, _high_water_mark(), rss_bytes())

    def stop(self) -> int:
        """End the measurement and return the peak in bytes."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        self.peak_bytes = self.current_peak()
        return self.peak_bytes

    def __enter__(self) -> PeakMemory:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_device_memory(device: torch.device) -> int | None:
    """Free memory of a CUDA device in bytes (None for other devices, whose memory the process shares)."""
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return int(free)
