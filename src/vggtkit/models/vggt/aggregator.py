"""Alternating-attention aggregator: DINOv2 patch tokens, then frame-wise and global attention blocks."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from vggtkit.inference.plan import ExecutionPlan
from vggtkit.layers import Block, RopeTables, grid_rope_tables
from vggtkit.layers.init import normal_parameter
from vggtkit.models.common import LayerStore, fill_special_tokens_, normalize_images, run_block
from vggtkit.models.vggt.config import VGGTConfig
from vggtkit.models.vggt.dinov2 import ConvPatchEmbed, DinoVisionTransformer
from vggtkit.utils.memory import release_free_memory

FRAME, GLOBAL = "frame", "global"


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

        def make_blocks() -> nn.ModuleList:
            return nn.ModuleList(
                Block(c.embed_dim, c.num_heads, c.mlp_ratio, c.init_values, qk_norm=c.qk_norm)
                for _ in range(c.depth)
            )

        self.frame_blocks = make_blocks()
        self.global_blocks = make_blocks()
        self.camera_token = normal_parameter(1, 2, 1, c.embed_dim, std=1e-6)
        self.register_token = normal_parameter(1, 2, c.num_register_tokens, c.embed_dim, std=1e-6)
        self.patch_start_idx = c.patch_start_idx

    def embed_patches(self, images: Tensor, plan: ExecutionPlan | None = None) -> Tensor:
        """images: (B, S, 3, H, W) in [0, 1] -> float32 normalised patch tokens (B*S, H/p * W/p, C)."""
        return self.patch_embed(normalize_images(images.flatten(0, 1)), plan)

    def schedule(self) -> Iterator[tuple[int, str]]:
        """(block index, kind) in the order the blocks run."""
        c = self.config
        for step in range(c.depth // c.aa_block_size):
            for kind in c.aa_order:
                for j in range(c.aa_block_size):
                    yield step * c.aa_block_size + j, kind

    def forward(
        self, images: Tensor, plan: ExecutionPlan | None = None, tick: Callable[[], None] | None = None
    ) -> tuple[list[Tensor | None], int]:
        """Args:
            images: (B, S, 3, H, W) in [0, 1], H and W multiples of the patch size.
            plan: precision, chunks, in-place updates and which layers to keep (default: the plain plan, keeping
                the layers the heads read).
            tick: called after the patch embedder and after each block (progress, benchmarks).

        Returns:
            (outputs, patch_start_idx): ``depth`` entries of (B, S, P, 2C), None where not kept.
        """
        c = self.config
        plan = plan or ExecutionPlan()
        tick = tick or (lambda: None)
        B, S, _, H, W = images.shape
        tokens = self._initial_tokens(images, plan)  # (B, S, P, C) float32
        tick()
        P, C = tokens.shape[2:]
        frame_rope = grid_rope_tables(
            H // c.patch_size, W // c.patch_size, self.patch_start_idx, C // c.num_heads, c.rope_freq,
            plan.dtype, images.device,
        )  # fmt: skip
        ropes = {FRAME: frame_rope, GLOBAL: frame_rope.repeat(S)}
        keep = set(range(c.depth)) if plan.keep_all_layers else set(c.head_layers)
        layers = LayerStore(c.depth, keep, (B, S, P, C), plan, images.device)
        last = (c.depth - 1, c.aa_order[-1])
        for idx, kind in self.schedule():
            half = 0 if kind == FRAME else 1
            in_slot = (
                (idx, kind) == last and idx in keep and plan.in_place and plan.store_dtype == torch.float32
            )
            if in_slot:
                # Nothing reads the stream after the last block: run it on its copy in the kept layer, one
                # (B, S, P, C) float32 tensor less at the peak.
                layers.store(idx, half, tokens)
                tokens = layers.slot(idx, half)
            if plan.release_memory and idx == c.depth - 1:
                release_free_memory()  # the last layer holds every kept layer at once: the pass's peak so far
            tokens = self._run_block(kind, idx, tokens, ropes[kind], plan)
            if not in_slot:
                layers.store(idx, half, tokens)
            tick()
        return layers.outputs, self.patch_start_idx

    def _initial_tokens(self, images: Tensor, plan: ExecutionPlan) -> Tensor:
        """(B, S, P, C) float32: each frame's camera and register tokens, then its patch tokens (computed
        ``plan.frame_chunk`` frames at a time)."""
        c = self.config
        B, S, _, H, W = images.shape
        grid = (H // c.patch_size) * (W // c.patch_size)
        psi = self.patch_start_idx
        tokens = torch.empty(B, S, psi + grid, c.embed_dim, device=images.device, dtype=torch.float32)
        fill_special_tokens_(tokens, self.camera_token, self.register_token)
        flat, frames = tokens.view(B * S, psi + grid, c.embed_dim), images.reshape(B * S, 3, H, W)
        pos_embed = None
        if isinstance(self.patch_embed, DinoVisionTransformer):  # interpolated once for all chunks
            pos_embed = self.patch_embed.interpolate_pos_encoding(H // c.patch_size, W // c.patch_size)
        chunk = plan.frame_chunk or B * S
        for f0 in range(0, B * S, chunk):
            normalized = normalize_images(frames[f0 : f0 + chunk])
            if pos_embed is None:
                flat[f0 : f0 + chunk, psi:] = self.patch_embed(normalized, plan)
            else:
                flat[f0 : f0 + chunk, psi:] = self.patch_embed(normalized, plan, pos_embed)
        return tokens

    def _run_block(
        self, kind: str, idx: int, tokens: Tensor, rope: RopeTables, plan: ExecutionPlan
    ) -> Tensor:
        """Block ``idx`` of ``kind`` on the stream (B, S, P, C): frame attention over each frame's P tokens,
        global attention over the S*P tokens of each sequence."""
        B, S, P, C = tokens.shape
        if kind == FRAME:
            x = run_block(self.frame_blocks[idx], tokens.view(B * S, P, C), rope, plan, plan.frame_chunk)
        else:
            x = run_block(self.global_blocks[idx], tokens.view(B, S * P, C), rope, plan, plan.sequence_chunk)
        return x.view(B, S, P, C)
