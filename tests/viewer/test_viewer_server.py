"""The served viewer without a browser: the scene the server holds follows the controls; saving, ports, errors."""

from __future__ import annotations

import socket
import urllib.request

import pytest

from vggtkit.viewer import REFINED, ViewerOptions, ViewSettings, serve

pytest.importorskip("viser")  # a dev dependency; the library reports its absence with a ValueError

ALL = 144


@pytest.fixture
def viewer(refined_folder):
    with serve(refined_folder, ViewerOptions(port=0, initial=ViewSettings(max_points=50))) as viewer:
        yield viewer


def test_the_page_is_served_and_the_initial_scene_is_shown(viewer):
    with urllib.request.urlopen(viewer.url, timeout=10) as response:
        assert response.status == 200 and b"<html" in response.read(2000).lower()
    assert viewer.url.startswith("http://127.0.0.1:")
    assert viewer.shown_points == 50 and viewer.scene.selected == 72
    assert viewer.visible_frusta() == [f"/cameras/predicted/{i:04d}" for i in range(3)]
    assert viewer.controls.status.content == "**50** of 72 points shown, **3** cameras"


def test_apply_updates_the_served_scene_and_the_controls(viewer):
    viewer.apply(ViewSettings(conf_threshold=0, frame=1, max_points=None))
    assert viewer.shown_points == 48 and viewer.visible_frusta() == ["/cameras/predicted/0001"]
    assert viewer.controls.read() == viewer.settings
    viewer.apply(ViewSettings(conf_threshold=0, show_cameras=False, max_points=100_000))
    assert viewer.shown_points == ALL and viewer.visible_frusta() == []
    viewer.apply(ViewSettings(cameras=REFINED, compare_cameras=True, frame=2))
    assert viewer.visible_frusta() == ["/cameras/refined/0002", "/compare/predicted/0002"]
    with pytest.raises(ValueError, match="out of range"):
        viewer.apply(ViewSettings(frame=3))


def test_a_control_changed_in_a_browser_rebuilds_the_scene(viewer):
    inputs = viewer.controls._inputs  # what viser updates when a browser moves a control
    inputs["frame"].value = "2: view_2.png"
    inputs["conf_threshold"].value = 0.0
    assert viewer.wait_idle(30)
    assert viewer.settings.frame == 2 and viewer.settings.conf_threshold == 0.0
    assert viewer.shown_points == 48 and viewer.visible_frusta() == ["/cameras/predicted/0002"]
    inputs["point_size"].value = 3.0
    assert viewer.wait_idle(30)
    assert viewer.server.scene._handle_from_node_name["/points"].point_size == pytest.approx(
        viewer.scene.point_size
    )
    assert viewer.scene.point_size == pytest.approx(3.0 * viewer.builder.layout.pixel_size)  # 48 of 48 shown


def test_save_ply_writes_every_selected_point_atomically(viewer, refined_folder):
    import trimesh

    viewer.apply(ViewSettings(conf_threshold=50, mask_black=True, max_points=100_000))
    path, count = viewer.save_ply()
    assert path == refined_folder / "view_predicted_depth_conf50_all_noblack.ply"
    assert count == 72 and len(trimesh.load(path).vertices) == 72
    viewer.apply(ViewSettings(conf_threshold=0, max_points=100_000))
    path, count = viewer.save_ply()
    assert count == ALL and len(trimesh.load(path).vertices) == ALL  # all selected points, not the shown 50
    assert sorted(p.name for p in refined_folder.iterdir() if p.suffix != ".npz") == [
        "view_predicted_depth_conf0_all.ply",
        "view_predicted_depth_conf50_all_noblack.ply",
    ]  # no temporary file left


def test_a_set_that_cannot_be_read_is_reported_and_the_view_stays(viewer, refined_folder, caplog):
    (refined_folder / "predictions_refined.npz").write_bytes(b"PK\x03\x04 broken")
    before = viewer.settings
    viewer.controls._inputs["cameras"].value = REFINED
    assert viewer.wait_idle(30)
    assert viewer.settings == before and viewer.controls.read() == before
    assert "cannot show these settings" in caplog.text and "not an npz file" not in caplog.text
    assert "damaged" in caplog.text


def test_no_public_share_tunnel_can_be_requested(viewer):
    import viser

    handlers = viewer.server._websock_server._incoming_handlers
    assert viser._messages.ShareUrlRequest not in handlers


def test_a_busy_port_is_refused_and_stop_frees_the_port(run_folder, free_port):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", free_port))
        busy.listen()
        with pytest.raises(ValueError, match=f"port {free_port} on 127.0.0.1 is busy"):
            serve(run_folder, ViewerOptions(port=free_port))
    viewer = serve(run_folder, ViewerOptions(port=free_port))
    assert viewer.port == free_port
    viewer.stop()
    viewer.stop()  # idempotent
    with socket.socket() as again:
        again.bind(("127.0.0.1", free_port))


def test_a_host_that_cannot_be_listened_on_is_refused(run_folder):
    with pytest.raises(ValueError, match="cannot listen on host"):
        serve(run_folder, ViewerOptions(host="no-such-host.invalid", port=0))


def test_initial_settings_the_scene_cannot_show_are_refused(run_folder):
    with pytest.raises(ValueError, match="sky-segmentation model"):
        serve(run_folder, ViewerOptions(port=0, initial=ViewSettings(mask_sky=True)))
    with pytest.raises(ValueError, match="sky model not found"):
        serve(run_folder, ViewerOptions(port=0, sky_model="missing.onnx"))
