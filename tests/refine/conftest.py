"""Fixtures of the refinement tests: a rendered scene, its ground truth, a perturbed reconstruction of it."""

from __future__ import annotations

import numpy as np
import pytest
from _refine_scenes import FRAMES, SEED, SIZE, ground_truth, make_reconstruction, noisy_depth, perturb

from vggtkit.data.synthetic import SyntheticSceneConfig, render_scene
from vggtkit.reconstruction import Reconstruction


@pytest.fixture(scope="session")
def scene() -> dict:
    """A rendered scene: 5 views of 224 px."""
    return render_scene(SyntheticSceneConfig(num_frames=FRAMES, image_size=(SIZE, SIZE), num_tracks=0), SEED)


@pytest.fixture(scope="session")
def truth(scene) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The scene's ground truth: poses (frame 0 as world), intrinsics, depth."""
    return ground_truth(scene)


@pytest.fixture(scope="session")
def perturbed(scene, truth) -> Reconstruction:
    """The scene with cameras 3 degrees and 5 % off, focal lengths 5 % too long and noisy depth."""
    poses, K, depth = truth
    K_off = K * np.array([[1.05, 1.0, 1.0], [1.0, 1.05, 1.0], [1.0, 1.0, 1.0]])
    return make_reconstruction(scene, perturb(poses, 3.0, 0.05, seed=1), K_off, noisy_depth(depth, seed=2))


@pytest.fixture(scope="session")
def refined(perturbed):
    """The perturbed scene refined with the default options."""
    from vggtkit.refine import refine

    return refine(perturbed)
