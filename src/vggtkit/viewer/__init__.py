"""An interactive viewer for reconstructions of any size, served to the browser with viser.

Library first: :func:`serve` opens a scene (a run's output folder, a ``predictions.npz`` or a
:class:`~vggtkit.pipeline.Reconstruction`) and returns a :class:`Viewer`; :class:`SceneBuilder` builds what the
browser shows for any :class:`ViewSettings` without a browser. viser is imported only when a viewer starts
(``pip install 'vggtkit[viz]'``).
"""

from __future__ import annotations

from .scene import (
    Frustum,
    SceneBuilder,
    SceneContents,
    SceneLayout,
    budget_mask,
    camera_frusta,
    pixel_priority,
)
from .server import Viewer, serve
from .settings import (
    DEFAULT_MAX_POINTS,
    DEFAULT_PORT,
    DEFAULT_VIEWER_OPTIONS,
    PREDICTED,
    REFINED,
    ViewerOptions,
    ViewSettings,
)
from .source import PREDICTIONS_NAME, VARIANT_FILES, SceneSource, load_predictions

__all__ = [
    "DEFAULT_MAX_POINTS",
    "DEFAULT_PORT",
    "DEFAULT_VIEWER_OPTIONS",
    "PREDICTED",
    "PREDICTIONS_NAME",
    "REFINED",
    "VARIANT_FILES",
    "Frustum",
    "SceneBuilder",
    "SceneContents",
    "SceneLayout",
    "SceneSource",
    "ViewSettings",
    "Viewer",
    "ViewerOptions",
    "budget_mask",
    "camera_frusta",
    "load_predictions",
    "pixel_priority",
    "serve",
]
