"""A pre-rendered pool of synthetic scenes, cached on disk, so training does not wait for the ray caster."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vggtkit.data.synthetic import SyntheticSceneConfig, render_scene
from vggtkit.utils.atomic import atomic_path

logger = logging.getLogger(__name__)

POOL_KEYS = ("images", "depths", "point_masks", "extrinsics", "intrinsics")


class ScenePool:
    """Scenes held as stacked tensors; ``scene(i)`` returns a sample dict (without point maps).

    Attributes:
        tensors: ``images`` (N, S, 3, H, W) uint8, ``depths`` (N, S, H, W) float32, ``point_masks`` (N, S, H, W)
            bool, ``extrinsics`` (N, S, 3, 4) ``cam_from_world`` and ``intrinsics`` (N, S, 3, 3). Point tracks
            are not stored: the batches draw them per sequence from depth and cameras.
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
            "seq_name": self.names[index],
        }


def _pool_key(config: SyntheticSceneConfig, seeds: Sequence[int]) -> str:
    payload = json.dumps({"config": config.to_dict(), "seeds": list(seeds), "version": 2}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _render_for_pool(config: SyntheticSceneConfig, seed: int) -> dict[str, Tensor]:
    sample = render_scene(config, int(seed))
    sample["images"] = (sample["images"] * 255).round().to(torch.uint8)
    return {key: sample[key] for key in POOL_KEYS}


def _one_thread() -> None:
    torch.set_num_threads(1)


def _render_all(
    config: SyntheticSceneConfig,
    seeds: Sequence[int],
    workers: int,
    progress: Callable[[int, int], None] | None,
) -> dict[str, Tensor]:
    """Render the scenes in order, in ``workers`` processes (0: in this one)."""
    parts: dict[str, list[Tensor]] = {k: [] for k in POOL_KEYS}
    executor = None
    if workers > 0:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("spawn")
        executor = ProcessPoolExecutor(workers, mp_context=context, initializer=_one_thread)
        scenes = executor.map(_render_for_pool, [config] * len(seeds), seeds, chunksize=8)
    else:
        scenes = (_render_for_pool(config, seed) for seed in seeds)
    try:
        for i, scene in enumerate(scenes):
            for key in POOL_KEYS:
                parts[key].append(scene[key])
            if progress is not None:
                progress(i + 1, len(seeds))
    finally:
        if executor is not None:
            executor.shutdown(cancel_futures=True)
    return {k: torch.stack(v).contiguous() for k, v in parts.items()}


def render_pool(
    config: SyntheticSceneConfig,
    seeds: Sequence[int],
    cache_dir: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 0,
) -> ScenePool:
    """Render (or load from ``cache_dir``) one scene per seed.

    The cache file name hashes the generator settings and seeds, so a changed config never reuses stale scenes.
    Files are written to a temporary name and renamed.

    Args:
        config: generator settings (``num_frames`` frames per scene).
        seeds: scene seeds.
        cache_dir: folder for ``pool-<hash>.safetensors``; None keeps the pool in memory only.
        progress: called as ``progress(done, total)`` after each scene.
        workers: render in this many processes (0: in this one); the scenes are the same either way.
    """
    from safetensors.torch import load_file, save_file

    if not seeds:
        raise ValueError("render_pool needs at least one seed")
    names = [f"synthetic-{s}" for s in seeds]
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"pool-{_pool_key(config, seeds)}.safetensors"
        if path.is_file():
            logger.info("loading the scene pool from %s", path)
            return ScenePool(load_file(str(path)), names)
    tensors = _render_all(config, seeds, workers, progress)
    if path is not None:
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp))
        logger.info("saved the scene pool (%d scenes) to %s", len(seeds), path)
    return ScenePool(tensors, names)
