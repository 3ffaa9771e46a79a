"""Ground-truth normalisation of the official training pipeline (first camera as world, mean-distance scale)."""

from __future__ import annotations

import torch
from torch import Tensor

from vggtkit.geometry import closed_form_inverse_se3

_SCALED_KEYS = ("depths", "cam_points", "world_points")


def _homogeneous(extrinsics: Tensor) -> Tensor:
    if extrinsics.shape[-2:] == (4, 4):
        return extrinsics
    bottom = torch.zeros(*extrinsics.shape[:-2], 1, 4, dtype=extrinsics.dtype, device=extrinsics.device)
    bottom[..., 0, 3] = 1
    return torch.cat((extrinsics, bottom), dim=-2)


def normalize_batch(batch: dict[str, Tensor]) -> tuple[dict[str, Tensor], Tensor]:
    """Express a batch of sequences in its first camera's frame, scaled to unit mean point distance.

    Follows the released training code (``normalize_camera_extrinsics_and_points_batch``):
        1. E_i' = E_i inv(E_0), so frame 0's camera becomes the identity.
        2. World points are mapped into the first camera: X' = R_0 X + t_0.
        3. s = sum(|X'| * mask) / (sum(mask) + 1e-3) over all frames and pixels of a sequence, clamped to
           [1e-6, 1e6].
        4. World points, depths, camera points and the extrinsic translations are divided by s.
        5. NaN and inf become 0.

    Args:
        batch: dict with ``extrinsics`` (B, S, 3, 4), ``world_points`` (B, S, H, W, 3), ``point_masks``
            (B, S, H, W) and optionally ``depths`` (B, S, H, W) and ``cam_points`` (B, S, H, W, 3). Other keys
            are passed through unchanged. Intrinsics are not changed.

    Returns:
        ``(normalised batch, scale)`` with ``scale`` (B,) the divisor of each sequence.
    """
    for key in ("extrinsics", "world_points", "point_masks"):
        if key not in batch:
            raise ValueError(f"normalize_batch needs {key!r} in the batch")
    extrinsics = batch["extrinsics"]
    if extrinsics.ndim != 4 or extrinsics.shape[-2:] not in ((3, 4), (4, 4)):
        raise ValueError(f"extrinsics must be (B, S, 3, 4), got {tuple(extrinsics.shape)}")
    out = dict(batch)
    ext = _homogeneous(extrinsics.double())
    first_inv = closed_form_inverse_se3(ext[:, 0])  # B, 4, 4
    new_ext = ext @ first_inv[:, None]
    first = ext[:, 0]
    points = batch["world_points"].double()
    points = torch.einsum("bij,bshwj->bshwi", first[:, :3, :3], points) + first[:, None, None, None, :3, 3]
    mask = batch["point_masks"].to(points.dtype)
    dist = points.norm(dim=-1)
    dist = torch.where(torch.isfinite(dist), dist, torch.zeros_like(dist))
    scale = (dist * mask).sum(dim=(1, 2, 3)) / (mask.sum(dim=(1, 2, 3)) + 1e-3)
    scale = scale.clamp(1e-6, 1e6)

    def fix(t: Tensor) -> Tensor:
        return torch.nan_to_num(t, nan=0.0, posinf=0.0, neginf=0.0)

    new_ext[:, :, :3, 3] = new_ext[:, :, :3, 3] / scale[:, None, None]
    out["extrinsics"] = fix(new_ext[:, :, :3, :]).to(extrinsics.dtype)
    out["world_points"] = fix(points / scale.view(-1, 1, 1, 1, 1)).to(batch["world_points"].dtype)
    for key in ("depths", "cam_points"):
        if key in batch:
            value = batch[key]
            shape = (-1,) + (1,) * (value.ndim - 1)
            out[key] = fix(value.double() / scale.view(shape)).to(value.dtype)
    return out, scale.to(extrinsics.dtype)
