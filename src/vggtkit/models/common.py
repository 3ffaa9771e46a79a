"""Pieces both model families share: input normalisation, the per-frame special tokens, running a block by a plan,
and the layer store that keeps only what the heads read."""

from __future__ import annotations

import torch
import torch.utils.checkpoint
from torch import Tensor

from vggtkit.inference.plan import ExecutionPlan
from vggtkit.layers import Block, RopeTables

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize_images(images: Tensor) -> Tensor:
    """(..., 3, H, W) RGB in [0, 1] -> ImageNet-normalised, in the images' dtype."""
    # Constants rather than buffers: nothing to keep out of the state dict or to re-create after a meta load.
    mean = torch.tensor(IMAGENET_MEAN, device=images.device, dtype=images.dtype).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device, dtype=images.dtype).view(3, 1, 1)
    return (images - mean) / std


def fill_special_tokens_(tokens: Tensor, camera_token: Tensor, register_token: Tensor) -> None:
    """Write each frame's camera and register tokens into tokens (B, S, P, C): slot 0 of the learned (1, 2, n, C)
    tokens for the first frame of every sequence, slot 1 for the other frames."""
    R = register_token.shape[2]
    tokens[:, 0, 0] = camera_token[0, 0, 0]
    tokens[:, 1:, 0] = camera_token[0, 1, 0]
    tokens[:, 0, 1 : 1 + R] = register_token[0, 0]
    tokens[:, 1:, 1 : 1 + R] = register_token[0, 1]


def run_block(
    block: Block, x: Tensor, rope: RopeTables | None, plan: ExecutionPlan, batch_chunk: int | None = None
) -> Tensor:
    """``block`` on x (B, N, C) as the plan says: its precision, token chunks and in-place updates, and gradient
    checkpointing when the plan asks for it and gradients are recorded."""
    kwargs = dict(
        dtype=plan.dtype, token_chunk=plan.token_chunk, batch_chunk=batch_chunk, in_place=plan.in_place
    )
    if plan.gradient_checkpointing and torch.is_grad_enabled():
        return torch.utils.checkpoint.checkpoint(block, x, rope, use_reentrant=False, **kwargs)
    return block(x, rope, **kwargs)


class LayerStore:
    """The aggregator outputs the heads read: ``depth`` entries of (B, S, P, 2C), None where not kept.

    Output i concatenates the frame-block-i and the second-kind-block-i results along channels; each half is
    written into a preallocated buffer of the plan's store dtype as soon as its block has run.
    """

    def __init__(self, depth: int, keep: set[int], shape: tuple[int, int, int, int], plan: ExecutionPlan,
                 device: torch.device) -> None:  # fmt: skip
        self.keep = keep
        self.shape = shape
        self.dtype = plan.store_dtype
        self.device = device
        self.outputs: list[Tensor | None] = [None] * depth

    def slot(self, idx: int, half: int) -> Tensor:
        """The (B, S, P, C) half ``half`` (0: frame block, 1: the other) of output ``idx``, allocated on first use."""
        if self.outputs[idx] is None:
            B, S, P, C = self.shape
            self.outputs[idx] = torch.empty(B, S, P, 2 * C, device=self.device, dtype=self.dtype)
        C = self.shape[-1]
        return self.outputs[idx][..., half * C : (half + 1) * C]

    def store(self, idx: int, half: int, tokens: Tensor) -> None:
        """Copy the token stream (B, S, P, C) into output ``idx`` when it is kept."""
        if idx in self.keep:
            self.slot(idx, half).copy_(tokens)
