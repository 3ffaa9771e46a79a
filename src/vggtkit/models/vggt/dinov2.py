"""Patch embedders: the DINOv2 ViT with registers (as in the released checkpoint) and a plain convolution
(:class:`~vggtkit.layers.patch_embed.ConvPatchEmbed`)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vggtkit.inference.plan import ExecutionPlan
from vggtkit.layers import Block
from vggtkit.layers.init import normal_
from vggtkit.layers.patch_embed import ConvPatchEmbed
from vggtkit.models.common import run_block


class DinoVisionTransformer(nn.Module):
    """DINOv2 ViT with register tokens, used as VGGT's patch embedder (keys ``aggregator.patch_embed.*``).

    Tokens are [cls, registers, patches]; only the patch part of the final normalised tokens is returned.
    """

    def __init__(
        self,
        img_size: int,
        patch_size: int,
        embed_dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        num_register_tokens: int = 4,
        init_values: float = 1.0,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.num_register_tokens = num_register_tokens
        num_patches = (img_size // patch_size) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + num_patches, embed_dim))
        self.register_tokens = (
            nn.Parameter(torch.zeros(1, num_register_tokens, embed_dim)) if num_register_tokens else None
        )
        # Unused at inference, kept (frozen) so that the released state dict loads strictly.
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim), requires_grad=False)
        self.patch_embed = ConvPatchEmbed(patch_size, embed_dim)
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, init_values=init_values, norm_eps=1e-6)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self._init_weights()

    def _init_weights(self) -> None:
        normal_(self.pos_embed, std=0.02, truncated=True)
        normal_(self.cls_token, std=1e-6)
        if self.register_tokens is not None:
            normal_(self.register_tokens, std=1e-6)

    def interpolate_pos_encoding(self, grid_h: int, grid_w: int) -> Tensor:
        """Positional embedding for a (grid_h, grid_w) patch grid: (1, 1 + grid_h*grid_w, C) float32.

        The stored square grid is resized with antialiased bicubic interpolation in float32 unless it already
        matches (square input at the trained size).
        """
        num_stored = self.pos_embed.shape[1] - 1
        pos_embed = self.pos_embed.float()
        if grid_h * grid_w == num_stored and grid_h == grid_w:
            return pos_embed
        side = int(math.sqrt(num_stored))
        cls_pos, patch_pos = pos_embed[:, :1], pos_embed[:, 1:]
        dim = patch_pos.shape[-1]
        patch_pos = patch_pos.reshape(1, side, side, dim).permute(0, 3, 1, 2)
        patch_pos = F.interpolate(patch_pos, size=(grid_h, grid_w), mode="bicubic", antialias=True)
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, dim)
        return torch.cat([cls_pos, patch_pos], dim=1)

    def forward(
        self, x: Tensor, plan: ExecutionPlan | None = None, pos_embed: Tensor | None = None
    ) -> Tensor:
        """Args:
            x: (N, 3, H, W) normalised images.
            plan: precision, token chunks, in-place updates (default: the plain plan).
            pos_embed: ``interpolate_pos_encoding(H/p, W/p)``, when the caller reuses it over several calls.

        Returns:
            float32 normalised patch tokens (N, H/p * W/p, C).
        """
        plan = plan or ExecutionPlan()
        N, _, H, W = x.shape
        if pos_embed is None:
            pos_embed = self.interpolate_pos_encoding(H // self.patch_size, W // self.patch_size)
        patches = self.patch_embed(x, plan)  # (N, g, C) float32
        R = self.num_register_tokens
        tokens = patches.new_empty(N, 1 + R + patches.shape[1], patches.shape[2])
        tokens[:, 1 + R :] = patches + pos_embed[:, 1:]
        del patches
        tokens[:, 0] = self.cls_token[0, 0].float() + pos_embed[0, 0]
        if self.register_tokens is not None:
            tokens[:, 1 : 1 + R] = self.register_tokens[0].float()
        for block in self.blocks:
            tokens = run_block(block, tokens, None, plan)
        norm = self.norm
        return F.layer_norm(
            tokens[:, 1 + R :], norm.normalized_shape, norm.weight.float(), norm.bias.float(), norm.eps
        )
