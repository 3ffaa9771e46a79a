"""Random initialisation that skips the meta device.

Models are built on the meta device before loading weights (see :func:`vggtkit.weights.load_pretrained`). Normal
draws there run torch's Python reference kernels, whose first use imports torch._dynamo and sympy: about 76 MB of
resident memory for placeholders that loading replaces anyway.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def normal_(tensor: Tensor, std: float = 1.0, truncated: bool = False) -> Tensor:
    """Fill ``tensor`` from N(0, std^2) in place (``truncated``: values cut at +-2, the defaults of
    ``nn.init.trunc_normal_``); meta tensors are left as they are."""
    if tensor.is_meta:
        return tensor
    with torch.no_grad():
        if truncated:
            return nn.init.trunc_normal_(tensor, std=std)
        return tensor.normal_(0.0, std)


def normal_parameter(*shape: int, std: float = 1.0) -> nn.Parameter:
    """A new parameter of ``shape`` drawn from N(0, std^2) (uninitialised on the meta device)."""
    return nn.Parameter(normal_(torch.empty(*shape), std))
