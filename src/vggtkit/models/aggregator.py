"""Alternating-attention aggregator: DINOv2 patch tokens, then frame-wise and global attention blocks."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.utils.checkpoint
from torch import Tensor, nn

from vggtkit.config import VGGTConfig
from vggtkit.layers import Block, RotaryPositionEmbedding2D, patch_positions
from vggtkit.models.dinov2 import ConvPatchEmbed, DinoVisionTransformer

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _first_frame_then_rest(token: Tensor, B: int, S: int) -> Tensor:
    """(1, 2, n, C) learned tokens -> (B*S, n, C): index 0 for frame 0, index 1 for every other frame."""
    first = token[:, :1].expand(B, 1, *token.shape[2:])
    rest = token[:, 1:].expand(B, S - 1, *token.shape[2:])
    return torch.cat([first, rest], dim=1).reshape(B * S, *token.shape[2:])


class Aggregator(nn.Module):
    """Turns (B, S, 3, H, W) images into per-layer tokens (B, S, P, 2C).

    Each frame's tokens are [camera, registers, patches] (P = 1 + R + H/p * W/p). Every alternating step runs
    ``aa_block_size`` frame blocks (attention within a frame) and as many global blocks (attention over all
    frames of a sequence); output i concatenates the frame-block-i and global-block-i results along channels.
    """

    def __init__(self, config: VGGTConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        if c.patch_embed == "dinov2":
            self.patch_embed: nn.Module = DinoVisionTransformer(
                img_size=c.img_size,
                patch_size=c.patch_size,
                embed_dim=c.embed_dim,
                depth=c.patch_embed_depth,
                num_heads=c.patch_embed_num_heads,
                mlp_ratio=c.mlp_ratio,
                num_register_tokens=c.num_register_tokens,
            )
        else:
            self.patch_embed = ConvPatchEmbed(c.patch_size, c.embed_dim)
        self.rope = RotaryPositionEmbedding2D(c.rope_freq)

        def make_blocks() -> nn.ModuleList:
            return nn.ModuleList(
                Block(c.embed_dim, c.num_heads, c.mlp_ratio, c.init_values, qk_norm=c.qk_norm, rope=self.rope)
                for _ in range(c.depth)
            )

        self.frame_blocks = make_blocks()
        self.global_blocks = make_blocks()
        self.camera_token = nn.Parameter(torch.randn(1, 2, 1, c.embed_dim) * 1e-6)
        self.register_token = nn.Parameter(torch.randn(1, 2, c.num_register_tokens, c.embed_dim) * 1e-6)
        self.patch_start_idx = c.patch_start_idx
        self.gradient_checkpointing = False

    def embed_patches(self, images: Tensor) -> Tensor:
        """images: (B, S, 3, H, W) in [0, 1] -> normalised patch tokens (B*S, H/p * W/p, C)."""
        B, S, _, H, W = images.shape
        # Constants rather than buffers: nothing to keep out of the state dict or to re-create after a meta load.
        mean = torch.tensor(IMAGENET_MEAN, device=images.device, dtype=images.dtype).view(1, 1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=images.device, dtype=images.dtype).view(1, 1, 3, 1, 1)
        images = (images - mean) / std
        return self.patch_embed(images.reshape(B * S, 3, H, W))

    def _run_block(self, block: nn.Module, tokens: Tensor, pos: Tensor) -> Tensor:
        if self.gradient_checkpointing and self.training:
            return torch.utils.checkpoint.checkpoint(block, tokens, pos, use_reentrant=False)
        return block(tokens, pos=pos)

    def forward(self, images: Tensor, keep_layers: Iterable[int] | None = None) -> tuple[list[Tensor | None], int]:
        """Args:
            images: (B, S, 3, H, W) in [0, 1], H and W multiples of the patch size.
            keep_layers: output indices to keep; None keeps all ``depth`` outputs. Dropped outputs are None, so
                only the layers the heads read stay in memory.

        Returns:
            (outputs, patch_start_idx): ``depth`` entries of (B, S, P, 2C) or None.
        """
        c = self.config
        B, S, _, H, W = images.shape
        keep = set(range(c.depth)) if keep_layers is None else {i % c.depth for i in keep_layers}
        patch_tokens = self.embed_patches(images)
        special = [_first_frame_then_rest(self.camera_token, B, S), _first_frame_then_rest(self.register_token, B, S)]
        tokens = torch.cat([*special, patch_tokens], dim=1)  # (B*S, P, C)
        P, C = tokens.shape[1:]
        pos = patch_positions(B * S, H // c.patch_size, W // c.patch_size, self.patch_start_idx, images.device)
        frame_pos, global_pos = pos, pos.reshape(B, S * P, 2)

        outputs: list[Tensor | None] = []
        for step in range(c.depth // c.aa_block_size):
            frame_out: list[Tensor] = []
            global_out: list[Tensor] = []
            for kind in c.aa_order:
                for j in range(c.aa_block_size):
                    idx = step * c.aa_block_size + j
                    if kind == "frame":
                        tokens = tokens.reshape(B * S, P, C)
                        tokens = self._run_block(self.frame_blocks[idx], tokens, frame_pos)
                        frame_out.append(tokens.reshape(B, S, P, C))
                    else:
                        tokens = tokens.reshape(B, S * P, C)
                        tokens = self._run_block(self.global_blocks[idx], tokens, global_pos)
                        global_out.append(tokens.reshape(B, S, P, C))
            for j in range(c.aa_block_size):
                idx = step * c.aa_block_size + j
                outputs.append(torch.cat([frame_out[j], global_out[j]], dim=-1) if idx in keep else None)
        return outputs, self.patch_start_idx
