"""The demo's behaviour without a browser: uploads, one model run, cached views, downloads, sessions."""

from __future__ import annotations

import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from _golden import golden_model
from vggtkit.app.controller import NEED_RUN, PROMPT, DemoController, bundled_example_dirs
from vggtkit.app.engine import ModelRunner
from vggtkit.app.settings import DemoSettings, ViewSettings
from vggtkit.pipeline import Reconstruction


@pytest.fixture(scope="module")
def controller(tmp_path_factory, media, resolution) -> DemoController:
    root = tmp_path_factory.mktemp("demo_root")
    settings = DemoSettings(workdir_root=root, max_frames=6, concurrency=2)
    runner = ModelRunner(golden_model(), device="cpu", resolution=resolution)
    return DemoController(settings, runner, [media["two"][0].parent])


def _uploaded(controller, paths) -> dict:
    out = controller.upload(None, None, [str(p) for p in paths], 1.0)
    assert out.ok, out.message
    return out.state


def test_reconstruct_once_then_views_come_from_saved_predictions(controller, media):
    state = _uploaded(controller, media["three"])
    runs = controller.runner.model_runs
    first = controller.reconstruct(state, 0, "crop", ViewSettings())
    assert first.ok, first.message
    assert controller.runner.model_runs == runs + 1
    assert first.message.startswith("Reconstructed 3 frame(s) at 56x42 in ")
    assert "peak process RSS" in first.message and "Reference frame: 0 (img0.png)" in first.message
    assert first.frames == ["img0.png", "img1.png", "img2.png"]
    assert first.view.glb.is_file() and first.view.ply.is_file() and not first.view.cached
    assert Reconstruction.load_npz(first.npz).num_frames == 3
    previews = controller.previews(state)
    assert len(previews) == 6 and all(Path(p).is_file() for p, _ in previews)
    assert [caption for _, caption in previews[:2]] == ["depth 0: img0.png", "confidence 0: img0.png"]
    assert controller.previews(state) == previews  # written once

    mtime = first.view.glb.stat().st_mtime_ns
    views = [
        ViewSettings(conf_threshold=80),
        ViewSettings(frame=1),
        ViewSettings(branch="pointmap"),
        ViewSettings(show_cameras=False),
        ViewSettings(mask_black=True, mask_white=True),
    ]
    paths = {first.view.glb}
    for view in views:
        out = controller.view(state, view)
        assert out.glb is not None, out.message
        assert out.glb not in paths and out.glb.is_file()
        paths.add(out.glb)
    fewer = controller.view(state, ViewSettings(conf_threshold=80)).points
    assert fewer < first.view.points  # a higher percentile keeps fewer points
    again = controller.view(state, ViewSettings())
    assert again.cached and again.glb == first.view.glb and again.glb.stat().st_mtime_ns == mtime
    assert "from the cache" in again.message
    assert controller.runner.model_runs == runs + 1  # no view change ran the model


def test_downloads_hold_what_they_say(controller, media):
    state = _uploaded(controller, media["three"])
    assert controller.reconstruct(state, 1, "crop", ViewSettings()).ok
    assert Reconstruction.load_npz(controller.npz(state)).reference_index == 1
    archive = controller.colmap_zip(state, ViewSettings(conf_threshold=0))
    with zipfile.ZipFile(archive) as zf:
        names = set(zf.namelist())
    assert {"sparse/0/cameras.bin", "sparse/0/images.bin", "sparse/0/points3D.bin"} <= names
    assert {"images/img0.png", "images/img1.png", "images/img2.png"} <= names
    assert controller.colmap_zip(state, ViewSettings(conf_threshold=0)) == archive  # cached


def test_each_session_has_its_own_folder_and_release_removes_it(controller, media):
    a = _uploaded(controller, media["three"])
    b = _uploaded(controller, media["two"])
    assert a["session"] != b["session"]
    assert Path(a["run"]).parent == Path(a["session"])
    controller.release(a)
    assert not Path(a["session"]).exists() and Path(b["session"]).exists()
    with pytest.raises(ValueError, match="is not a folder of this demo"):
        controller.store.check("/etc")
    assert controller.view({"session": "/etc", "run": "/etc"}, ViewSettings()).message == NEED_RUN


