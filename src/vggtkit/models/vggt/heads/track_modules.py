"""Building blocks of the track head's tracker: embeddings, sampling, correlation pyramid, update transformer."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vggtkit.layers import Mlp
from vggtkit.layers.init import normal_, normal_parameter


# ----------------------------------------------------------------------------- embeddings
def flow_embedding(xy: Tensor, channels: int) -> Tensor:
    """(..., 2) -> (..., 2*channels): [pe_x | pe_y], sin on even and cos on odd channels.

    Frequencies are linear, 2k * 1000 / channels (as trained), not geometric.
    """
    freqs = torch.arange(0, channels, 2, device=xy.device, dtype=torch.float32) * (1000.0 / channels)
    parts = []
    for coord in (xy[..., 0:1], xy[..., 1:2]):
        angles = coord * freqs
        parts.append(torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(-2))  # interleave sin/cos
    return torch.cat(parts, dim=-1)


def sincos_grid_embedding(dim: int, grid_h: int, grid_w: int, device: torch.device | None = None) -> Tensor:
    """(1, dim, grid_h, grid_w) 2-D sin-cos embedding: first half encodes the column, second half the row."""

    def embed_1d(pos: Tensor, d: int) -> Tensor:
        omega = 1.0 / 10000 ** (torch.arange(d // 2, dtype=torch.float64) / (d / 2.0))
        angles = pos.reshape(-1).double()[:, None] * omega[None]
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    rows, cols = torch.meshgrid(
        torch.arange(grid_h, dtype=torch.float32), torch.arange(grid_w, dtype=torch.float32), indexing="ij"
    )
    emb = torch.cat([embed_1d(cols, dim // 2), embed_1d(rows, dim // 2)], dim=1).float()
    return emb.reshape(1, grid_h, grid_w, dim).permute(0, 3, 1, 2).to(device)


# ----------------------------------------------------------------------------- sampling
def bilinear_sampler(input: Tensor, coords: Tensor, padding_mode: str = "border") -> Tensor:
    """Sample input (N, C, H, W) at pixel coords (N, h, w, 2) as (x, y), align_corners=True -> (N, C, h, w)."""
    H, W = input.shape[-2:]
    scale = torch.tensor([2 / max(W - 1, 1), 2 / max(H - 1, 1)], device=coords.device, dtype=input.dtype)
    grid = coords.detach().to(input.dtype) * scale - 1
    return F.grid_sample(input, grid, mode="bilinear", padding_mode=padding_mode, align_corners=True)


def sample_features(fmap: Tensor, coords: Tensor) -> Tensor:
    """fmap (B, C, H, W) sampled at coords (B, N, 2) pixels (border padding) -> (B, N, C)."""
    return bilinear_sampler(fmap, coords[:, :, None]).squeeze(-1).transpose(1, 2)


class CorrBlock:
    """Multi-level correlation between track features and average-pooled feature maps.

    For each level the (2r+1)^2 window is flattened with the x offset as the outer index, as trained.
    """

    def __init__(self, fmaps: Tensor, num_levels: int, radius: int) -> None:
        """fmaps: (B, S, C, H, W)."""
        self.radius = radius
        self.pyramid = [fmaps]
        for _ in range(num_levels - 1):
            B, S, C, H, W = fmaps.shape
            fmaps = F.avg_pool2d(fmaps.reshape(B * S, C, H, W), kernel_size=2, stride=2)
            fmaps = fmaps.reshape(B, S, C, *fmaps.shape[-2:])
            self.pyramid.append(fmaps)
        lin = torch.linspace(-radius, radius, 2 * radius + 1, device=fmaps.device, dtype=fmaps.dtype)
        offset_x, offset_y = torch.meshgrid(lin, lin, indexing="ij")  # [a, b] -> (lin[a], lin[b])
        self.offsets = torch.stack([offset_x, offset_y], dim=-1)  # (2r+1, 2r+1, 2) as (dx, dy)

    def sample(self, track_feats: Tensor, coords: Tensor, frames_chunk_size: int | None = None) -> Tensor:
        """track_feats (B, S, N, C), coords (B, S, N, 2) at level 0 -> (B, S, N, levels * (2r+1)^2).

        ``frames_chunk_size`` bounds the memory of the full-resolution correlation volumes (B, s, N, H*W) by
        computing them for that many frames at a time (same numbers).
        """
        S = track_feats.shape[1]
        if frames_chunk_size is not None and frames_chunk_size < S:
            parts = [
                self._sample_frames(
                    track_feats[:, s : s + frames_chunk_size], coords[:, s : s + frames_chunk_size], s
                )
                for s in range(0, S, frames_chunk_size)
            ]
            return torch.cat(parts, dim=1)
        return self._sample_frames(track_feats, coords, 0)

    def _sample_frames(self, track_feats: Tensor, coords: Tensor, first: int) -> Tensor:
        B, S, N, C = track_feats.shape
        window = 2 * self.radius + 1
        out = []
        for level, fmaps in enumerate(self.pyramid):
            fmaps = fmaps[:, first : first + S]
            H, W = fmaps.shape[-2:]
            corr = torch.matmul(track_feats, fmaps.reshape(B, S, C, H * W)) / math.sqrt(C)  # (B, S, N, H*W)
            corr = corr.reshape(B * S * N, 1, H, W)
            centre = coords.reshape(B * S * N, 1, 1, 2) / 2**level
            window_coords = centre + self.offsets.to(coords.dtype).view(1, window, window, 2)
            sampled = bilinear_sampler(corr, window_coords, padding_mode="zeros")
            out.append(sampled.reshape(B, S, N, -1))
        return torch.cat(out, dim=-1)


# ----------------------------------------------------------------------------- update transformer
class MultiheadAttention(nn.Module):
    """Batch-first multi-head attention with ``torch.nn.MultiheadAttention``'s parameter names, through SDPA."""

    def __init__(self, embed_dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * embed_dim))
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, query: Tensor, context: Tensor) -> Tensor:
        """query (B, Nq, D), context (B, Nk, D) -> (B, Nq, D)."""
        B, Nq, D = query.shape
        w_q, w_kv = self.in_proj_weight.split([D, 2 * D])
        b_q, b_kv = self.in_proj_bias.split([D, 2 * D])
        q = F.linear(query, w_q, b_q)
        k, v = F.linear(context, w_kv, b_kv).chunk(2, dim=-1)

        def heads(t: Tensor) -> Tensor:
            return t.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)

        out = F.scaled_dot_product_attention(heads(q), heads(k), heads(v))
        return self.out_proj(out.transpose(1, 2).reshape(B, Nq, D))


