"""Procedural multi-view scenes with exact ground truth, rendered by :mod:`vggtkit.data.raycast`.

A scene is a textured room (floor, walls, ceiling) holding a cluster of boxes and spheres; S cameras move on
an arc around the cluster with jittered look-at targets, roll, radius and focal length. Each sample is the
dict a real dataset gives (see :func:`render_scene`). Everything is a deterministic function of the seed.

Example:
    >>> from vggtkit.data.synthetic import SyntheticSceneConfig, render_scene
    >>> sample = render_scene(SyntheticSceneConfig(num_frames=4, image_size=(56, 56)), seed=7)
    >>> sample["images"].shape
    torch.Size([4, 3, 56, 56])
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from importlib import resources
from typing import Any

import torch
from torch import Tensor

from vggtkit.data.raycast import Scene, render_view
from vggtkit.data.textures import random_texture
from vggtkit.data.tracks import make_tracks

HELDOUT_FILE = "heldout_synthetic.json"  # in vggtkit/assets/


_RANGE_FIELDS = ("image_size", "num_boxes", "num_spheres", "fov_deg", "arc_deg", "distance", "elevation_deg")


def _as_range(name: str, value: Any) -> tuple:
    """A (min, max) pair as a tuple; raises ValueError naming the field otherwise."""
    value = tuple(value)
    if len(value) != 2:
        raise ValueError(f"{name} must have two entries, got {value!r}")
    if value[0] > value[1]:
        raise ValueError(f"{name} must be (min, max) with min <= max, got {value!r}")
    return value


@dataclass(frozen=True)
class SyntheticSceneConfig:
    """Settings of the scene generator.

    Attributes:
        num_frames: cameras (frames) per scene, S >= 1.
        image_size: (H, W) in pixels.
        supersample: colour samples per pixel axis (anti-aliasing).
        num_boxes, num_spheres: inclusive (min, max) object counts.
        fov_deg: inclusive (min, max) horizontal field of view in degrees.
        arc_deg: (min, max) total azimuth swept by the trajectory, degrees (direction random).
        distance: (min, max) camera distance from the look-at target, scene units.
        elevation_deg: (min, max) camera elevation above the target, degrees.
        num_tracks: query points sampled in frame 0 for the point tracks (0 disables tracks).
        photo_probability: chance that a surface gets a photograph rather than a procedural texture.
        pan_probability: chance that the camera pans from one position (a pure rotation through half the arc)
            instead of orbiting the objects.
    """

    num_frames: int = 4
    image_size: tuple[int, int] = (112, 112)
    supersample: int = 2
    num_boxes: tuple[int, int] = (2, 5)
    num_spheres: tuple[int, int] = (1, 3)
    fov_deg: tuple[float, float] = (45.0, 75.0)
    arc_deg: tuple[float, float] = (15.0, 90.0)
    distance: tuple[float, float] = (2.6, 4.2)
    elevation_deg: tuple[float, float] = (8.0, 40.0)
    num_tracks: int = 256
    photo_probability: float = 0.5
    pan_probability: float = 0.0

    def __post_init__(self) -> None:
        for name in _RANGE_FIELDS:
            object.__setattr__(self, name, _as_range(name, getattr(self, name)))
        self._validate()

    def _validate(self) -> None:
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}")
        if min(self.image_size) < 8:
            raise ValueError(f"image_size must be at least 8x8 pixels, got {self.image_size}")
        if self.supersample < 1:
            raise ValueError(f"supersample must be >= 1, got {self.supersample}")
        if self.num_boxes[0] < 0 or self.num_spheres[0] < 0 or self.num_tracks < 0:
            raise ValueError("object and track counts must be >= 0")
        if not (self.fov_deg[0] >= 1.0 and self.fov_deg[1] < 170.0):
            raise ValueError(f"fov_deg must lie in [1, 170), got {self.fov_deg}")
        if self.distance[0] <= 0:
            raise ValueError(f"distance must be positive, got {self.distance}")
        for name in ("photo_probability", "pan_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SyntheticSceneConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown SyntheticSceneConfig field(s) {unknown}; known: {sorted(known)}")
        return cls(**d)


# ----------------------------------------------------------------------------- random helpers
def _uniform(gen: torch.Generator, low: float, high: float, size: tuple[int, ...] = ()) -> Tensor:
    return low + (high - low) * torch.rand(size, generator=gen)


def _randint(gen: torch.Generator, low: int, high: int) -> int:
    """Uniform integer in [low, high] (inclusive)."""
    return int(torch.randint(low, high + 1, (1,), generator=gen))


# ----------------------------------------------------------------------------- scene
def sample_scene(gen: torch.Generator, config: SyntheticSceneConfig) -> Scene:
    """Draw a room with a cluster of boxes and spheres standing on (or floating above) the floor."""
    half_x, half_y = float(_uniform(gen, 4.5, 7.0)), float(_uniform(gen, 4.5, 7.0))
    height = float(_uniform(gen, 3.0, 4.5))
    n_boxes = _randint(gen, *config.num_boxes)
    n_spheres = _randint(gen, *config.num_spheres)
    n_textures = 6 + n_boxes + n_spheres
    textures = torch.stack([random_texture(gen, config.photo_probability) for _ in range(n_textures)])

    box_half = _uniform(gen, 0.15, 0.55, (n_boxes, 3))
    box_half[:, 2] = _uniform(gen, 0.15, 0.8, (n_boxes,))
    box_center = torch.cat((_uniform(gen, -1.2, 1.2, (n_boxes, 2)), box_half[:, 2:]), dim=-1)
    stacked = torch.rand(n_boxes, generator=gen) < 0.2  # some boxes float or sit on others
    box_center[:, 2] += stacked * _uniform(gen, 0.2, 1.0, (n_boxes,))
    sphere_radius = _uniform(gen, 0.15, 0.5, (n_spheres,))
    sphere_center = torch.cat((_uniform(gen, -1.2, 1.2, (n_spheres, 2)), sphere_radius[:, None]), dim=-1)
    floating = torch.rand(n_spheres, generator=gen) < 0.3
    sphere_center[:, 2] += floating * _uniform(gen, 0.2, 1.2, (n_spheres,))

    azimuth = float(_uniform(gen, 0, 2 * math.pi))
    elevation = float(_uniform(gen, 0.5, 1.3))
    light = torch.tensor(
        [
            math.cos(azimuth) * math.cos(elevation),
            math.sin(azimuth) * math.cos(elevation),
            math.sin(elevation),
        ]
    )
    return Scene(
        room_lo=torch.tensor([-half_x, -half_y, 0.0]),
        room_hi=torch.tensor([half_x, half_y, height]),
        room_material=torch.arange(6),
        room_tile=_uniform(gen, 0.8, 3.0, (6,)),
        box_center=box_center,
        box_half=box_half,
        box_yaw=_uniform(gen, 0, math.pi, (n_boxes,)),
        box_material=6 + torch.arange(n_boxes),
        box_tile=_uniform(gen, 0.3, 1.2, (n_boxes,)),
        sphere_center=sphere_center,
        sphere_radius=sphere_radius,
        sphere_material=6 + n_boxes + torch.arange(n_spheres),
        sphere_tile=torch.randint(1, 4, (n_spheres,), generator=gen).float(),
        textures=textures,
        light_dir=light,
        ambient=float(_uniform(gen, 0.35, 0.6)),
    )


# ----------------------------------------------------------------------------- cameras
def look_at(position: Tensor, target: Tensor, roll: float = 0.0) -> Tensor:
    """OpenCV ``cam_from_world`` (3, 4) of a camera at ``position`` looking at ``target`` with world +z up.

    ``roll`` (radians) turns the image about the optical axis.
    """
    forward = target - position
    forward = forward / forward.norm()
    up = torch.tensor([0.0, 0.0, 1.0])
    right = torch.linalg.cross(forward, up)
    if right.norm() < 1e-6:  # looking straight up or down
        right = torch.tensor([1.0, 0.0, 0.0])
    right = right / right.norm()
    down = torch.linalg.cross(forward, right)
    c, s = math.cos(roll), math.sin(roll)
    right, down = c * right + s * down, -s * right + c * down
    rot = torch.stack((right, down, forward))
    return torch.cat((rot, (-rot @ position)[:, None]), dim=1)


def _rotate_z(vector: Tensor, angle: float) -> Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.stack((c * vector[0] - s * vector[1], s * vector[0] + c * vector[1], vector[2]))


def _free_position(
    gen: torch.Generator, scene: Scene, target: Tensor, az: float, el: float, dist: float
) -> Tensor:
    """A camera position near (azimuth, elevation, distance) from the target, inside the room and outside the
    objects: the jitter is drawn again (up to 20 times) while the position lies inside an object."""
    for _attempt in range(20):
        a = az + float(_uniform(gen, -0.08, 0.08))
        e = el + float(_uniform(gen, -0.05, 0.05))
        d = dist + float(_uniform(gen, -0.15, 0.15))
        offset = torch.tensor([math.cos(a) * math.cos(e), math.sin(a) * math.cos(e), math.sin(e)])
        position = torch.maximum(torch.minimum(target + d * offset, scene.room_hi - 0.3), scene.room_lo + 0.3)
        if not scene.contains(position, margin=0.15):
            break
    return position


def sample_cameras(gen: torch.Generator, scene: Scene, config: SyntheticSceneConfig) -> tuple[Tensor, Tensor]:
    """Cameras on a jittered arc around the object cluster, or (with ``pan_probability``) panning from the
    first camera's position through half the arc.

    Returns:
        (S, 3, 4) ``cam_from_world`` and (S, 3, 3) intrinsics (principal point at (W/2, H/2), square pixels).
    """
    frames = config.num_frames
    height, width = config.image_size
    target = torch.cat((_uniform(gen, -0.4, 0.4, (2,)), _uniform(gen, 0.2, 0.9, (1,))))
    azimuth0 = float(_uniform(gen, 0, 2 * math.pi))
    arc = math.radians(float(_uniform(gen, *config.arc_deg))) * (
        1 if torch.rand(1, generator=gen) < 0.5 else -1
    )
    dist0 = float(_uniform(gen, *config.distance))
    dist1 = float(_uniform(gen, *config.distance))
    elev0 = math.radians(float(_uniform(gen, *config.elevation_deg)))
    elev1 = math.radians(float(_uniform(gen, *config.elevation_deg)))
    fov0 = math.radians(float(_uniform(gen, *config.fov_deg)))
    zooming = bool(torch.rand(1, generator=gen) < 0.3)
    # Drawn only when pans are enabled, so orbit-only settings (the held-out set's) keep their scenes.
    panning = config.pan_probability > 0 and bool(torch.rand(1, generator=gen) < config.pan_probability)
    extrinsics, intrinsics, first = [], [], None
    for k in range(frames):
        s = k / max(frames - 1, 1)
        position = _free_position(
            gen, scene, target, azimuth0 + arc * s, elev0 + (elev1 - elev0) * s, dist0 + (dist1 - dist0) * s
        )
        aim = target + _uniform(gen, -0.25, 0.25, (3,))
        first = position if first is None else first
        if panning:
            position, aim = first, first + _rotate_z(aim - first, arc * s / 2)
        roll = math.radians(float(_uniform(gen, -5.0, 5.0)))
        extrinsics.append(look_at(position, aim, roll))
        fov = fov0 * (float(_uniform(gen, 0.85, 1.15)) if zooming else 1.0)
        focal = (width / 2) / math.tan(min(fov, math.radians(170)) / 2)
        intrinsics.append(torch.tensor([[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]]))
    return torch.stack(extrinsics), torch.stack(intrinsics)


# ----------------------------------------------------------------------------- samples
def render_scene(config: SyntheticSceneConfig, seed: int) -> dict[str, Any]:
    """Generate and render one scene; deterministic in ``(config, seed)``.

    Returns:
        the sample dict (float32 unless noted):
            ``images`` (S, 3, H, W) in [0, 1]; ``depths`` (S, H, W); ``point_masks`` (S, H, W) bool;
            ``extrinsics`` (S, 3, 4) ``cam_from_world``; ``intrinsics`` (S, 3, 3);
            ``cam_points`` and ``world_points`` (S, H, W, 3); ``tracks`` (S, N, 2) pixel (x, y);
            ``track_vis_mask`` (S, N) bool; ``seq_name`` (str); ``seed`` (int).
    """
    gen = torch.Generator().manual_seed(int(seed))
    scene = sample_scene(gen, config)
    extrinsics, intrinsics = sample_cameras(gen, scene, config)
    height, width = config.image_size
    views = [
        render_view(scene, e, k, height, width, config.supersample)
        for e, k in zip(extrinsics, intrinsics, strict=True)
    ]
    images = torch.stack([v["image"] for v in views])
    depths = torch.stack([v["depth"] for v in views])
    masks = torch.stack([v["mask"] for v in views]) & (depths > 1e-8)
    world_points = torch.stack([v["world_points"] for v in views])
    rot, trans = extrinsics[:, :3, :3], extrinsics[:, :3, 3]
    cam_points = torch.einsum("sij,shwj->shwi", rot, world_points) + trans[:, None, None, :]
    tracks, vis = make_tracks(gen, world_points, depths, masks, extrinsics, intrinsics, config.num_tracks)
    return {
        "images": images.clamp(0, 1),
        "depths": depths,
        "point_masks": masks,
        "extrinsics": extrinsics,
        "intrinsics": intrinsics,
        "cam_points": cam_points,
        "world_points": world_points,
        "tracks": tracks,
        "track_vis_mask": vis,
        "seq_name": f"synthetic-{int(seed)}",
        "seed": int(seed),
    }


# ----------------------------------------------------------------------------- held-out set
@dataclass(frozen=True)
class HeldoutSet:
    """The evaluation scenes: generator settings plus seeds (disjoint from the training seeds)."""

    config: SyntheticSceneConfig
    seeds: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "seeds": list(self.seeds)}


def load_heldout_set(path: str | None = None) -> HeldoutSet:
    """The held-out definition shipped in the package (``vggtkit/assets/heldout_synthetic.json``) or ``path``."""
    if path is None:
        text = resources.files("vggtkit").joinpath("assets", HELDOUT_FILE).read_text()
    else:
        with open(path) as handle:
            text = handle.read()
    data = json.loads(text)
    if not isinstance(data, dict) or "seeds" not in data or "config" not in data:
        raise ValueError(f"held-out set definition {path or HELDOUT_FILE} needs 'config' and 'seeds'")
    return HeldoutSet(SyntheticSceneConfig.from_dict(data["config"]), tuple(int(s) for s in data["seeds"]))


# Training seeds start here; held-out seeds lie below it, so the two sets never overlap.
TRAIN_SEED_OFFSET = 1_000_000


class SyntheticDataset(torch.utils.data.Dataset):
    """Map-style dataset of rendered scenes: item ``i`` is the scene with seed ``seed_offset + i``.

    Args:
        config: generator settings.
        length: number of distinct scenes.
        seed_offset: first seed; the default keeps training scenes apart from the held-out seeds.
    """

    def __init__(
        self, config: SyntheticSceneConfig, length: int, seed_offset: int = TRAIN_SEED_OFFSET
    ) -> None:
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        self.config = config
        self.length = length
        self.seed_offset = seed_offset

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        return render_scene(self.config, self.seed_offset + index)
