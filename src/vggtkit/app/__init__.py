"""The web demo (``vggtkit demo``): a gradio app around :func:`vggtkit.reconstruct` and the exporters.

``build_demo`` and ``launch_demo`` import gradio (the ``app`` extra) when first used; the rest of this package
(settings, uploads, sessions, the controller) works without it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_demo", "default_checkpoint", "launch_demo", "shutdown_demo"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        try:
            from vggtkit.app import gradio_app
        except ModuleNotFoundError as exc:
            if not (exc.name or "").startswith("gradio"):
                raise
            raise ModuleNotFoundError(
                f"the web demo needs gradio, which is not installed ({exc}): pip install 'vggtkit[app]'"
            ) from exc
        return getattr(gradio_app, name)
    raise AttributeError(f"module 'vggtkit.app' has no attribute {name!r}")
