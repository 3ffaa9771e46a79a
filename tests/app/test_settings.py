"""Demo and view settings: validation, cache keys, the frame selector's choices."""

from __future__ import annotations

import pytest

from vggtkit.app.settings import DemoSettings, ViewSettings, frame_choices, parse_frame_choice
from vggtkit.export.options import ExportOptions


def test_frame_choices_round_trip():
    choices = frame_choices(["a.png", "b.png"])
    assert choices == ["All", "0: a.png", "1: b.png"]
    assert [parse_frame_choice(c) for c in choices] == [None, 0, 1]
    assert parse_frame_choice(None) is None
    with pytest.raises(ValueError, match="'All' or 'N: name'"):
        parse_frame_choice("first")


def test_every_view_setting_changes_the_glb_key():
    base = ViewSettings()
    variants = [
        ViewSettings(conf_threshold=10),
        ViewSettings(frame=1),
        ViewSettings(branch="pointmap"),
        ViewSettings(show_cameras=False),
        ViewSettings(mask_sky=True),
        ViewSettings(mask_black=True),
        ViewSettings(mask_white=True),
    ]
    keys = {v.glb_key() for v in [base, *variants]}
    assert len(keys) == len(variants) + 1
    assert ViewSettings(conf_threshold=50.0).glb_key() == base.glb_key()
    assert ViewSettings(show_cameras=False).ply_key() == base.ply_key()  # cameras are not in the PLY
    assert ViewSettings(frame=1).colmap_key() == base.colmap_key()  # the COLMAP model has every frame


def test_view_from_controls_matches_the_official_labels():
    view = ViewSettings.from_controls(12.5, "2: c.png", "Pointmap Branch", False, False, True, False)
    assert (view.conf_threshold, view.frame, view.branch, view.show_cameras, view.mask_black) == (
        12.5,
        2,
        "pointmap",
        False,
        True,
    )
    options = view.export_options()
    assert type(options) is ExportOptions
    assert (options.conf_threshold, options.frame, options.branch) == (12.5, 2, "pointmap")
    assert (options.mask_black, options.show_cameras) == (True, False)
    with pytest.raises(ValueError, match=r"in \[0, 100\]"):
        ViewSettings(conf_threshold=120)
    with pytest.raises(ValueError, match="confidence threshold must be a number"):
        ViewSettings(conf_threshold="high")


def test_view_settings_are_export_options_plus_the_sky_filter():
    """One declaration of the exporters' fields: the view adds only what the exporters do not have."""
    from dataclasses import fields

    assert issubclass(ViewSettings, ExportOptions)
    added = {f.name for f in fields(ViewSettings)} - {f.name for f in fields(ExportOptions)}
    assert added == {"mask_sky"}
    assert ViewSettings(conf_threshold=33.33333).conf_threshold == 33.333  # stable cache keys
    with pytest.raises(ValueError, match="frame must be"):
        ViewSettings(frame=-1)


def test_demo_settings_validate(tmp_path):
    settings = DemoSettings(workdir_root=tmp_path)
    assert settings.sessions_dir == tmp_path.resolve() / "sessions"
    assert not settings.share_results and settings.expire_seconds == 24 * 3600
    with pytest.raises(ValueError, match="expire_hours must be a number > 0"):
        DemoSettings(workdir_root=tmp_path, expire_hours=0)
    with pytest.raises(ValueError, match="no work folder"):
        _ = DemoSettings().sessions_dir
    with pytest.raises(ValueError, match="max_frames must be an integer >= 1"):
        DemoSettings(workdir_root=tmp_path, max_frames=0)
    with pytest.raises(ValueError, match="sky model not found"):
        DemoSettings(workdir_root=tmp_path, sky_model=tmp_path / "missing.onnx")


def test_gradio_is_imported_only_by_the_ui_module():
    import subprocess
    import sys

    code = (
        "import sys, vggtkit, vggtkit.cli.demo, vggtkit.app, vggtkit.app.controller; "
        "assert 'gradio' not in sys.modules, 'gradio imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
