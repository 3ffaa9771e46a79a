"""Small helpers that let geometry functions accept numpy arrays and torch tensors alike."""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


def is_numpy(x: object) -> bool:
    """True for numpy arrays (and numpy scalars), False otherwise."""
    return isinstance(x, (np.ndarray, np.generic))


def swap_last2(x: ArrayT) -> ArrayT:
    """Transpose the last two axes of a numpy array or torch tensor."""
    if is_numpy(x):
        return np.swapaxes(x, -1, -2)
    return x.transpose(-1, -2)


def to_numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    """Detach a tensor to a CPU numpy array; numpy input is returned as an array unchanged."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)
