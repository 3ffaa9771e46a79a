"""What an exported ONNX file says about itself: the model configuration, the image size, precision and heads.

Stored as one JSON string under the key ``vggtkit`` of the ONNX model's ``metadata_props``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from vggtkit.models.vggt.config import VGGTConfig

METADATA_KEY = "vggtkit"
FORMAT_VERSION = 1
# Graph inputs and outputs, named as the PyTorch model's arguments and prediction keys.
IMAGES = "images"
QUERY_POINTS = "query_points"
DENSE_OUTPUTS = ("pose_enc", "depth", "depth_conf", "world_points", "world_points_conf")
TRACK_OUTPUTS = ("track", "vis", "conf")


@dataclass(frozen=True)
class OnnxModelInfo:
    """The description of an exported model.

    Attributes:
        config: the model's configuration (its ``img_size`` is the size it was trained at).
        image_hw: (height, width) of the frames the graph takes.
        dtype: 'float32' or 'float16' (the precision of the aggregator's weights and products).
        tracks: the graph includes the track head (input ``query_points``, outputs ``track``, ``vis``, ``conf``).
    """

    config: VGGTConfig
    image_hw: tuple[int, int]
    dtype: str
    tracks: bool

    @property
    def outputs(self) -> tuple[str, ...]:
        """The graph's output names, in order: the enabled heads' keys."""
        c = self.config
        wanted = {
            "pose_enc": c.enable_camera,
            "depth": c.enable_depth,
            "depth_conf": c.enable_depth,
            "world_points": c.enable_point,
            "world_points_conf": c.enable_point,
        }
        names = tuple(name for name in DENSE_OUTPUTS if wanted[name])
        return names + (TRACK_OUTPUTS if self.tracks else ())

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT_VERSION,
                "family": "vggt",
                "config": self.config.to_dict(),
                "image_hw": list(self.image_hw),
                "dtype": self.dtype,
                "tracks": self.tracks,
            }
        )

    @classmethod
    def from_json(cls, text: str, origin: str) -> OnnxModelInfo:
        """Parse the metadata of ``origin`` (a file name, for messages).

        Raises:
            ValueError: not vggtkit metadata, or a format this version does not read.
        """
        try:
            data: dict[str, Any] = json.loads(text)
            if data.get("format") != FORMAT_VERSION or data.get("family") != "vggt":
                raise ValueError(f"format {data.get('format')!r} of family {data.get('family')!r}")
            return cls(
                config=VGGTConfig.from_dict(data["config"]),
                image_hw=(int(data["image_hw"][0]), int(data["image_hw"][1])),
                dtype=str(data["dtype"]),
                tracks=bool(data["tracks"]),
            )
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise ValueError(
                f"{origin} has unreadable vggtkit metadata ({exc}); export it again with this version of vggtkit"
            ) from exc
