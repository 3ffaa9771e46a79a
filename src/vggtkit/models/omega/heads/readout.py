"""What the camera and text alignment heads share: the camera and register tokens of the last aggregator layer,
and blocks run by the execution plan."""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor, nn

from vggtkit.inference.plan import ExecutionPlan
from vggtkit.layers import Block
from vggtkit.models.omega.config import LAYERSCALE_INIT, NORM_EPS


def head_blocks(dim: int, depth: int, num_heads: int, mlp_ratio: float) -> list[Block]:
    """``depth`` blocks of a head: LayerScale, masked query/key/value bias, no q/k norm, no RoPE."""
    return [
        Block(dim, num_heads, mlp_ratio, LAYERSCALE_INIT, norm_eps=NORM_EPS, bias_mask=True)
        for _ in range(depth)
    ]


def special_tokens(tokens: Tensor, patch_token_start: int, norm: nn.LayerNorm) -> Tensor:
    """The normalised camera and register tokens of all frames, frame-major: (B, S, P, D) -> (B, S*(1+R), D),
    in the dtype of the head's weights."""
    B, S = tokens.shape[:2]
    special = tokens[:, :, :patch_token_start].to(norm.weight.dtype)
    return norm(special).reshape(B, S * patch_token_start, -1)


def run_blocks(blocks: Iterable[Block], x: Tensor, plan: ExecutionPlan | None) -> Tensor:
    """The blocks on x (B, N, D) in x's dtype, with the plan's token chunks and in-place updates."""
    plan = plan or ExecutionPlan()
    for block in blocks:
        x = block(x, None, token_chunk=plan.token_chunk, in_place=plan.in_place)
    return x