def test_new_upload_replaces_the_previous_run(controller, media):
    state = _uploaded(controller, media["three"])
    old_run = Path(state["run"])
    out = controller.upload(state, None, [str(p) for p in media["two"]], 1.0)
    assert out.state["session"] == state["session"] and not old_run.exists()


def test_messages_instead_of_errors(controller, media):
    assert controller.reconstruct(None, 0, "crop", ViewSettings()).message.startswith(
        "Nothing to reconstruct"
    )
    assert controller.view(None, ViewSettings()).message == NEED_RUN
    bad = controller.upload(None, None, [str(media["text"])], 1.0)
    assert not bad.ok and bad.message.startswith("Upload problem: 'notes.txt' is not an image")
    assert bad.state["run"] is None
    too_many = controller.upload(None, None, [str(p) for p in media["three"] + media["two"]] * 2, 1.0)
    assert "exceed this demo's limit of 6 frames" in too_many.message
    empty = controller.upload(None, None, [], 1.0)
    assert empty.ok and empty.message == PROMPT


def test_sky_filter_without_a_model_explains_itself(controller, media):
    state = _uploaded(controller, media["two"])
    assert controller.reconstruct(state, 0, "crop", ViewSettings()).ok
    out = controller.view(state, ViewSettings(mask_sky=True))
    assert out.glb is None and "started without a sky-segmentation model" in out.message
    assert "--" not in out.message  # the page speaks the library's words, not the command line's


def test_clear_removes_the_run(controller, media):
    state = _uploaded(controller, media["two"])
    run = Path(state["run"])
    cleared = controller.clear(state)
    assert cleared["run"] is None and not run.exists() and Path(cleared["session"]).is_dir()


def test_example_loads_like_an_upload(controller):
    out = controller.load_example(None, 0)
    assert out.ok and out.frames == ["img0.png", "img1.png"]
    assert all(Path(f).is_relative_to(controller.settings.examples_dir) for f in out.files)
    assert not controller.load_example(None, 5).ok


def test_two_sessions_reconstruct_at_once(controller, media):
    states = [_uploaded(controller, media["three"]), _uploaded(controller, media["two"])]
    results = [None, None]

    def work(i: int) -> None:
        results[i] = controller.reconstruct(states[i], 0, "crop", ViewSettings())

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.ok for r in results] == [True, True], [r.message for r in results]
    assert [len(r.frames) for r in results] == [3, 2]
    assert [Reconstruction.load_npz(r.npz).num_frames for r in results] == [3, 2]
    assert results[0].view.glb.is_relative_to(states[0]["run"])
    assert results[1].view.glb.is_relative_to(states[1]["run"])


def test_runner_loads_a_checkpoint_folder_and_reports_bad_ones(tiny_checkpoint, tmp_path, resolution):
    runner = ModelRunner(str(tiny_checkpoint), device="cpu", resolution=resolution)
    assert runner.model_runs == 0 and runner.source == str(tiny_checkpoint)
    with pytest.raises(ValueError, match="does not exist|not found|no weights"):
        ModelRunner(str(tmp_path / "missing.safetensors"), device="cpu")


