"""Camera head: iterative refinement of the pose encoding from the camera tokens."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vggtkit.layers import Block, Mlp
from vggtkit.models.vggt.heads.activations import activate_pose

POSE_ENCODING_DIM = 9  # absT_quaR_FoV: translation (3), quaternion xyzw (4), fov_h, fov_w


class CameraHead(nn.Module):
    """Predicts (B, S, 9) pose encodings from the last aggregator layer's camera tokens.

    Each iteration starts again from the normalised camera tokens, modulated (adaLN: shift, scale, gate) by an
    embedding of the current (detached, pre-activation) estimate, and adds a predicted delta to it.
    """

    def __init__(
        self,
        dim_in: int,
        trunk_depth: int = 4,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        init_values: float = 0.01,
    ) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            *(Block(dim_in, num_heads, mlp_ratio, init_values) for _ in range(trunk_depth))
        )
        self.token_norm = nn.LayerNorm(dim_in)
        self.trunk_norm = nn.LayerNorm(dim_in)
        self.empty_pose_tokens = nn.Parameter(torch.zeros(1, 1, POSE_ENCODING_DIM))
        self.embed_pose = nn.Linear(POSE_ENCODING_DIM, dim_in)
        self.poseLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim_in, 3 * dim_in))
        self.adaln_norm = nn.LayerNorm(dim_in, elementwise_affine=False, eps=1e-6)
        self.pose_branch = Mlp(dim_in, dim_in // 2, POSE_ENCODING_DIM)

    def forward(self, tokens: Tensor, num_iterations: int = 4) -> list[Tensor]:
        """tokens: last aggregator output (B, S, P, 2C). Returns ``num_iterations`` activated (B, S, 9), float32."""
        # The head runs in the dtype of its weights (float32 unless converted): it sees one token per frame, so its
        # cost is reading its weights.
        camera_tokens = self.token_norm(tokens[:, :, 0].to(self.token_norm.weight.dtype))  # (B, S, 2C)
        B, S, _ = camera_tokens.shape
        raw: Tensor | None = None
        pose_enc_list = []
        for _ in range(num_iterations):
            if raw is None:
                condition = self.embed_pose(self.empty_pose_tokens.expand(B, S, -1))
            else:
                condition = self.embed_pose(raw.detach())
            shift, scale, gate = self.poseLN_modulation(condition).chunk(3, dim=-1)
            x = gate * (self.adaln_norm(camera_tokens) * (1 + scale) + shift) + camera_tokens
            delta = self.pose_branch(self.trunk_norm(self.trunk(x)))
            raw = delta if raw is None else raw + delta
            pose_enc_list.append(activate_pose(raw).float())
        return pose_enc_list
