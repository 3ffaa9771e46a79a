"""Alternating-attention aggregator: DINOv2 patch tokens, then frame-wise and global attention blocks."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import Tensor, nn

from vggtkit.layers import Block, RotaryPositionEmbedding2D, patch_positions
from vggtkit.layers.fast_block import block_forward_, prepare_block
from vggtkit.layers.init import normal_parameter
from vggtkit.layers.rope import rope_tables
from vggtkit.models.vggt.config import VGGTConfig
from vggtkit.models.vggt.dinov2 import ConvPatchEmbed, DinoVisionTransformer
from vggtkit.utils.memory import release_free_memory

if TYPE_CHECKING:
    from vggtkit.inference import ExecutionPlan

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
        self.camera_token = normal_parameter(1, 2, 1, c.embed_dim, std=1e-6)
        self.register_token = normal_parameter(1, 2, c.num_register_tokens, c.embed_dim, std=1e-6)
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

    def forward(
        self, images: Tensor, keep_layers: Iterable[int] | None = None, tick: Callable[[], None] | None = None
    ) -> tuple[list[Tensor | None], int]:
        """Args:
            images: (B, S, 3, H, W) in [0, 1], H and W multiples of the patch size.
            keep_layers: output indices to keep; None keeps all ``depth`` outputs. Dropped outputs are None, so
                only the layers the heads read stay in memory.
            tick: called after the patch embedder and after each block (progress, benchmarks).

        Returns:
            (outputs, patch_start_idx): ``depth`` entries of (B, S, P, 2C) or None.
        """
        c = self.config
        B, S, _, H, W = images.shape
        keep = set(range(c.depth)) if keep_layers is None else {i % c.depth for i in keep_layers}
        tick = tick or (lambda: None)
        patch_tokens = self.embed_patches(images)
        tick()
        special = [
            _first_frame_then_rest(self.camera_token, B, S),
            _first_frame_then_rest(self.register_token, B, S),
        ]
        tokens = torch.cat([*special, patch_tokens], dim=1)  # (B*S, P, C)
        P, C = tokens.shape[1:]
        pos = patch_positions(
            B * S, H // c.patch_size, W // c.patch_size, self.patch_start_idx, images.device
        )
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
                        tick()
                    else:
                        tokens = tokens.reshape(B, S * P, C)
                        tokens = self._run_block(self.global_blocks[idx], tokens, global_pos)
                        global_out.append(tokens.reshape(B, S, P, C))
                        tick()
            for j in range(c.aa_block_size):
                idx = step * c.aa_block_size + j
                outputs.append(torch.cat([frame_out[j], global_out[j]], dim=-1) if idx in keep else None)
        return outputs, self.patch_start_idx

    # ------------------------------------------------------------------ fast inference path
    def _embed_patches_fast(self, frames: Tensor, plan: ExecutionPlan, pos_embed: Tensor | None) -> Tensor:
        """frames: (N, 3, H, W) in [0, 1] -> float32 patch tokens (N, H/p * W/p, C), as :meth:`embed_patches`."""
        mean = torch.tensor(IMAGENET_MEAN, device=frames.device, dtype=frames.dtype).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=frames.device, dtype=frames.dtype).view(1, 3, 1, 1)
        frames = (frames - mean) / std
        if isinstance(self.patch_embed, DinoVisionTransformer):
            return self.patch_embed.forward_fast(frames, plan.dtype, plan.token_chunk, pos_embed)
        proj = self.patch_embed.proj
        weight, bias = proj.weight.to(plan.dtype), None if proj.bias is None else proj.bias.to(plan.dtype)
        out = F.conv2d(frames.to(plan.dtype), weight, bias, stride=proj.stride)
        return out.flatten(2).transpose(1, 2).float()

    def forward_fast(
        self,
        images: Tensor,
        keep_layers: Iterable[int],
        plan: ExecutionPlan,
        tick: Callable[[], None] | None = None,
    ) -> tuple[list[Tensor | None], int]:
        """Inference-only equivalent of :meth:`forward` (see :mod:`vggtkit.inference`).

        The float32 token stream (B, S, P, C) is updated in place block after block; the patch embedder and frame
        blocks run ``plan.embed_chunk`` / ``plan.frame_chunk`` frames at a time, every block runs its attention
        and MLP ``plan.token_chunk`` tokens at a time, and only ``keep_layers`` are written out, into
        preallocated (B, S, P, 2C) buffers of ``plan.store_dtype``; the last block runs in place in its kept layer
        when that is float32.

        Args:
            images: (B, S, 3, H, W) in [0, 1].
            keep_layers: output indices to keep (the others are None).
            tick: called after the patch embedder and after each block.
        """
        c = self.config
        B, S, _, H, W = images.shape
        psi, C = self.patch_start_idx, c.embed_dim
        grid_h, grid_w = H // c.patch_size, W // c.patch_size
        P, n = psi + grid_h * grid_w, B * S
        keep = {i % c.depth for i in keep_layers}
        tick = tick or (lambda: None)

        tokens = torch.empty(B, S, P, C, device=images.device, dtype=torch.float32)
        tokens[:, 0, 0] = self.camera_token[0, 0, 0]
        tokens[:, 1:, 0] = self.camera_token[0, 1, 0]
        tokens[:, 0, 1:psi] = self.register_token[0, 0]
        tokens[:, 1:, 1:psi] = self.register_token[0, 1]
        flat = tokens.view(n, P, C)  # the patch embedder's view; the blocks take their own
        frames = images.reshape(n, 3, H, W)
        pos_embed = None
        if isinstance(self.patch_embed, DinoVisionTransformer):
            pos_embed = self.patch_embed.interpolate_pos_encoding(grid_h, grid_w, torch.float32)
        for f0 in range(0, n, plan.embed_chunk):
            flat[f0 : f0 + plan.embed_chunk, psi:] = self._embed_patches_fast(
                frames[f0 : f0 + plan.embed_chunk], plan, pos_embed
            )
        del pos_embed, flat
        tick()

        positions = patch_positions(1, grid_h, grid_w, psi, images.device)[0]
        frame_rope = rope_tables(self.rope, positions, C // c.num_heads, plan.dtype)
        global_rope = frame_rope.repeat(S) if S > 1 else frame_rope
        outputs: list[Tensor | None] = [None] * c.depth

        def store(idx: int, half: slice) -> None:
            if idx not in keep:
                return
            if outputs[idx] is None:
                outputs[idx] = torch.empty(B, S, P, 2 * C, device=images.device, dtype=plan.store_dtype)
            outputs[idx][..., half].copy_(tokens)

        final = (c.depth - 1, c.aa_order[-1])  # the block that runs last
        for step in range(c.depth // c.aa_block_size):
            for kind in c.aa_order:
                for j in range(c.aa_block_size):
                    idx = step * c.aa_block_size + j
                    half = slice(0, C) if kind == "frame" else slice(C, 2 * C)
                    in_place = (idx, kind) == final and idx in keep and plan.store_dtype == torch.float32
                    if in_place:
                        # Nothing reads the token stream after the last block: run it on its copy in the kept
                        # layer and free the stream, one (B, S, P, C) float32 tensor less at the peak.
                        store(idx, half)
                        tokens = outputs[idx][..., half]
                    if plan.release_memory and idx == c.depth - 1:
                        # The last layer holds every kept layer at once: the forward pass's peak so far.
                        release_free_memory()
                    block = (self.frame_blocks if kind == "frame" else self.global_blocks)[idx]
                    weights = prepare_block(block, plan.dtype)
                    if kind == "frame":
                        per_frame = tokens.view(n, P, C)
                        for f0 in range(0, n, plan.frame_chunk):
                            x = per_frame[f0 : f0 + plan.frame_chunk]
                            block_forward_(block, x, frame_rope, plan.token_chunk, plan.dtype, weights)
                        del per_frame, x
                    else:
                        sequences = tokens.view(B, S * P, C)
                        for b in range(B):
                            x = sequences[b : b + 1]
                            block_forward_(block, x, global_rope, plan.token_chunk, plan.dtype, weights)
                        del sequences, x
                    if not in_place:
                        store(idx, half)
                    del weights
                    tick()
        return outputs, psi
