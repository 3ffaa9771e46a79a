"""The viewer's control panel (viser GUI inputs), read into and written from :class:`ViewSettings`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vggtkit.viewer.settings import PREDICTED, ViewSettings

__all__ = ["BUDGETS", "ALL_FRAMES", "BRANCH_LABELS", "Controls", "SceneFacts", "budget_label"]

BUDGETS: tuple[int | None, ...] = (
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_000_000,
    4_000_000,
    8_000_000,
    None,
)
ALL_FRAMES = "All frames"
BRANCH_LABELS = {"depth": "Depth + cameras", "pointmap": "Point map"}


def budget_label(budget: int | None) -> str:
    """``1_000_000`` -> "1 M", ``250_000`` -> "250 k", None -> "all"."""
    if budget is None:
        return "all"
    if budget >= 1_000_000 and budget % 100_000 == 0:
        return f"{budget / 1_000_000:g} M"
    if budget >= 1_000 and budget % 1_000 == 0:
        return f"{budget // 1_000} k"
    return str(budget)


@dataclass(frozen=True)
class SceneFacts:
    """What the controls offer: camera sets, frame names, whether a point map and sky masks exist."""

    camera_sets: tuple[str, ...]
    frame_names: tuple[str, ...]
    has_pointmap: bool
    has_sky: bool


class Controls:
    """Creates the GUI inputs and converts between them and :class:`ViewSettings`.

    Args:
        gui: a viser ``GuiApi`` (``server.gui``).
        facts: what the scene offers.
        initial: the values shown first.
        on_change: called (from viser's threads) after any input changes.
        on_save: called when "Save PLY" is clicked, with viser's click event.
    """

    def __init__(
        self,
        gui: Any,
        facts: SceneFacts,
        initial: ViewSettings,
        on_change: Callable[[], None],
        on_save: Callable[[Any], None],
    ) -> None:
        self._facts = facts
        self._frames = {ALL_FRAMES: None} | {f"{i}: {name}": i for i, name in enumerate(facts.frame_names)}
        budgets = sorted({b for b in (*BUDGETS, initial.max_points) if b is not None}) + [None]
        self._budgets = {budget_label(b): b for b in budgets}
        self._branches = {BRANCH_LABELS["depth"]: "depth"}
        if facts.has_pointmap:
            self._branches[BRANCH_LABELS["pointmap"]] = "pointmap"
        self.check(initial)
        self.status = gui.add_markdown("Loading ...")
        self._inputs = self._add_inputs(gui, initial)
        for handle in self._inputs.values():
            handle.on_update(lambda _event: on_change())
        self.save = gui.add_button(
            "Save PLY",
            hint="write every point that passes the filters (not only the shown sample) as a PLY file",
        )
        self.save.on_click(on_save)

    def _add_inputs(self, gui: Any, s: ViewSettings) -> dict[str, Any]:
        inputs = {}
        if len(self._facts.camera_sets) > 1:
            inputs["cameras"] = gui.add_dropdown("Cameras", self._facts.camera_sets, initial_value=s.cameras)
            inputs["compare_cameras"] = gui.add_checkbox(
                "Compare cameras", s.compare_cameras, hint="also draw the other camera set, in grey"
            )
        inputs["conf_threshold"] = gui.add_slider(
            "Confidence percentile",
            0.0,
            99.5,
            0.5,
            float(s.conf_threshold),
            hint="drop this share of the points",
        )
        inputs["frame"] = gui.add_dropdown(
            "Frame", tuple(self._frames), initial_value=self._frame_label(s.frame)
        )
        inputs["branch"] = gui.add_dropdown(
            "Points from", tuple(self._branches), initial_value=BRANCH_LABELS[s.branch]
        )
        inputs["mask_black"] = gui.add_checkbox("Mask black background", s.mask_black)
        inputs["mask_white"] = gui.add_checkbox("Mask white background", s.mask_white)
        inputs["mask_sky"] = gui.add_checkbox(
            "Mask sky",
            s.mask_sky,
            disabled=not self._facts.has_sky,
            hint=None if self._facts.has_sky else "needs a sky-segmentation model when the viewer starts",
        )
        inputs["point_size"] = gui.add_slider("Point size", 0.1, 5.0, 0.1, float(s.point_size))
        inputs["max_points"] = gui.add_dropdown(
            "Point budget",
            tuple(self._budgets),
            initial_value=budget_label(s.max_points),
            hint="most points sent to the browser (a random sample of the selected points)",
        )
        inputs["show_cameras"] = gui.add_checkbox("Show cameras", s.show_cameras)
        return inputs

    def _frame_label(self, frame: int | None) -> str:
        return next(label for label, index in self._frames.items() if index == frame)

    def read(self) -> ViewSettings:
        """The settings the inputs show now."""
        v = {name: handle.value for name, handle in self._inputs.items()}
        return ViewSettings(
            conf_threshold=float(v["conf_threshold"]),
            frame=self._frames[v["frame"]],
            branch=self._branches[v["branch"]],
            mask_black=bool(v["mask_black"]),
            mask_white=bool(v["mask_white"]),
            mask_sky=bool(v["mask_sky"]),
            point_size=float(v["point_size"]),
            max_points=self._budgets[v["max_points"]],
            show_cameras=bool(v["show_cameras"]),
            cameras=v.get("cameras", PREDICTED),
            compare_cameras=bool(v.get("compare_cameras", False)),
        )

    def write(self, s: ViewSettings) -> None:
        """Show ``s`` in the inputs (each changed input calls ``on_change``)."""
        values = {
            "conf_threshold": float(s.conf_threshold),
            "frame": self._frame_label(s.frame),
            "branch": BRANCH_LABELS[s.branch],
            "mask_black": s.mask_black,
            "mask_white": s.mask_white,
            "mask_sky": s.mask_sky,
            "point_size": float(s.point_size),
            "max_points": budget_label(s.max_points),
            "show_cameras": s.show_cameras,
            "cameras": s.cameras,
            "compare_cameras": s.compare_cameras,
        }
        for name, handle in self._inputs.items():
            handle.value = values[name]

    def check(self, s: ViewSettings) -> None:
        """Raise ValueError if the controls cannot show ``s`` (a frame, branch, budget or set they do not offer)."""
        if s.frame is not None and s.frame >= len(self._facts.frame_names):
            raise ValueError(f"frame {s.frame} is out of range: frames 0..{len(self._facts.frame_names) - 1}")
        if s.branch not in self._branches.values():
            raise ValueError("this reconstruction has no point map (the model has no point head)")
        if budget_label(s.max_points) not in self._budgets:
            raise ValueError(
                f"point budget {s.max_points} is not offered; choose one of {', '.join(self._budgets)}"
            )
        if s.cameras not in self._facts.camera_sets:
            raise ValueError(f"no '{s.cameras}' cameras; available: {', '.join(self._facts.camera_sets)}")
        if s.mask_sky and not self._facts.has_sky:
            raise ValueError("the sky mask needs a sky-segmentation model, and none was given")
