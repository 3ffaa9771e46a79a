"""Non-overlapping patchify convolution, the first layer of both families' patch embedders."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from vggtkit.inference.plan import ExecutionPlan


class ConvPatchEmbed(nn.Module):
    """Conv2d with kernel = stride = patch size (key ``proj``); rows and columns beyond the last whole patch are
    dropped, as by the strided convolution."""

    def __init__(self, patch_size: int, embed_dim: int, in_chans: int = 3) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor, plan: ExecutionPlan | None = None) -> Tensor:
        """x: (N, 3, H, W) normalised images -> float32 patch tokens (N, H//p * W//p, C), row-major."""
        dtype = (plan or ExecutionPlan()).dtype
        proj = self.proj
        bias = None if proj.bias is None else proj.bias.to(dtype)
        out = F.conv2d(x.to(dtype), proj.weight.to(dtype), bias, stride=proj.stride)
        return out.flatten(2).transpose(1, 2).float()
