"""VGGT-Omega configuration: one flat, self-validating dataclass whose defaults are the released 512 px model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

# Settings the official code hard-codes (not constructor arguments); a config.json may list them under "fixed".
FIXED: dict[str, Any] = {
    "rope_base": 100,
    "rope_normalize_coords": "max",
    "rope_dtype": "float32",
    "patch_embed_norm_eps": 1e-05,
    "block_norm_eps": 1e-05,
    "qk_norm_eps": 1e-05,
    "qkv_bias": True,
    "mask_k_bias": True,
    "aggregator_qk_norm": True,
    "heads_qk_norm": False,
}
ROPE_BASE = FIXED["rope_base"]
NORM_EPS = FIXED["block_norm_eps"]  # every LayerNorm of the model, DINOv3's included
LAYERSCALE_INIT = 1e-5
HEAD_MLP_RATIO = 4.0  # the camera and text heads' blocks (hard-coded; mlp_ratio is the aggregator's)
PREPROCESS_MODES = ("balanced", "max_size")

_SEQUENCE_FIELDS = (
    "register_attention_block_indices",
    "cached_layer_indices",
    "dense_out_channels",
    "dense_layers",
)


@dataclass(frozen=True)
class VGGTOmegaConfig:
    """Architecture of a VGGT-Omega model. The defaults are the released VGGT-Omega-1B-512.

    The field names are the official constructor arguments (see the specification's section 1); C = embed_dim and
    the heads are 2C wide.

    Aggregator:
        patch_size: patch side in pixels (the patch embedder, the RoPE grid and the dense head's output stride).
        embed_dim: token width C of the patch embedder and the aggregator blocks.
        depth: number of frame blocks (= inter-frame blocks = aggregator layers).
        num_heads: attention heads of the frame and inter-frame blocks.
        mlp_ratio: MLP hidden width of the aggregator blocks, as a multiple of their width (the heads' blocks use
            4, as the official heads hard-code it).
        num_register_tokens: register tokens per frame (R); each frame's tokens are [camera, R registers, patches].
        register_attention_block_indices: inter-frame blocks that attend over the camera and register tokens of
            all frames only (patch tokens skip them); the others attend over all tokens of all frames.
        cached_layer_indices: aggregator layers the model returns (the others are None); the last layer and every
            ``dense_layers`` entry must be among them.
        patch_embed_depth, patch_embed_num_heads, patch_embed_ffn_ratio, patch_embed_n_storage_tokens: the
            DINOv3 patch embedder (width ``embed_dim``).
    Heads:
        camera_trunk_depth, camera_num_heads: the camera head's transformer trunk.
        dense_features, dense_out_channels, dense_layers: the dense (depth) head and the layers it reads.
        text_readout_depth, text_num_heads: the text alignment head's readout blocks.
        enable_camera, enable_depth, enable_alignment: which heads exist (the text alignment head only in the
            256 px text model).
    Preprocessing:
        image_resolution: the resolution the checkpoint was trained at (512, or 256 for the text model): the
            ``balanced`` loader aims at (image_resolution / patch_size)^2 patches per image.
    """

    patch_size: int = 16
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    num_register_tokens: int = 16
    register_attention_block_indices: tuple[int, ...] = (2, 6, 9, 14, 20)
    cached_layer_indices: tuple[int, ...] = (4, 11, 17, 23)
    patch_embed_depth: int = 24
    patch_embed_num_heads: int = 16
    patch_embed_ffn_ratio: float = 4.0
    patch_embed_n_storage_tokens: int = 4
    camera_trunk_depth: int = 4
    camera_num_heads: int = 16
    dense_features: int = 256
    dense_out_channels: tuple[int, int, int, int] = (256, 512, 1024, 1024)
    dense_layers: tuple[int, int, int, int] = (4, 11, 17, 23)
    text_readout_depth: int = 4
    text_num_heads: int = 16
    enable_camera: bool = True
    enable_depth: bool = True
    enable_alignment: bool = False
    image_resolution: int = 512

    @property
    def trained_resolution(self) -> int:
        """The input resolution the checkpoint was trained at (``image_resolution``): the pipeline's default."""
        return self.image_resolution

    def __post_init__(self) -> None:
        # JSON gives lists; the dataclass is frozen and hashable, so store tuples.
        for name in _SEQUENCE_FIELDS:
            value = getattr(self, name)
            if isinstance(value, str) or not hasattr(value, "__iter__"):
                raise ValueError(f"{name} must be a sequence of integers, got {value!r}")
            object.__setattr__(self, name, tuple(int(v) for v in value))
        self._validate_sizes()
        self._validate_layers()

    # ------------------------------------------------------------------ validation
    def _validate_sizes(self) -> None:
        positive = ("patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio", "patch_embed_depth",
                    "patch_embed_num_heads", "patch_embed_ffn_ratio", "camera_trunk_depth", "camera_num_heads",
                    "dense_features", "text_readout_depth", "text_num_heads", "image_resolution")  # fmt: skip
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("num_register_tokens", "patch_embed_n_storage_tokens"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        self._validate_heads()
        if self.patch_size % 4:
            raise ValueError(
                f"patch_size={self.patch_size} must be a multiple of 4 (the dense head's pixel shuffle is patch/4)"
            )
        if self.image_resolution % self.patch_size:
            raise ValueError(
                f"image_resolution={self.image_resolution} is not a multiple of patch_size={self.patch_size}"
            )
        if len(self.dense_out_channels) != 4 or any(c <= 0 for c in self.dense_out_channels):
            raise ValueError(f"dense_out_channels must be 4 positive widths, got {self.dense_out_channels}")
        if self.dense_features % 4:
            raise ValueError(
                f"dense_features must be a multiple of 4 (its position embedding), got {self.dense_features}"
            )
        if not (self.enable_camera or self.enable_depth or self.enable_alignment):
            raise ValueError("at least one head must be enabled")

    def _validate_heads(self) -> None:
        """Attention heads that divide the widths (and, with RoPE, a head size divisible by 4)."""
        for heads_name in ("num_heads", "patch_embed_num_heads"):
            heads = getattr(self, heads_name)
            if self.embed_dim % (4 * heads):
                raise ValueError(
                    f"embed_dim={self.embed_dim} must be a multiple of 4 * {heads_name} = {4 * heads}: the rotary "
                    "embedding turns each head's channels by row and column in pairs"
                )
        for heads_name in ("camera_num_heads", "text_num_heads"):
            if (2 * self.embed_dim) % getattr(self, heads_name):
                raise ValueError(
                    f"the heads' width 2*embed_dim={2 * self.embed_dim} is not divisible by "
                    f"{heads_name}={getattr(self, heads_name)}"
                )

    def _validate_layers(self) -> None:
        def in_range(name: str, values: tuple[int, ...]) -> None:
            for i in values:
                if not 0 <= i < self.depth:
                    raise ValueError(
                        f"{name} entry {i} is out of range for depth={self.depth} (0 .. {self.depth - 1})"
                    )

        in_range("register_attention_block_indices", self.register_attention_block_indices)
        in_range("cached_layer_indices", self.cached_layer_indices)
        if self.depth - 1 not in self.cached_layer_indices:
            raise ValueError(
                f"cached_layer_indices={self.cached_layer_indices} must include the last layer {self.depth - 1} "
                "(the camera and text heads and camera_and_register_tokens read it)"
            )
        if len(self.dense_layers) != 4:
            raise ValueError(f"dense_layers must have exactly 4 entries, got {self.dense_layers}")
        if self.enable_depth:
            missing = [i for i in self.dense_layers if i % self.depth not in self.cached_layer_indices or
                       not -self.depth <= i < self.depth]  # fmt: skip
            if missing:
                raise ValueError(
                    f"dense_layers {missing} are not cached: every layer the dense head reads must be in "
                    f"cached_layer_indices={self.cached_layer_indices}"
                )

    # ------------------------------------------------------------------ helpers
    @property
    def patch_token_start(self) -> int:
        """Index of the first patch token in each frame: [camera, registers..., patches...]."""
        return 1 + self.num_register_tokens

    @property
    def head_layers(self) -> tuple[int, ...]:
        """Aggregator layers (non-negative indices) the heads read: the last one and the dense head's."""
        layers = {self.depth - 1}
        if self.enable_depth:
            layers.update(i % self.depth for i in self.dense_layers)
        return tuple(sorted(layers))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VGGTOmegaConfig:
        """Build from a dict (a config.json's model section), rejecting unknown keys; a ``fixed`` entry (the
        settings the official code hard-codes) must hold exactly those settings."""
        d = dict(d)
        fixed = d.pop("fixed", None)
        if fixed is not None and fixed != FIXED:
            differing = sorted(k for k in set(fixed) | set(FIXED) if fixed.get(k) != FIXED.get(k))
            raise ValueError(
                f"fixed settings {differing} differ from VGGT-Omega's, which are not configurable: {FIXED}"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown VGGTOmegaConfig field(s) {unknown}; known fields: {sorted(known)}")
        return cls(**d)


# Named architectures (fields that differ from VGGT-Omega-1B-512). "tiny" is the golden fixture's architecture, for
# tests and benchmarks.
PRESETS: dict[str, dict[str, Any]] = {
    "1b-512": {},
    "1b-256-text": dict(enable_alignment=True, image_resolution=256),
    "tiny": dict(
        embed_dim=64,
        depth=5,
        num_heads=4,
        num_register_tokens=3,
        register_attention_block_indices=(1, 3),
        cached_layer_indices=(0, 2, 3, 4),
        patch_embed_depth=2,
        patch_embed_num_heads=4,
        camera_trunk_depth=2,
        camera_num_heads=8,
        dense_features=32,
        dense_out_channels=(16, 32, 64, 64),
        dense_layers=(0, 2, 3, 4),
        text_readout_depth=2,
        text_num_heads=8,
        enable_alignment=True,
    ),
}


def omega_preset_config(name: str, **overrides: Any) -> VGGTOmegaConfig:
    """The configuration of a named architecture (see ``PRESETS``), with fields overridden.

    Raises:
        ValueError: an unknown name or field.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown VGGT-Omega preset {name!r}; known: {', '.join(sorted(PRESETS))}")
    return VGGTOmegaConfig.from_dict({**PRESETS[name], **overrides})
