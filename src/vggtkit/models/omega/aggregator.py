"""VGGT-Omega's aggregator: DINOv3 patch tokens, then alternating frame blocks and inter-frame blocks."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from vggtkit.inference.plan import ExecutionPlan
from vggtkit.layers import Block, RopeTables
from vggtkit.layers.init import normal_parameter
from vggtkit.models.common import LayerStore, fill_special_tokens_, normalize_images, run_block
from vggtkit.models.omega.config import LAYERSCALE_INIT, NORM_EPS, VGGTOmegaConfig
from vggtkit.models.omega.dinov3 import DinoVisionTransformer, RopePositionEmbedding
from vggtkit.utils.memory import release_free_memory

FRAME, INTER_FRAME = 0, 1  # the halves of an aggregator output


class Aggregator(nn.Module):
    """Turns (B, S, 3, H, W) images into per-layer tokens (B, S, P, 2C), kept for the cached layers only.

    Each frame's tokens are [camera, R registers, h*w patches] (P = 1 + R + h*w, h = H // p, w = W // p). Step i
    runs frame block i (attention within each frame, with RoPE on the patch grid) and inter-frame block i:
    "global" attention over all tokens of all frames of a sequence, or, at ``register_attention_block_indices``,
    attention over the camera and register tokens of all frames only, the patch tokens passing unchanged. Neither
    kind has any position embedding. Output i concatenates the frame-block and inter-frame-block results along
    channels.
    """

    def __init__(self, config: VGGTOmegaConfig) -> None:
        super().__init__()
        c = self.config = config
        self.patch_embed = DinoVisionTransformer(
            c.patch_size, c.embed_dim, c.patch_embed_depth, c.patch_embed_num_heads, c.patch_embed_ffn_ratio,
            c.patch_embed_n_storage_tokens,
        )  # fmt: skip
        self.rope_embed = RopePositionEmbedding(c.embed_dim // c.num_heads)

        def make_blocks() -> nn.ModuleList:
            return nn.ModuleList(
                Block(
                    c.embed_dim,
                    c.num_heads,
                    c.mlp_ratio,
                    LAYERSCALE_INIT,
                    qk_norm=True,
                    norm_eps=NORM_EPS,
                    bias_mask=True,
                )  # fmt: skip
                for _ in range(c.depth)
            )

        self.frame_blocks = make_blocks()
        self.inter_frame_blocks = make_blocks()
        self.camera_token = normal_parameter(1, 2, 1, c.embed_dim, std=1e-6)
        self.register_token = normal_parameter(1, 2, c.num_register_tokens, c.embed_dim, std=1e-6)
        self.patch_token_start = c.patch_token_start
        self.register_blocks = frozenset(c.register_attention_block_indices)

    def forward(
        self, images: Tensor, plan: ExecutionPlan | None = None, tick: Callable[[], None] | None = None
    ) -> tuple[list[Tensor | None], int]:
        """Args:
            images: (B, S, 3, H, W) in [0, 1]; rows and columns beyond the last whole patch are ignored.
            plan: precision, chunks, in-place updates and which layers to keep (default: the plain plan, keeping
                the layers the heads read).
            tick: called after the patch embedder and after each block (progress, benchmarks).

        Returns:
            (outputs, patch_token_start): ``depth`` entries of (B, S, P, 2C), None where not kept.
        """
        c = self.config
        plan = plan or ExecutionPlan()
        tick = tick or (lambda: None)
        B, S, _, H, W = images.shape
        tokens = self._initial_tokens(images, plan)  # (B, S, P, C) float32
        tick()
        P, C = tokens.shape[2:]
        rope = self.rope(H // c.patch_size, W // c.patch_size)
        keep = set(range(c.depth)) if plan.keep_all_layers else set(c.head_layers)
        layers = LayerStore(c.depth, keep, (B, S, P, C), plan, images.device)
        for idx in range(c.depth):
            if plan.release_memory and idx == c.depth - 1:
                release_free_memory()  # the last layer holds every kept layer at once: the pass's peak so far
            frames = run_block(self.frame_blocks[idx], tokens.view(B * S, P, C), rope, plan, plan.frame_chunk)
            tokens = frames.view(B, S, P, C)
            layers.store(idx, FRAME, tokens)
            tick()
            if idx == c.depth - 1 and idx in keep and plan.in_place and plan.store_dtype == torch.float32:
                # Nothing reads the stream after the last block: run it on its copy in the kept layer, one
                # (B, S, P, C) float32 tensor less at the peak.
                layers.store(idx, INTER_FRAME, tokens)
                del frames
                tokens = self._inter_frame(idx, layers.slot(idx, INTER_FRAME), plan)
            else:
                tokens = self._inter_frame(idx, tokens, plan)
                layers.store(idx, INTER_FRAME, tokens)
            tick()
        return layers.outputs, self.patch_token_start

    def _initial_tokens(self, images: Tensor, plan: ExecutionPlan) -> Tensor:
        """(B, S, P, C) float32: each frame's camera and register tokens, then its DINOv3 patch tokens (computed
        ``plan.frame_chunk`` frames at a time)."""
        c = self.config
        B, S, _, H, W = images.shape
        grid_h, grid_w = H // c.patch_size, W // c.patch_size
        psi = self.patch_token_start
        tokens = torch.empty(
            B, S, psi + grid_h * grid_w, c.embed_dim, device=images.device, dtype=torch.float32
        )
        fill_special_tokens_(tokens, self.camera_token, self.register_token)
        flat, frames = tokens.view(B * S, *tokens.shape[2:]), images.reshape(B * S, 3, H, W)
        embed = self.patch_embed
        rope = embed.rope(grid_h, grid_w)  # once for all chunks
        chunk = plan.frame_chunk or B * S
        for f0 in range(0, B * S, chunk):
            out = embed(normalize_images(frames[f0 : f0 + chunk]), plan, rope)
            flat[f0 : f0 + chunk, psi:] = out[:, embed.num_prefix_tokens :]
            del out
        return tokens

    def _inter_frame(self, idx: int, tokens: Tensor, plan: ExecutionPlan) -> Tensor:
        """Inter-frame block ``idx`` on the stream (B, S, P, C), without RoPE: over the S*P tokens of each sequence
        (frame-major), or, for a register block, over the S*(1+R) camera and register tokens only."""
        B, S, P, C = tokens.shape
        block = self.inter_frame_blocks[idx]
        if idx not in self.register_blocks:
            return run_block(block, tokens.view(B, S * P, C), None, plan, plan.sequence_chunk).view(
                B, S, P, C
            )
        psi = self.patch_token_start
        # A copy of the camera and register tokens, except for one frame per sequence, where it is a view.
        special = run_block(block, tokens[:, :, :psi].reshape(B, S * psi, C), None, plan, plan.sequence_chunk)
        special = special.view(B, S, psi, C)
        if not plan.in_place:
            return torch.cat([special, tokens[:, :, psi:]], dim=2)
        if special.data_ptr() != tokens.data_ptr():  # the block updated a copy: write it back
            tokens[:, :, :psi] = special
        return tokens

    def rope(self, grid_h: int, grid_w: int) -> RopeTables:
        """The frame blocks' rotation: camera and register tokens unrotated, then the grid_h x grid_w patches."""
        return self.rope_embed.tables(grid_h, grid_w, self.patch_token_start)
