"""Training batches of multi-view sequences drawn from a set of scenes, deterministic per (seed, step, rank).

Each step draws one frame count S (all sequences of a batch share it), then for every sequence a scene, an
ordered subset of S of its frames (reversed with probability 1/2), the scale (zoom) augmentation and colour
jitter. Point maps, and point tracks when asked for, are computed from the (augmented) depth and cameras, so
they always agree with the images the model sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from vggtkit.data.augment import ColorJitter, random_zoom
from vggtkit.data.tracks import make_tracks
from vggtkit.geometry import closed_form_inverse_se3, depth_to_cam_points


class SceneSource(Protocol):
    """Anything that holds scenes: ``len()`` and ``scene(i)`` -> sample dict with at least images (S, 3, H, W),
    depths (S, H, W), point_masks (S, H, W), extrinsics (S, 3, 4), intrinsics (S, 3, 3)."""

    def __len__(self) -> int: ...

    def scene(self, index: int) -> dict[str, Any]: ...


@dataclass(frozen=True)
class BatchOptions:
    """How sequences are drawn: batch size, frame-count range, augmentations, and ``num_tracks`` point tracks
    per sequence (query points drawn among the valid pixels of the sequence's frame 0; 0: no tracks)."""

    batch_size: int = 4
    min_frames: int = 2
    max_frames: int = 6
    reverse_p: float = 0.5
    zoom: tuple[float, float] | None = (0.8, 1.2)
    color_jitter: ColorJitter | None = ColorJitter()
    num_tracks: int = 0

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 1 <= self.min_frames <= self.max_frames:
            raise ValueError(f"need 1 <= min_frames <= max_frames, got {self.min_frames}, {self.max_frames}")
        if self.num_tracks < 0:
            raise ValueError(f"num_tracks must be >= 0, got {self.num_tracks}")


def add_point_maps(sample: dict[str, Any]) -> dict[str, Any]:
    """Fill ``cam_points`` and ``world_points`` (S, H, W, 3) from ``depths``, ``intrinsics`` and ``extrinsics``."""
    cam = depth_to_cam_points(sample["depths"], sample["intrinsics"])
    world_from_cam = closed_form_inverse_se3(sample["extrinsics"])
    world = (
        torch.einsum("sij,shwj->shwi", world_from_cam[:, :3, :3], cam) + world_from_cam[:, None, None, :3, 3]
    )
    sample["cam_points"] = cam
    sample["world_points"] = world
    return sample


def _frame_indices(total: int, frames: int, gen: torch.Generator, reverse_p: float) -> Tensor:
    """An ordered subset of ``frames`` of ``total`` frame indices (with repeats when there are too few),
    reversed with probability ``reverse_p``."""
    if total < frames:
        idx = torch.sort(torch.randint(0, total, (frames,), generator=gen)).values
    else:
        idx = torch.sort(torch.randperm(total, generator=gen)[:frames]).values
    if float(torch.rand(1, generator=gen)) < reverse_p:
        idx = idx.flip(0)
    return idx


def draw_sequence(
    scene: dict[str, Any], frames: int, gen: torch.Generator, options: BatchOptions
) -> dict[str, Any]:
    """An ordered subset of ``frames`` views of one scene, augmented, with point maps (and tracks)."""
    idx = _frame_indices(scene["images"].shape[0], frames, gen, options.reverse_p)
    keys = ("images", "depths", "point_masks", "extrinsics", "intrinsics")
    out: dict[str, Any] = {k: scene[k][idx] for k in keys}
    out["seq_name"] = scene.get("seq_name", "")
    if options.zoom is not None:
        out["images"], out["depths"], out["intrinsics"] = random_zoom(
            out["images"], out["depths"], out["intrinsics"], gen, options.zoom
        )
        out["point_masks"] = out["depths"] > 1e-8
    if options.color_jitter is not None:
        out["images"] = options.color_jitter(out["images"], gen)
    if not out["point_masks"][0].any():
        out["point_masks"] = torch.zeros_like(out["point_masks"])
    out = add_point_maps(out)
    if options.num_tracks:
        out["tracks"], out["track_vis_mask"] = _sequence_tracks(out, gen, options.num_tracks)
    return out


def _sequence_tracks(sequence: dict[str, Any], gen: torch.Generator, count: int) -> tuple[Tensor, Tensor]:
    """``count`` tracks of the sequence's frame-0 points: (S, count, 2) pixels and (S, count) visibility; all
    invisible (so sequences still stack) when frame 0 has no valid pixel."""
    tracks, vis = make_tracks(
        gen,
        sequence["world_points"],
        sequence["depths"],
        sequence["point_masks"],
        sequence["extrinsics"],
        sequence["intrinsics"],
        count,
    )
    if tracks.shape[1] == count:
        return tracks, vis
    frames = sequence["images"].shape[0]
    return torch.zeros(frames, count, 2), torch.zeros(frames, count, dtype=torch.bool)


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack sample dicts (same S, H, W) into a batch; tensors gain a leading B axis, strings become lists."""
    keys = [k for k in samples[0] if all(k in s for s in samples)]
    out: dict[str, Any] = {}
    for key in keys:
        values = [s[key] for s in samples]
        out[key] = torch.stack(values) if isinstance(values[0], Tensor) else values
    return out


class BatchStream:
    """Deterministic stream of training batches: ``batch(step)`` depends only on (seed, step, rank).

    Args:
        source: the scenes.
        options: batch options.
        seed: base seed.
        rank, world_size: data-parallel position; each rank draws different sequences.
    """

    def __init__(
        self, source: SceneSource, options: BatchOptions, seed: int = 0, rank: int = 0, world_size: int = 1
    ) -> None:
        if len(source) == 0:
            raise ValueError("the training set holds no scenes")
        self.source = source
        self.options = options
        self.seed = seed
        self.rank = rank
        self.world_size = world_size

    def batch(self, step: int) -> dict[str, Any]:
        opts = self.options
        # The frame count depends on the step only, so all ranks build batches of equal shape.
        shared = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        frames = int(torch.randint(opts.min_frames, opts.max_frames + 1, (1,), generator=shared))
        gen = torch.Generator().manual_seed((self.seed * 1_000_003 + step) * 64 + self.rank + 1)
        samples = []
        for _ in range(opts.batch_size):
            index = int(torch.randint(0, len(self.source), (1,), generator=gen))
            samples.append(draw_sequence(self.source.scene(index), frames, gen, opts))
        return collate(samples)
