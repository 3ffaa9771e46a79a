"""Floating-point precisions by name: the one table the library, the CLI and the web demo read."""

from __future__ import annotations

import torch

DTYPE_NAMES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
}
# The names offered to users (command-line choices, web demo menus), canonical spelling first.
DTYPE_CHOICES = ("float32", "bfloat16", "float16")
REDUCED_DTYPES = (torch.bfloat16, torch.float16)


def parse_dtype(value: str | torch.dtype, what: str = "dtype") -> torch.dtype:
    """'float32' | 'bfloat16' | 'float16' (also 'fp32', 'bf16', 'fp16', or a torch.dtype) -> torch.dtype.

    Raises:
        ValueError: any other name or dtype, with the accepted names.
    """
    if isinstance(value, torch.dtype):
        dtype = value
    elif isinstance(value, str) and value.lower().removeprefix("torch.") in DTYPE_NAMES:
        dtype = DTYPE_NAMES[value.lower().removeprefix("torch.")]
    else:
        raise ValueError(f"{what} must be one of {', '.join(DTYPE_CHOICES)}, got {value!r}")
    if dtype not in (torch.float32, *REDUCED_DTYPES):
        raise ValueError(f"{what} must be one of {', '.join(DTYPE_CHOICES)}, got {dtype}")
    return dtype


def dtype_name(dtype: torch.dtype | None) -> str | None:
    """torch.bfloat16 -> 'bfloat16' (None stays None)."""
    return None if dtype is None else str(dtype).removeprefix("torch.")
