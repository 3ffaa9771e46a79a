"""Ground-truth point tracks from depth and cameras: frame-0 surface points followed through every frame."""

from __future__ import annotations

import torch
from torch import Tensor

from vggtkit.geometry import project_points


def make_tracks(
    gen: torch.Generator,
    world_points: Tensor,
    depths: Tensor,
    masks: Tensor,
    extrinsics: Tensor,
    intrinsics: Tensor,
    num_tracks: int,
    rel_depth_tol: float = 0.05,
) -> tuple[Tensor, Tensor]:
    """Tracks of frame-0 surface points through all frames, with visibility from a depth test.

    Args:
        gen: random generator (query pixel choice).
        world_points: (S, H, W, 3); depths, masks: (S, H, W); extrinsics: (S, 3, 4); intrinsics: (S, 3, 3).
        num_tracks: N query pixels, drawn among the valid pixels of frame 0.
        rel_depth_tol: a point is visible when its depth matches the rendered depth (nearest pixel) within this
            relative tolerance.

    Returns:
        ``tracks`` (S, N, 2) pixel (x, y) positions and ``track_vis_mask`` (S, N) bool; frame 0 holds the queries.
    """
    frames, height, width = depths.shape
    valid = masks[0].reshape(-1).nonzero()[:, 0]
    if len(valid) == 0 or num_tracks == 0:
        return torch.zeros(frames, 0, 2), torch.zeros(frames, 0, dtype=torch.bool)
    choice = valid[torch.randint(0, len(valid), (num_tracks,), generator=gen)]
    points = world_points[0].reshape(-1, 3)[choice]  # N, 3
    uv, z = project_points(points[None].expand(frames, -1, -1), extrinsics, intrinsics)  # S, N, 2 / S, N
    col = uv[..., 0].round().long()
    row = uv[..., 1].round().long()
    inside = (z > 1e-6) & (col >= 0) & (col < width) & (row >= 0) & (row < height)
    col_c, row_c = col.clamp(0, width - 1), row.clamp(0, height - 1)
    frame_idx = torch.arange(frames)[:, None].expand_as(col)
    rendered = depths[frame_idx, row_c, col_c]
    seen = masks[frame_idx, row_c, col_c]
    visible = inside & seen & ((rendered - z).abs() <= rel_depth_tol * z.abs())
    uv = torch.where(torch.isfinite(uv), uv, torch.zeros_like(uv))
    return uv, visible