class AttnBlock(nn.Module):
    """x <- norm1(x); x <- x + attn(x); x <- x + mlp(norm2(x)). The residual stream is the normalised x."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.attn = MultiheadAttention(dim, num_heads)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        x = self.norm1(x)
        x = x + self.attn(x, x)
        return x + self.mlp(self.norm2(x))


class CrossAttnBlock(nn.Module):
    """As AttnBlock, attending from x to a separately normalised context."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.cross_attn = MultiheadAttention(dim, num_heads)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        x = self.norm1(x)
        x = x + self.cross_attn(x, self.norm_context(context))
        return x + self.mlp(self.norm2(x))


class EfficientUpdateFormer(nn.Module):
    """Alternates attention over time (per track) and over tracks (through virtual tracks, per frame)."""

    def __init__(
        self,
        input_dim: int,
        hidden_size: int,
        output_dim: int,
        depth: int = 6,
        num_heads: int = 8,
        mlp_ratio: float = 4.0,
        num_virtual_tracks: int = 64,
    ) -> None:
        super().__init__()
        self.num_virtual_tracks = num_virtual_tracks
        self.input_norm = nn.LayerNorm(input_dim)
        self.input_transform = nn.Linear(input_dim, hidden_size)
        self.output_norm = nn.LayerNorm(hidden_size)
        self.flow_head = nn.Linear(hidden_size, output_dim)
        self.virual_tracks = normal_parameter(1, num_virtual_tracks, 1, hidden_size)  # key typo as released

        def blocks(cls: type[nn.Module]) -> nn.ModuleList:
            return nn.ModuleList(cls(hidden_size, num_heads, mlp_ratio) for _ in range(depth))

        self.time_blocks = blocks(AttnBlock)
        self.space_virtual_blocks = blocks(AttnBlock)
        self.space_point2virtual_blocks = blocks(CrossAttnBlock)
        self.space_virtual2point_blocks = blocks(CrossAttnBlock)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        normal_(self.flow_head.weight, std=0.001, truncated=True)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, N, T, input_dim) -> (B, N, T, output_dim)."""
        tokens = self.input_transform(self.input_norm(x))
        init_tokens = tokens
        B, N, T, D = tokens.shape
        tokens = torch.cat([tokens, self.virual_tracks.expand(B, -1, T, -1)], dim=1)
        n_all = tokens.shape[1]
        for time_block, virt2point, virt_self, point2virt in zip(
            self.time_blocks,
            self.space_virtual2point_blocks,
            self.space_virtual_blocks,
            self.space_point2virtual_blocks,
            strict=True,
        ):
            tokens = time_block(tokens.reshape(B * n_all, T, D)).reshape(B, n_all, T, D)
            space = tokens.transpose(1, 2).reshape(B * T, n_all, D)
            points, virtual = space[:, :N], space[:, N:]
            virtual = virt_self(virt2point(virtual, points))
            points = point2virt(points, virtual)
            tokens = torch.cat([points, virtual], dim=1).reshape(B, T, n_all, D).transpose(1, 2)
        tokens = tokens[:, :N] + init_tokens
        return self.flow_head(self.output_norm(tokens))
