"""The library entry points: ``vggtkit.refine(...)``, alignment as an option, ``export_refined``."""

from __future__ import annotations

import json

import numpy as np
import pycolmap
import pytest

import vggtkit
from vggtkit.reconstruction import Reconstruction
from vggtkit.refine import REFINED_PREDICTIONS, AlignOptions, RefineOptions, RefineResult, export_refined
from vggtkit.viewer.settings import REFINED
from vggtkit.viewer.source import VARIANT_FILES


def test_refined_file_is_the_one_the_viewer_shows() -> None:
    assert VARIANT_FILES[REFINED] == REFINED_PREDICTIONS


def test_package_call_refines(perturbed, truth) -> None:
    from _refine_scenes import rotation_errors

    options = RefineOptions(
        alignment=AlignOptions(distance=("view_0.png", "view_2.png", 5.0)),
        matching=vggtkit.refine.MatchOptions(),  # the package's names stay reachable through the callable
    )
    result = vggtkit.refine(perturbed, options)
    assert isinstance(result, RefineResult) and result.report.status == "refined"
    assert result.report.alignment["kind"] == "distance"
    centres = -np.einsum(
        "sji,sj->si", result.reconstruction.extrinsic[:, :, :3], result.reconstruction.extrinsic[:, :, 3]
    )
    assert np.linalg.norm(centres[0] - centres[2]) == pytest.approx(5.0)
    assert rotation_errors(result.reconstruction.extrinsic, truth[0]).mean() < 0.5


def test_unknown_alignment_names_fail_before_the_work(perturbed) -> None:
    options = RefineOptions(alignment=AlignOptions(positions={"a.png": [0, 0, 0], "view_1.png": [1, 0, 0]}))
    with pytest.raises(ValueError, match="at least 3 cameras"):
        vggtkit.refine(perturbed, options)


def test_export_refined_writes_what_tools_read(refined, tmp_path) -> None:
    results = export_refined(refined, tmp_path, "npz,colmap,cameras")
    assert set(results) == {"refined", "colmap", "cameras"}
    assert json.loads((tmp_path / "refine.json").read_text())["status"] == refined.report.status
    again = Reconstruction.load_npz(tmp_path / REFINED_PREDICTIONS)
    np.testing.assert_allclose(again.extrinsic, refined.reconstruction.extrinsic)
    assert not (tmp_path / "predictions.npz").exists()
    model = pycolmap.Reconstruction(str(tmp_path / "sparse" / "0"))
    assert model.num_points3D() == len(refined.tracks) and results["colmap"].points == len(refined.tracks)
    assert {img.name for img in model.images.values()} == {p.name for p in (tmp_path / "images").iterdir()}


def test_export_after_failed_refinement_is_the_feed_forward_one(scene, truth, tmp_path) -> None:
    from _refine_scenes import make_reconstruction

    poses, K, depth = truth
    result = vggtkit.refine(make_reconstruction({"images": scene["images"][:1]}, poses[:1], K[:1], depth[:1]))
    assert result.report.status == "feed-forward"
    (tmp_path / REFINED_PREDICTIONS).write_bytes(b"stale")
    results = export_refined(result, tmp_path, "colmap")
    assert not (tmp_path / REFINED_PREDICTIONS).exists()  # the viewer shows no refined set
    assert results["refined"].files == (tmp_path / "refine.json",)
    assert pycolmap.Reconstruction(str(tmp_path / "sparse" / "0")).num_images() == 1
