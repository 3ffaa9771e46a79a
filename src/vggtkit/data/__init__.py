"""Training and evaluation data: synthetic scenes with exact ground truth, scene folders, COLMAP models,
ground-truth normalisation and augmentations. Every source yields the same sample dict (see
:func:`vggtkit.data.synthetic.render_scene`)."""

from __future__ import annotations

from vggtkit.data.colmap_reader import ColmapView, read_colmap_model
from vggtkit.data.normalize import normalize_batch
from vggtkit.data.scene_folder import SceneFolderCollection, load_scene_folder, save_scene_folder
from vggtkit.data.synthetic import (
    HeldoutSet,
    SyntheticDataset,
    SyntheticSceneConfig,
    load_heldout_set,
    render_scene,
)

__all__ = [
    "ColmapView",
    "HeldoutSet",
    "SceneFolderCollection",
    "SyntheticDataset",
    "SyntheticSceneConfig",
    "load_heldout_set",
    "load_scene_folder",
    "normalize_batch",
    "read_colmap_model",
    "render_scene",
    "save_scene_folder",
]
