"""Pre-norm transformer block with LayerScale, shared by DINOv2, the aggregator and the camera trunk."""

from __future__ import annotations

from torch import Tensor, nn

from vggtkit.layers.attention import Attention
from vggtkit.layers.layer_scale import LayerScale
from vggtkit.layers.mlp import Mlp
from vggtkit.layers.rope import RotaryPositionEmbedding2D


class Block(nn.Module):
    """x <- x + ls1(attn(norm1(x))); x <- x + ls2(mlp(norm2(x))).

    Keys: ``norm1``, ``attn``, ``ls1``, ``norm2``, ``mlp``, ``ls2``. ``norm_eps`` is 1e-5 for VGGT's own blocks and
    1e-6 inside DINOv2.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        init_values: float | None = None,
        qk_norm: bool = False,
        norm_eps: float = 1e-5,
        rope: RotaryPositionEmbedding2D | None = None,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qk_norm=qk_norm, rope=rope)
        self.ls1 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim, init_values) if init_values else nn.Identity()

    def forward(self, x: Tensor, pos: Tensor | None = None) -> Tensor:
        """x: (B, N, C); pos: (B, N, 2) or None. Returns (B, N, C)."""
        x = x + self.ls1(self.attn(self.norm1(x), pos=pos))
        return x + self.ls2(self.mlp(self.norm2(x)))
