"""Camera head: one pass of a transformer trunk over the camera and register tokens of all frames."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vggtkit.inference.plan import ExecutionPlan
from vggtkit.models.omega.config import NORM_EPS
from vggtkit.models.omega.heads.readout import head_blocks, run_blocks, special_tokens

POSE_ENCODING_DIM = 9  # absT_quaR_FoV: translation (3), quaternion xyzw (4), fov_h, fov_w
MIN_FOV = 0.01  # radians


class CameraHead(nn.Module):
    """Predicts (B, S, 9) pose encodings from the last aggregator layer (keys ``token_norm``, ``trunk.N``,
    ``trunk_norm``, ``camera_branch.{0,2}``).

    The camera and register tokens of all frames of a sequence attend to each other through the trunk; each frame's
    camera token then gives its pose encoding: translation and quaternion as predicted (the quaternion is not
    normalised), fields of view ReLU(x) + 0.01.
    """

    def __init__(
        self, dim_in: int, trunk_depth: int = 4, num_heads: int = 16, mlp_ratio: float = 4.0
    ) -> None:
        super().__init__()
        self.token_norm = nn.LayerNorm(dim_in, eps=NORM_EPS)
        self.trunk = nn.Sequential(*head_blocks(dim_in, trunk_depth, num_heads, mlp_ratio))
        self.trunk_norm = nn.LayerNorm(dim_in, eps=NORM_EPS)
        self.camera_branch = nn.Sequential(
            nn.Linear(dim_in, dim_in // 2), nn.GELU(), nn.Linear(dim_in // 2, POSE_ENCODING_DIM)
        )

    def forward(self, tokens: Tensor, patch_token_start: int, plan: ExecutionPlan | None = None) -> Tensor:
        """Args:
            tokens: the last aggregator layer (B, S, P, 2C), any float dtype.
            patch_token_start: 1 + R, the camera and register tokens per frame.
            plan: token chunks and in-place updates of the trunk (the head runs in its weights' dtype).

        Returns:
            (B, S, 9) float32 pose encodings [t, quat_xyzw, fov_h, fov_w].
        """
        B, S = tokens.shape[:2]
        x = run_blocks(self.trunk, special_tokens(tokens, patch_token_start, self.token_norm), plan)
        camera = x.reshape(B, S, patch_token_start, -1)[:, :, 0]
        return activate_pose(self.camera_branch(self.trunk_norm(camera))).float()


def activate_pose(raw: Tensor) -> Tensor:
    """(..., 9) raw predictions -> pose encodings: translation and quaternion unchanged, fields of view
    ReLU(x) + 0.01."""
    return torch.cat([raw[..., :7], F.relu(raw[..., 7:]) + MIN_FOV], dim=-1)
