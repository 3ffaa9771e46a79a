"""DINOv3-style pieces of VGGT-Omega: the rotary position embedding with stored periods, and the patch embedder.

The rotary embedding (RoPE) rotates each head's channel pairs (j, j + D/2) by angles [row | col | row | col]: the
first quarter of the channels turns with the token's row, the second with its column, each at D/4 periods. Patch
coordinates are pixel centres normalised by the longer grid side ("max"): ((k + 0.5) / max(h, w)) * 2 - 1, so the
longer side spans (-1, 1) and the shorter one starts at the same edge. Tables are float32 whatever the compute
precision, and tokens before the patch grid (the prefix) are not rotated.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vggtkit.inference.plan import ExecutionPlan
from vggtkit.layers import Block, RopeTables
from vggtkit.layers.init import normal_parameter
from vggtkit.layers.patch_embed import ConvPatchEmbed
from vggtkit.layers.rope import rope_tables
from vggtkit.models.common import run_block
from vggtkit.models.omega.config import LAYERSCALE_INIT, NORM_EPS, ROPE_BASE


class RopePositionEmbedding(nn.Module):
    """DINOv3 RoPE for heads of ``head_dim`` channels (key ``periods``, a persistent buffer of D/4 periods).

    The checkpoint's periods are used as stored; a fresh module holds base^(4i/D), i = 0 .. D/4 - 1.
    """

    def __init__(self, head_dim: int, base: float = ROPE_BASE) -> None:
        super().__init__()
        if head_dim % 4:
            raise ValueError(f"the rotary embedding needs a head size divisible by 4, got {head_dim}")
        self.head_dim = head_dim
        self.base = base
        self.register_buffer("periods", torch.empty(head_dim // 4))
        self.reset_buffers()

    def reset_buffers(self) -> None:
        """The constructed periods base^(2i / (D/2)) in float32; meta tensors are left as they are."""
        if self.periods.is_meta:
            return
        exponents = 2 * torch.arange(self.head_dim // 4, dtype=torch.float32) / (self.head_dim // 2)
        with torch.no_grad():
            self.periods.copy_(self.base**exponents)

    def angles(self, grid_h: int, grid_w: int) -> Tensor:
        """(grid_h * grid_w, D/2) float32 angles of the row-major patch grid: [row angles | column angles]."""
        dd = {"device": self.periods.device, "dtype": torch.float32}
        longest = max(grid_h, grid_w)
        coords_h = torch.arange(0.5, grid_h, **dd) / longest
        coords_w = torch.arange(0.5, grid_w, **dd) / longest
        coords = torch.stack(torch.meshgrid(coords_h, coords_w, indexing="ij"), dim=-1).flatten(0, 1)
        coords = 2.0 * coords - 1.0  # (hw, 2): [row, col] in (-1, 1)
        # The official expression, term for term, so the float32 roundings are the same.
        angles = 2 * math.pi * coords[:, :, None] / self.periods.float()[None, None, :]  # (hw, 2, D/4)
        return angles.flatten(1, 2)

    def tables(self, grid_h: int, grid_w: int, num_prefix: int) -> RopeTables:
        """float32 tables for ``num_prefix`` unrotated tokens followed by the row-major grid_h x grid_w patches."""
        grid = self.angles(grid_h, grid_w)
        prefix = grid.new_zeros(num_prefix, grid.shape[1])  # angle 0: the identity rotation
        return rope_tables(torch.cat([prefix, grid]), groups=1)


class DinoVisionTransformer(nn.Module):
    """DINOv3 ViT, VGGT-Omega's patch embedder (keys ``aggregator.patch_embed.*``).

    Tokens are [cls, storage x n, patches]; no absolute position embedding (the blocks use RoPE), LayerScale and a
    masked query/key/value bias in every block, one final LayerNorm over all tokens.
    """

    def __init__(
        self,
        patch_size: int,
        embed_dim: int,
        depth: int,
        num_heads: int,
        ffn_ratio: float = 4.0,
        n_storage_tokens: int = 4,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.n_storage_tokens = n_storage_tokens
        self.cls_token = normal_parameter(1, 1, embed_dim, std=0.02)
        # As DINOv3: no parameter (and no key) without storage tokens.
        self.storage_tokens = (
            normal_parameter(1, n_storage_tokens, embed_dim, std=0.02) if n_storage_tokens else None
        )
        # Used only for masked training; enters the cls token multiplied by zero, as in the official code.
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))
        self.patch_embed = ConvPatchEmbed(patch_size, embed_dim)
        self.rope_embed = RopePositionEmbedding(embed_dim // num_heads)
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, ffn_ratio, LAYERSCALE_INIT, norm_eps=NORM_EPS, bias_mask=True)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=NORM_EPS)

    @property
    def num_prefix_tokens(self) -> int:
        """Tokens before the patches: cls and storage."""
        return 1 + self.n_storage_tokens

    def rope(self, grid_h: int, grid_w: int) -> RopeTables:
        """The blocks' rotation for a grid_h x grid_w patch grid (prefix unrotated)."""
        return self.rope_embed.tables(grid_h, grid_w, self.num_prefix_tokens)

    def forward(self, x: Tensor, plan: ExecutionPlan | None = None, rope: RopeTables | None = None) -> Tensor:
        """Args:
            x: (N, 3, H, W) ImageNet-normalised images; rows and columns beyond the last whole patch are ignored.
            plan: precision, token chunks, in-place updates (default: the plain plan).
            rope: ``self.rope(H // p, W // p)``, when the caller reuses it over several calls.

        Returns:
            (N, 1 + n + h*w, C) float32 normalised tokens [cls, storage x n, patches].
        """
        plan = plan or ExecutionPlan()
        N, _, H, W = x.shape
        if rope is None:
            rope = self.rope(H // self.patch_size, W // self.patch_size)
        patches = self.patch_embed(x, plan)  # (N, h*w, C) float32
        prefix = self.num_prefix_tokens
        tokens = patches.new_empty(N, prefix + patches.shape[1], patches.shape[2])
        tokens[:, prefix:] = patches
        del patches
        tokens[:, 0] = (self.cls_token + 0 * self.mask_token)[0, 0].float()
        if self.storage_tokens is not None:
            tokens[:, 1:prefix] = self.storage_tokens[0].float()
        for block in self.blocks:
            tokens = run_block(block, tokens, rope, plan)
        norm = self.norm
        return F.layer_norm(tokens, norm.normalized_shape, norm.weight.float(), norm.bias.float(), norm.eps)