def test_sky_filter_with_a_model_masks_once_per_run(tmp_path, media, monkeypatch, resolution):
    from vggtkit.export import sky

    calls = []

    def fake_masks(rec, model_path):  # the top half of every frame is "sky"
        calls.append(model_path)
        keep = np.ones((rec.num_frames, *rec.model_hw), dtype=bool)
        keep[:, : rec.model_hw[0] // 2] = False
        return keep

    monkeypatch.setattr(sky, "sky_keep_masks", fake_masks)
    model = tmp_path / "skyseg.onnx"
    model.write_bytes(b"not used by the fake")
    settings = DemoSettings(workdir_root=tmp_path / "root", sky_model=model)
    ctl = DemoController(settings, ModelRunner(golden_model(), device="cpu", resolution=resolution))
    state = ctl.upload(None, None, [str(p) for p in media["two"]], 1.0).state
    plain = ctl.reconstruct(state, 0, "crop", ViewSettings(conf_threshold=0)).view
    masked = ctl.view(state, ViewSettings(conf_threshold=0, mask_sky=True))
    assert masked.glb != plain.glb and 0 < masked.points < plain.points
    ctl.view(state, ViewSettings(conf_threshold=10, mask_sky=True))
    assert calls == [model.resolve()]  # computed once, then read from sky_keep.npy


def test_example_discovery(tmp_path):
    from PIL import Image

    scene = tmp_path / "scenes" / "b_scene"  # the scene-folder layout of vggtkit/assets/example
    (scene / "images").mkdir(parents=True)
    (scene / "depths").mkdir()
    for name in ("000.png", "001.png"):
        Image.new("RGB", (32, 32)).save(scene / "images" / name)
        Image.new("I;16", (32, 32)).save(scene / "depths" / name)
    flat = tmp_path / "scenes" / "a_flat"  # images directly in the folder
    flat.mkdir()
    Image.new("RGB", (32, 32)).save(flat / "x.jpg")
    (tmp_path / "scenes" / "empty").mkdir()
    assert bundled_example_dirs(scene) == [scene]  # depths/ is not a scene of its own
    assert bundled_example_dirs(tmp_path / "scenes") == [flat, scene]
    assert bundled_example_dirs(tmp_path / "missing") == []
    for folder in bundled_example_dirs():  # what the package ships, if anything
        assert len(list((folder / "images").iterdir())) >= 2


def test_sessions_are_kept_apart_by_owner(controller, media):
    from vggtkit.app.access import OwnerKeys

    alice, bob = OwnerKeys().throwaway(), OwnerKeys().throwaway()
    a = controller.upload(None, None, [str(p) for p in media["two"]], 1.0, owner=alice).state
    assert Path(a["session"]).parent.name == alice
    again = controller.upload(a, None, [str(p) for p in media["two"]], 1.0, owner=alice).state
    assert again["session"] == a["session"]
    stolen = controller.upload(a, None, [str(p) for p in media["two"]], 1.0, owner=bob).state
    assert Path(stolen["session"]).parent.name == bob and stolen["session"] != a["session"]


def test_stopping_cancels_a_running_reconstruction_before_it_saves(tmp_path, media, resolution):
    """A stop during a reconstruction ends it at its next stage; nothing is written after the stop."""
    from vggtkit.app.controller import STOPPING

    ctl = DemoController(
        DemoSettings(workdir_root=tmp_path), ModelRunner(golden_model(), device="cpu", resolution=resolution)
    )
    state = ctl.upload(None, None, [str(p) for p in media["two"]], 1.0).state
    stages = []

    def progress(stage, done, total):
        stages.append(stage)
        if stage == "inference" and done == 0:
            ctl.stop()

    out = ctl.reconstruct(state, 0, "crop", ViewSettings(), progress)
    assert not out.ok and out.message == STOPPING
    assert "postprocess" not in stages and not (Path(state["run"]) / "predictions.npz").exists()
    assert ctl.wait_idle(1.0)
    assert ctl.upload(None, None, [str(p) for p in media["two"]], 1.0).message == STOPPING
    assert ctl.view(state, ViewSettings()).message == STOPPING


def test_wait_idle_waits_for_a_running_operation(tmp_path, media, resolution):
    ctl = DemoController(
        DemoSettings(workdir_root=tmp_path), ModelRunner(golden_model(), device="cpu", resolution=resolution)
    )
    release = threading.Event()
    entered = threading.Event()

    def slow(stage, done, total):
        entered.set()
        release.wait(10)

    worker = threading.Thread(target=ctl.upload, args=(None, None, [str(media["two"][0])], 1.0, slow))
    worker.start()
    assert entered.wait(10)
    ctl.stop()
    assert not ctl.wait_idle(0.2)  # still inside the upload
    release.set()
    assert ctl.wait_idle(10)
    worker.join()
    assert not any(p.name == "images" for p in (tmp_path / "sessions").rglob("*"))  # cancelled: no frames


def test_expired_sessions_are_deleted_but_not_while_reconstructing(controller, media):
    state = _uploaded(controller, media["two"])
    session = Path(state["session"])
    far_future = time.time() + controller.settings.expire_seconds + 60
    with controller._busy_lock:
        controller._busy.add(Path(state["run"]))
    try:
        assert session not in controller.expire_sessions(now=far_future)
    finally:
        with controller._busy_lock:
            controller._busy.clear()
    assert session in controller.expire_sessions(now=far_future)
    assert not session.exists()
    assert controller.reconstruct(state, 0, "crop", ViewSettings()).message.startswith(
        "Nothing to reconstruct"
    )


def test_runner_resolution_defaults_to_the_checkpoints_img_size():
    from vggtkit import VGGT
    from vggtkit.models.vggt.config import preset_config

    assert ModelRunner(VGGT(preset_config("test-tiny")), device="cpu").resolution == 56
    assert ModelRunner(golden_model(), device="cpu").resolution == 518
    assert ModelRunner(golden_model(), device="cpu", resolution=112).resolution == 112
    with pytest.raises(ValueError, match="multiple of 14"):
        ModelRunner(golden_model(), device="cpu", resolution=100)
    with pytest.raises(ValueError, match="dtype must be one of"):
        ModelRunner(golden_model(), device="cpu", dtype="int8")


def test_library_errors_reach_the_page_in_the_librarys_words(controller, tmp_path):
    """A reconstruction error from the pipeline is shown as it is: it names no command-line flag."""
    from PIL import Image

    wide = tmp_path / "strip.png"
    Image.new("RGB", (2000, 20), (120, 80, 40)).save(wide)
    state = _uploaded(controller, [wide])
    out = controller.reconstruct(state, 0, "crop", ViewSettings())
    assert not out.ok and out.message.startswith("Reconstruction failed: image 'strip.png'")
    assert "too elongated" in out.message and "--" not in out.message


def test_refinement_option_refines_the_cameras_everything_shows(tmp_path, media, resolution):
    """ "Refine with bundle adjustment": the saved predictions (and so every view and download) hold the refined
    cameras, the run folder refine.json; the model runs once."""
    from PIL import Image

    from vggtkit.data.synthetic import SyntheticSceneConfig, render_scene

    sample = render_scene(SyntheticSceneConfig(num_frames=5, image_size=(224, 224), num_tracks=0), 101)
    paths = []
    for i, image in enumerate(sample["images"].numpy()):
        paths.append(tmp_path / f"view_{i}.png")
        Image.fromarray((image.transpose(1, 2, 0) * 255).round().astype(np.uint8)).save(paths[-1])
    settings = DemoSettings(workdir_root=tmp_path / "root", max_frames=6)
    ctl = DemoController(settings, ModelRunner("tiny-synthetic", device="cpu"), [])
    state = _uploaded(ctl, paths)
    plain = ctl.reconstruct(state, 0, "crop", ViewSettings())
    predicted = Reconstruction.load_npz(plain.npz)
    runs = ctl.runner.model_runs
    out = ctl.reconstruct(state, 0, "crop", ViewSettings(), refine=True)
    assert out.ok and ctl.runner.model_runs == runs + 1
    assert "cameras by bundle adjustment" in out.message, out.message
    refined = Reconstruction.load_npz(out.npz)
    assert not np.allclose(refined.extrinsic, predicted.extrinsic, atol=1e-3)
    assert (out.npz.parent / "refine.json").is_file() and out.view.glb.is_file()
    # The COLMAP download is the refined model: its observations are the matched keypoints (original pixels).
    import json
    import zipfile

    import pycolmap

    archive = ctl.colmap_zip(state, ViewSettings(conf_threshold=80))
    assert archive == ctl.cached_colmap_zip(state, ViewSettings())  # one refined model for every view
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(tmp_path / "unzipped")
    model = pycolmap.Reconstruction(str(tmp_path / "unzipped" / "sparse" / "0"))
    report = json.loads((out.npz.parent / "refine.json").read_text())
    assert model.num_images() == 5 and model.num_points3D() == report["num_tracks"] > 0
    # Reconstructed again without refinement: the download is built from the model's cameras again.
    ctl.reconstruct(state, 0, "crop", ViewSettings())
    assert ctl.cached_colmap_zip(state, ViewSettings(conf_threshold=80)) is None


def test_refinement_that_cannot_run_keeps_the_model_cameras(controller, media):
    state = _uploaded(controller, media["three"])
    out = controller.reconstruct(state, 0, "crop", ViewSettings(), refine=True)
    assert out.ok and "Bundle adjustment not possible" in out.message, out.message
    assert out.view.glb.is_file()
