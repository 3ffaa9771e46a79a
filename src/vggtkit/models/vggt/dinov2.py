"""Patch embedders: the DINOv2 ViT with registers (as in the released checkpoint) and a plain convolution."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import Tensor, nn

from vggtkit.layers import Block
from vggtkit.layers.fast_block import block_forward_
from vggtkit.layers.init import normal_


class ConvPatchEmbed(nn.Module):
    """Non-overlapping patchify convolution. (N, 3, H, W) -> (N, H/p * W/p, C); key ``proj``."""

    def __init__(self, patch_size: int, embed_dim: int, in_chans: int = 3) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


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
        self.gradient_checkpointing = False
        self._init_weights()

    def _init_weights(self) -> None:
        normal_(self.pos_embed, std=0.02, truncated=True)
        normal_(self.cls_token, std=1e-6)
        if self.register_tokens is not None:
            normal_(self.register_tokens, std=1e-6)

    def interpolate_pos_encoding(self, grid_h: int, grid_w: int, dtype: torch.dtype) -> Tensor:
        """Positional embedding for a (grid_h, grid_w) patch grid: (1, 1 + grid_h*grid_w, C).

        The stored square grid is resized with antialiased bicubic interpolation in float32 unless it already
        matches (square input at the trained size).
        """
        num_stored = self.pos_embed.shape[1] - 1
        if grid_h * grid_w == num_stored and grid_h == grid_w:
            return self.pos_embed.to(dtype)
        side = int(math.sqrt(num_stored))
        pos_embed = self.pos_embed.float()
        cls_pos, patch_pos = pos_embed[:, :1], pos_embed[:, 1:]
        dim = patch_pos.shape[-1]
        patch_pos = patch_pos.reshape(1, side, side, dim).permute(0, 3, 1, 2)
        patch_pos = F.interpolate(patch_pos, size=(grid_h, grid_w), mode="bicubic", antialias=True)
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, dim)
        return torch.cat([cls_pos, patch_pos], dim=1).to(dtype)

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, 3, H, W) normalised images. Returns normalised patch tokens (N, H/p * W/p, C)."""
        N, _, H, W = x.shape
        tokens = self.patch_embed(x)
        tokens = torch.cat([self.cls_token.expand(N, -1, -1), tokens], dim=1)
        tokens = tokens + self.interpolate_pos_encoding(
            H // self.patch_size, W // self.patch_size, tokens.dtype
        )
        if self.register_tokens is not None:
            registers = self.register_tokens.expand(N, -1, -1)
            tokens = torch.cat([tokens[:, :1], registers, tokens[:, 1:]], dim=1)
        for block in self.blocks:
            if self.gradient_checkpointing and self.training:
                tokens = torch.utils.checkpoint.checkpoint(block, tokens, use_reentrant=False)
            else:
                tokens = block(tokens)
        return self.norm(tokens)[:, 1 + self.num_register_tokens :]

    def forward_fast(
        self, x: Tensor, dtype: torch.dtype, token_chunk: int, pos_embed: Tensor | None = None
    ) -> Tensor:
        """Inference-only equivalent of :meth:`forward` (matrix products in ``dtype``, residual stream in
        float32, in place; see :func:`vggtkit.layers.fast_block.block_forward_`).

        Args:
            x: (N, 3, H, W) normalised images.
            pos_embed: ``interpolate_pos_encoding(H/p, W/p, float32)``, when the caller reuses it.
            token_chunk: queries per attention pass and tokens per MLP pass (see ``block_forward_``).

        Returns:
            float32 normalised patch tokens (N, H/p * W/p, C).
        """
        N, _, H, W = x.shape
        grid_h, grid_w = H // self.patch_size, W // self.patch_size
        if pos_embed is None:
            pos_embed = self.interpolate_pos_encoding(grid_h, grid_w, torch.float32)
        proj = self.patch_embed.proj
        bias = None if proj.bias is None else proj.bias.to(dtype)
        patches = F.conv2d(x.to(dtype), proj.weight.to(dtype), bias, stride=proj.stride)
        patches = patches.flatten(2).transpose(1, 2)  # (N, g, C)
        R = self.num_register_tokens
        C = patches.shape[-1]
        tokens = torch.empty(N, 1 + R + patches.shape[1], C, device=x.device, dtype=torch.float32)
        torch.add(patches, pos_embed[:, 1:].float(), out=tokens[:, 1 + R :])
        del patches
        tokens[:, 0] = self.cls_token[0, 0].float() + pos_embed[0, 0].float()
        if self.register_tokens is not None:
            tokens[:, 1 : 1 + R] = self.register_tokens[0]
        for block in self.blocks:
            block_forward_(block, tokens, None, token_chunk, dtype)
        norm = self.norm
        return F.layer_norm(tokens[:, 1 + R :], (C,), norm.weight.float(), norm.bias.float(), norm.eps)
