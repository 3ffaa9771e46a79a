"""A small ray caster in torch for the synthetic scenes: a textured room with boxes and spheres.

Conventions: world frame with +z up (the floor is z = 0); cameras are ``cam_from_world`` (3, 4) in OpenCV axes;
intrinsics in pixels with integer pixel indices at pixel centres (as :func:`vggtkit.geometry.depth_to_cam_points`).
Rays are built with unit camera-z component, so the ray parameter of a hit *is* its depth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from vggtkit.data.textures import sample_textures

_EPS = 1e-4
_INF = float("inf")


@dataclass
class Scene:
    """Geometry and appearance of one synthetic scene (all tensors float32 unless noted).

    Attributes:
        room_lo, room_hi: (3,) opposite corners of the room (an axis-aligned box seen from inside).
        room_material: (6,) long texture index of the faces -x, +x, -y, +y, -z (floor), +z (ceiling).
        room_tile: (6,) texture repeat size of each face, in scene units.
        box_center, box_half: (Nb, 3) centres and half sizes of the boxes (in their own yawed frame).
        box_yaw: (Nb,) rotation of each box about +z, radians.
        box_material: (Nb,) long texture index; box_tile: (Nb,) texture repeat size.
        sphere_center: (Ns, 3); sphere_radius: (Ns,); sphere_material: (Ns,) long; sphere_tile: (Ns,) repeats.
        textures: (M, 3, T, T) texture stack in [0, 1].
        light_dir: (3,) unit direction towards the main light; ambient: scalar ambient light level.
    """

    room_lo: Tensor
    room_hi: Tensor
    room_material: Tensor
    room_tile: Tensor
    box_center: Tensor
    box_half: Tensor
    box_yaw: Tensor
    box_material: Tensor
    box_tile: Tensor
    sphere_center: Tensor
    sphere_radius: Tensor
    sphere_material: Tensor
    sphere_tile: Tensor
    textures: Tensor
    light_dir: Tensor
    ambient: float = 0.45

    def contains(self, point: Tensor, margin: float = 0.0) -> bool:
        """True when ``point`` (3,) lies inside an object (or outside the room), padded by ``margin``."""
        if (point < self.room_lo + margin).any() or (point > self.room_hi - margin).any():
            return True
        if (
            len(self.sphere_radius)
            and ((point - self.sphere_center).norm(dim=-1) < self.sphere_radius + margin).any()
        ):
            return True
        if len(self.box_half):
            local = _to_box_frame(point[None] - self.box_center, self.box_yaw)
            if ((local.abs() < self.box_half + margin).all(-1)).any():
                return True
        return False


@dataclass
class Hits:
    """Nearest intersections of N rays: ``depth`` (N,), ``points`` (N, 3), ``normals`` (N, 3) unit,
    ``material`` (N,) long, ``uv`` (N, 2) texture coordinates and ``valid`` (N,) bool."""

    depth: Tensor
    points: Tensor
    normals: Tensor
    material: Tensor
    uv: Tensor
    valid: Tensor


def _to_box_frame(vec: Tensor, yaw: Tensor) -> Tensor:
    """Rotate (..., Nb, 3) world vectors by -yaw about z (into each box's frame)."""
    c, s = torch.cos(yaw), torch.sin(yaw)
    x, y, z = vec.unbind(-1)
    return torch.stack((c * x + s * y, -s * x + c * y, z), dim=-1)


def _from_box_frame(vec: Tensor, yaw: Tensor) -> Tensor:
    c, s = torch.cos(yaw), torch.sin(yaw)
    x, y, z = vec.unbind(-1)
    return torch.stack((c * x - s * y, s * x + c * y, z), dim=-1)


def _safe(d: Tensor) -> Tensor:
    """Replace exact zeros so the slab divisions give +-inf-like large values instead of NaN."""
    return torch.where(d.abs() < 1e-12, torch.full_like(d, 1e-12), d)


def _other_axes(points: Tensor, axis: Tensor) -> Tensor:
    """(N, 3) points, (N,) axis -> (N, 2) the two coordinates orthogonal to ``axis``."""
    idx = torch.tensor([[1, 2], [0, 2], [0, 1]], device=points.device)[axis]
    return torch.gather(points, 1, idx)


def _intersect_room(scene: Scene, origin: Tensor, direction: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    d = _safe(direction)
    t_hi = (scene.room_hi - origin) / d
    t_lo = (scene.room_lo - origin) / d
    t_exit = torch.where(d > 0, t_hi, t_lo)
    t_exit = torch.where(t_exit > _EPS, t_exit, torch.full_like(t_exit, _INF))
    depth, axis = t_exit.min(dim=-1)
    positive = torch.gather(d, 1, axis[:, None])[:, 0] > 0
    face = 2 * axis + positive.long()
    normals = torch.zeros_like(origin)
    normals.scatter_(1, axis[:, None], torch.where(positive, -1.0, 1.0)[:, None])
    points = origin + depth[:, None] * direction
    uv = _other_axes(points, axis) / scene.room_tile[face][:, None]
    return depth, normals, scene.room_material[face], uv


def _intersect_boxes(
    scene: Scene, origin: Tensor, direction: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    n = origin.shape[0]
    if len(scene.box_half) == 0:
        return torch.full((n,), _INF), torch.zeros(n, 3), torch.zeros(n, dtype=torch.long), torch.zeros(n, 2)
    o = _to_box_frame(origin[:, None] - scene.box_center, scene.box_yaw)  # N, Nb, 3
    d = _safe(_to_box_frame(direction[:, None].expand(-1, len(scene.box_half), -1), scene.box_yaw))
    t1 = (-scene.box_half - o) / d
    t2 = (scene.box_half - o) / d
    t_min, t_max = torch.minimum(t1, t2), torch.maximum(t1, t2)
    t_near, axis = t_min.max(dim=-1)  # N, Nb
    t_far = t_max.min(dim=-1).values
    hit = (t_near <= t_far) & (t_near > _EPS)
    t_near = torch.where(hit, t_near, torch.full_like(t_near, _INF))
    depth, box = t_near.min(dim=-1)  # N
    rows = torch.arange(n)
    axis = axis[rows, box]
    d_box = d[rows, box]
    local_normal = torch.zeros(n, 3)
    sign = -torch.sign(torch.gather(d_box, 1, axis[:, None]))
    local_normal.scatter_(1, axis[:, None], sign)
    normals = _from_box_frame(local_normal, scene.box_yaw[box])
    local_points = o[rows, box] + depth.clamp(max=1e6)[:, None] * d_box
    uv = (
        _other_axes(local_points, axis) + scene.box_half[box].max(-1, keepdim=True).values
    ) / scene.box_tile[box][:, None]
    return depth, normals, scene.box_material[box], uv


def _intersect_spheres(
    scene: Scene, origin: Tensor, direction: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    n = origin.shape[0]
    if len(scene.sphere_radius) == 0:
        return torch.full((n,), _INF), torch.zeros(n, 3), torch.zeros(n, dtype=torch.long), torch.zeros(n, 2)
    oc = origin[:, None] - scene.sphere_center  # N, Ns, 3
    a = (direction * direction).sum(-1, keepdim=True)  # N, 1
    b = (oc * direction[:, None]).sum(-1)
    c = (oc * oc).sum(-1) - scene.sphere_radius**2
    disc = b * b - a * c
    t = (-b - disc.clamp(min=0).sqrt()) / a
    t = torch.where((disc > 0) & (t > _EPS), t, torch.full_like(t, _INF))
    depth, sphere = t.min(dim=-1)
    points = origin + depth.clamp(max=1e6)[:, None] * direction
    normals = (points - scene.sphere_center[sphere]) / scene.sphere_radius[sphere][:, None]
    lon = torch.atan2(normals[:, 1], normals[:, 0]) / (2 * math.pi)
    lat = torch.acos(normals[:, 2].clamp(-1, 1)) / math.pi
    uv = torch.stack((lon, lat), dim=-1) * scene.sphere_tile[sphere][:, None]
    return depth, normals, scene.sphere_material[sphere], uv


def cast_rays(scene: Scene, origin: Tensor, direction: Tensor) -> Hits:
    """Nearest hit of each ray with the room, the boxes and the spheres.

    Args:
        scene: the scene.
        origin: (N, 3) ray origins (world frame, inside the room).
        direction: (N, 3) ray directions (any length; the returned depth is in units of this length).

    Returns:
        the nearest :class:`Hits`.
    """
    candidates = [
        _intersect_room(scene, origin, direction),
        _intersect_boxes(scene, origin, direction),
        _intersect_spheres(scene, origin, direction),
    ]
    depths = torch.stack([c[0] for c in candidates])  # 3, N
    depth, which = depths.min(dim=0)
    rows = torch.arange(origin.shape[0])
    normals = torch.stack([c[1] for c in candidates])[which, rows]
    material = torch.stack([c[2] for c in candidates])[which, rows]
    uv = torch.stack([c[3] for c in candidates])[which, rows]
    valid = torch.isfinite(depth)
    depth = torch.where(valid, depth, torch.zeros_like(depth))
    points = origin + depth[:, None] * direction
    return Hits(depth=depth, points=points, normals=normals, material=material, uv=uv, valid=valid)


def _camera_rays(
    cam_from_world: Tensor, K: Tensor, height: int, width: int, offsets: Tensor
) -> tuple[Tensor, Tensor]:
    """Rays through pixel centres shifted by each (dx, dy) in ``offsets`` (O, 2): (O*H*W, 3) origins, directions."""
    rot, trans = cam_from_world[:3, :3], cam_from_world[:3, 3]
    v, u = torch.meshgrid(
        torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32), indexing="ij"
    )
    u = u[None] + offsets[:, 0, None, None]
    v = v[None] + offsets[:, 1, None, None]
    dirs_cam = torch.stack(((u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)), dim=-1)
    dirs_world = dirs_cam.reshape(-1, 3) @ rot  # R^T d, row-vector form
    origin = (-rot.T @ trans).expand_as(dirs_world)
    return origin, dirs_world


def _shade(scene: Scene, hits: Hits, direction: Tensor) -> Tensor:
    """Lambertian shading of the textured hits: (N, 3) colours in [0, 1]."""
    albedo = sample_textures(scene.textures, hits.material, hits.uv)
    normals = torch.where(((hits.normals * direction).sum(-1, keepdim=True) > 0), -hits.normals, hits.normals)
    diffuse = (normals @ scene.light_dir).clamp(min=0)[:, None]
    fill = 0.5 * (normals @ -scene.light_dir).clamp(min=0)[:, None] * 0.3
    return (albedo * (scene.ambient + (1 - scene.ambient) * diffuse + fill)).clamp(0, 1)


def render_view(
    scene: Scene, cam_from_world: Tensor, K: Tensor, height: int, width: int, supersample: int = 2
) -> dict[str, Tensor]:
    """Render one pinhole view.

    Args:
        scene: the scene.
        cam_from_world: (3, 4) OpenCV extrinsics.
        K: (3, 3) intrinsics in pixels.
        height, width: image size in pixels.
        supersample: colour samples per pixel axis (anti-aliasing); geometry uses the pixel centre.

    Returns:
        dict with ``image`` (3, H, W) in [0, 1], ``depth`` (H, W), ``world_points`` (H, W, 3), ``mask`` (H, W) bool.
    """
    with torch.no_grad():
        centre = torch.zeros(1, 2)
        origin, direction = _camera_rays(cam_from_world, K, height, width, centre)
        hits = cast_rays(scene, origin, direction)
        if supersample > 1:
            steps = (torch.arange(supersample, dtype=torch.float32) + 0.5) / supersample - 0.5
            offsets = torch.stack(torch.meshgrid(steps, steps, indexing="xy"), dim=-1).reshape(-1, 2)
            s_origin, s_direction = _camera_rays(cam_from_world, K, height, width, offsets)
            s_hits = cast_rays(scene, s_origin, s_direction)
            colour = _shade(scene, s_hits, s_direction).reshape(len(offsets), height, width, 3).mean(0)
        else:
            colour = _shade(scene, hits, direction).reshape(height, width, 3)
    return {
        "image": colour.permute(2, 0, 1).contiguous(),
        "depth": hits.depth.reshape(height, width),
        "world_points": hits.points.reshape(height, width, 3),
        "mask": hits.valid.reshape(height, width),
    }
