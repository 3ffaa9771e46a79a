"""A pre-rendered pool of synthetic scenes, cached on disk, so training does not wait for the ray caster."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vggtkit.data.synthetic import SyntheticSceneConfig, render_scene

logger = logging.getLogger(__name__)

POOL_KEYS = ("images", "depths", "point_masks", "extrinsics", "intrinsics", "tracks", "track_vis_mask")


class ScenePool:
    """Scenes held as stacked tensors; ``scene(i)`` returns a sample dict (without point maps).

    Attributes:
        tensors: ``images`` (N, S, 3, H, W) uint8, ``depths`` (N, S, H, W) float32, ``point_masks`` (N, S, H, W)
            bool, ``extrinsics`` (N, S, 3, 4), ``intrinsics`` (N, S, 3, 3), ``tracks`` (N, S, T, 2),
            ``track_vis_mask`` (N, S, T) bool.
        names: N scene names.
    """

    def __init__(self, tensors: dict[str, Tensor], names: Sequence[str]) -> None:
        missing = [k for k in POOL_KEYS if k not in tensors]
        if missing:
            raise ValueError(f"scene pool lacks {missing}")
        self.tensors = tensors
        self.names = list(names)

    def __len__(self) -> int:
        return int(self.tensors["images"].shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.tensors["images"].shape[1])

    def scene(self, index: int) -> dict[str, Any]:
        t = self.tensors
        return {
            "images": t["images"][index].float() / 255.0,
            "depths": t["depths"][index],
            "point_masks": t["point_masks"][index],
            "extrinsics": t["extrinsics"][index],
            "intrinsics": t["intrinsics"][index],
            "tracks": t["tracks"][index],
            "track_vis_mask": t["track_vis_mask"][index],
            "seq_name": self.names[index],
        }


def _pool_key(config: SyntheticSceneConfig, seeds: Sequence[int]) -> str:
    payload = json.dumps({"config": config.to_dict(), "seeds": list(seeds), "version": 1}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def render_pool(
    config: SyntheticSceneConfig,
    seeds: Sequence[int],
    cache_dir: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ScenePool:
    """Render (or load from ``cache_dir``) one scene per seed.

    The cache file name hashes the generator settings and seeds, so a changed config never reuses stale scenes.
    Files are written to a temporary name and renamed.

    Args:
        config: generator settings (``num_frames`` frames per scene).
        seeds: scene seeds.
        cache_dir: folder for ``pool-<hash>.safetensors``; None keeps the pool in memory only.
        progress: called as ``progress(done, total)`` after each scene.
    """
    from safetensors.torch import load_file, save_file

    if not seeds:
        raise ValueError("render_pool needs at least one seed")
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"pool-{_pool_key(config, seeds)}.safetensors"
        if path.is_file():
            logger.info("loading the scene pool from %s", path)
            return ScenePool(load_file(str(path)), [f"synthetic-{s}" for s in seeds])
    parts: dict[str, list[Tensor]] = {k: [] for k in POOL_KEYS}
    for i, seed in enumerate(seeds):
        sample = render_scene(config, int(seed))
        sample["images"] = (sample["images"] * 255).round().to(torch.uint8)
        for key in POOL_KEYS:
            parts[key].append(sample[key])
        if progress is not None:
            progress(i + 1, len(seeds))
    tensors = {k: torch.stack(v).contiguous() for k, v in parts.items()}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        save_file(tensors, str(tmp))
        os.replace(tmp, path)
        logger.info("saved the scene pool (%d scenes) to %s", len(seeds), path)
    return ScenePool(tensors, [f"synthetic-{s}" for s in seeds])
