"""The track-head source: one model run per query frame (moved to the front), tracks in original pixels.

Plumbing only: no checkpoint with a trained track head exists here, so a random tiny configuration with a
track head stands in, and its tracks are meaningless; the RANSAC check is opened wide to keep them all.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _refine_scenes import ground_truth, make_reconstruction

from vggtkit import VGGT, tiny_config
from vggtkit.data.synthetic import SyntheticSceneConfig, render_scene
from vggtkit.refine import MatchOptions, refine
from vggtkit.refine.correspondences import ClassicalMatcher
from vggtkit.refine.track_head import TrackHeadSource


class _Recorder(torch.nn.Module):
    """Calls the model and remembers the first image of every call."""

    def __init__(self, model: VGGT) -> None:
        super().__init__()
        self.model = model
        self.track_head = model.track_head
        self.first_images: list[torch.Tensor] = []

    def forward(self, images: torch.Tensor, query_points: torch.Tensor) -> dict:
        self.first_images.append(images[0].clone())
        return self.model(images, query_points=query_points)


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = VGGT(tiny_config()).eval()
    sample = render_scene(SyntheticSceneConfig(num_frames=3, image_size=(112, 112), num_tracks=0), 101)
    poses, K, depth = ground_truth(sample)
    return model, make_reconstruction(sample, poses, K, depth)


def test_one_run_per_query_frame(setup) -> None:
    model, rec = setup
    recorder = _Recorder(model)
    loose = MatchOptions(ransac_threshold=1e4, min_pair_matches=8)
    source = TrackHeadSource(recorder, loose, max_query_points=16, vis_threshold=-1.0, conf_threshold=-1.0)
    with torch.inference_mode():
        found = source.find(rec, [0, 2])
    assert found.source == "track-head" and found.query_frames == [0, 2]
    assert len(source.seconds_per_query) == 2
    for frame, first in zip([0, 2], recorder.first_images, strict=True):
        torch.testing.assert_close(first, torch.from_numpy(rec.images[frame]))
    tracks = found.tracks
    assert len(tracks) == 32 and (tracks.lengths() == 3).all()
    keypoints = ClassicalMatcher(loose).features(rec)
    for query in (0, 2):
        own = tracks.xy[tracks.frame == query]
        distance = np.linalg.norm(own[:, None] - keypoints[query].xy[None], axis=2).min(axis=1)
        assert (distance < 1e-4).sum() >= 16  # each query track starts at a keypoint of its query frame
    # Query frame 0 comes first anyway: its tracks are the model's own output for the same query points.
    first = [tracks.xy[(tracks.track == t)][tracks.frame[tracks.track == t].argsort()] for t in range(16)]
    queries = torch.from_numpy(np.stack([xy[0] for xy in first])).float()
    with torch.inference_mode():
        direct = model(torch.from_numpy(rec.images), query_points=queries)["track"][0].numpy()
    np.testing.assert_allclose(np.stack(first, axis=1), direct, atol=1e-4)


def test_refine_with_random_track_head_keeps_feed_forward(setup) -> None:
    model, rec = setup
    result = refine(rec, correspondences=TrackHeadSource(model, max_query_points=16))
    assert result.report.source == "track-head" and len(result.report.frames) == 3
    assert set(np.unique(result.tracks.frame)) <= set(np.nonzero(result.refined)[0])


def test_model_without_track_head() -> None:
    with pytest.raises(ValueError, match="no track head"):
        TrackHeadSource(VGGT(tiny_config(enable_track=False)))
    with pytest.raises(ValueError, match="max_query_points"):
        TrackHeadSource(VGGT(tiny_config()), max_query_points=0)
