"""Opening what `vggtkit reconstruct` wrote: folders, npz files, refined cameras, and every kind of bad input."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from _viewer_scenes import make_reconstruction

from vggtkit.viewer import PREDICTED, REFINED, SceneSource, load_predictions


def test_a_folder_and_its_npz_open_the_same_scene(run_folder):
    from_folder = SceneSource.from_path(run_folder)
    from_file = SceneSource.from_path(run_folder / "predictions.npz")
    assert from_folder.names == from_file.names == [PREDICTED]
    assert from_folder.folder == run_folder and from_file.path == run_folder / "predictions.npz"
    np.testing.assert_array_equal(from_folder.get().depth_conf, make_reconstruction().depth_conf)


def test_refined_cameras_beside_the_predictions_are_found_and_read_when_first_used(refined_folder):
    source = SceneSource.from_path(refined_folder)
    assert source.names == [PREDICTED, REFINED]
    assert REFINED not in source._loaded  # not read until shown
    np.testing.assert_allclose(source.get(REFINED).world_from_cam()[:, 0, 3], [0.05, 0.2, 0.35])
    in_memory = SceneSource.from_reconstruction(make_reconstruction(), folder=refined_folder)
    assert in_memory.names == [PREDICTED, REFINED]


def test_refined_cameras_of_other_frames_are_refused(run_folder):
    make_reconstruction(n_frames=2).save_npz(run_folder / "predictions_refined.npz")
    source = SceneSource.from_path(run_folder)
    with pytest.raises(ValueError, match="same frames"):
        source.get(REFINED)
    with pytest.raises(ValueError, match="no 'refined' cameras"):
        SceneSource.from_reconstruction(make_reconstruction()).get(REFINED)


def test_the_cached_content_mask_cannot_be_changed_by_its_users(rec):
    viewed = SceneSource.from_reconstruction(rec).get()
    viewed.content_mask()[:] = False  # the exports' filters refine the mask in place
    assert viewed.content_mask().all()
    assert viewed.colors() is viewed.colors()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing", "does not exist"),
        (lambda d: d, "no predictions.npz in"),
        (lambda d: _write(d / "notes.npz", b"just text"), "not an npz file"),
        (lambda d: _truncated(d), "is damaged"),
        (lambda d: _other_npz(d), "not a VGGT predictions file"),
    ],
    ids=["missing", "empty-folder", "text-file", "truncated-npz", "other-npz"],
)
def test_bad_input_is_one_clear_value_error(tmp_path, make, message):
    with pytest.raises(ValueError, match=message):
        SceneSource.from_path(make(tmp_path))


def test_a_corrupt_member_of_the_archive_is_reported(tmp_path):
    path = tmp_path / "predictions.npz"
    make_reconstruction().save_npz(path)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("depth_conf.npy")
    start = info.header_offset + 30 + len(info.filename) + 200
    data[start : start + 64] = bytes(64)  # inside depth_conf's data: its CRC no longer matches
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="damaged"):
        load_predictions(path)


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def _truncated(folder):
    path = folder / "predictions.npz"
    make_reconstruction().save_npz(path)
    path.write_bytes(path.read_bytes()[:2000])
    return path


def _other_npz(folder):
    path = folder / "predictions.npz"
    np.savez(path, a=np.zeros(3))
    return folder
