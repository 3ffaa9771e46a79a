"""model_method on scenes off the model's patch grid: depth and tracks come back in the scene's pixels."""

from __future__ import annotations

import pytest
import torch

from vggtkit import VGGT
from vggtkit.eval import model_method
from vggtkit.models.vggt.config import preset_config

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("size", [56, 62])
def test_tracks_and_depth_are_in_the_scene_pixels_on_and_off_the_patch_grid(size):
    torch.manual_seed(0)
    model = VGGT(preset_config("test-tiny", enable_track=True, track_corr_levels=2, track_corr_radius=2))
    queries = torch.tensor([[10.0, 20.0], [40.0, 30.0]])
    sample = {"images": torch.rand(3, 3, size, size), "tracks": queries.expand(3, 2, 2).clone()}
    pred = model_method(model)(sample)
    assert pred["depth"].shape == (3, size, size)
    assert pred["tracks"].shape == (3, 2, 2) and pred["vis"].shape == (3, 2)
    # the track head starts every frame at the query, and frame 0 stays there: scaled to the model's grid and back
    assert pred["tracks"][0] == pytest.approx(queries.numpy(), abs=1e-3)
