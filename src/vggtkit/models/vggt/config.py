"""Model configuration: one flat, self-validating dataclass whose defaults are VGGT-1B."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

PATCH_EMBED_KINDS = ("dinov2", "conv")
ATTENTION_KINDS = ("frame", "global")


@dataclass(frozen=True)
class VGGTConfig:
    """Architecture of a VGGT model. The defaults are facebook/VGGT-1B.

    Aggregator:
        img_size: the square image size the DINOv2 positional embedding was trained at (pixels).
        patch_size: patch side in pixels; image height and width must be multiples of it.
        embed_dim: token width C of the patch embedder and the alternating-attention blocks.
        depth: number of frame blocks (= number of global blocks = number of aggregator outputs).
        num_heads: attention heads of the frame/global blocks.
        mlp_ratio: MLP hidden width as a multiple of the block width (all transformer blocks).
        num_register_tokens: register tokens per frame (aggregator and DINOv2 embedder).
        qk_norm: LayerNorm on queries and keys in the frame/global blocks.
        rope_freq: base frequency of the 2-D rotary embedding (must be > 0).
        init_values: LayerScale initial value of the frame/global/camera blocks.
        patch_embed: "dinov2" (DINOv2 ViT with registers, as released) or "conv" (a strided convolution).
        patch_embed_depth, patch_embed_num_heads: size of the DINOv2 embedder.
        aa_order: order of the attention types inside one alternating step.
        aa_block_size: blocks of each type per alternating step.
    Heads:
        camera_trunk_depth, camera_num_heads: the camera head's transformer trunk.
        dpt_features, dpt_out_channels, dpt_layers: DPT heads (depth, points) and the track head's feature
            extractor; ``dpt_layers`` are the aggregator outputs they read.
        track_*: track head sizes (feature channels, update-transformer width, correlation pyramid, refinement
            iterations, feature stride).
        enable_*: which heads exist.
    """

    img_size: int = 518
    patch_size: int = 14
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    num_register_tokens: int = 4
    qk_norm: bool = True
    rope_freq: float = 100
    init_values: float = 0.01
    patch_embed: str = "dinov2"
    patch_embed_depth: int = 24
    patch_embed_num_heads: int = 16
    aa_order: tuple[str, ...] = ("frame", "global")
    aa_block_size: int = 1
    camera_trunk_depth: int = 4
    camera_num_heads: int = 16
    dpt_features: int = 256
    dpt_out_channels: tuple[int, int, int, int] = (256, 512, 1024, 1024)
    dpt_layers: tuple[int, int, int, int] = (4, 11, 17, 23)
    track_features: int = 128
    track_hidden_size: int = 384
    track_corr_levels: int = 7
    track_corr_radius: int = 4
    track_iters: int = 4
    track_stride: int = 2
    enable_camera: bool = True
    enable_depth: bool = True
    enable_point: bool = True
    enable_track: bool = True

    @property
    def trained_resolution(self) -> int:
        """The input resolution the checkpoint was trained at (``img_size``): the pipeline's default."""
        return self.img_size

    def __post_init__(self) -> None:
        # JSON gives lists; the dataclass is frozen and hashable, so store tuples.
        for name in ("aa_order", "dpt_out_channels", "dpt_layers"):
            value = getattr(self, name)
            if isinstance(value, str) or not hasattr(value, "__iter__"):
                raise ValueError(f"{name} must be a sequence, got {value!r}")
            object.__setattr__(self, name, tuple(value))
        self._validate()

    # ------------------------------------------------------------------ validation
    def _validate(self) -> None:
        self._check_positive()
        self._check_attention()
        self._check_patch_embed()
        self._check_dense_heads()
        self._check_track_head()
        if not any((self.enable_camera, self.enable_depth, self.enable_point, self.enable_track)):
            raise ValueError("at least one head must be enabled")

    def _check_positive(self) -> None:
        for name in (
            "img_size", "patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio", "rope_freq",
            "aa_block_size", "camera_trunk_depth", "camera_num_heads", "dpt_features", "track_features",
            "track_hidden_size", "track_corr_levels", "track_corr_radius", "track_iters", "track_stride",
        ):  # fmt: skip
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.num_register_tokens < 0:
            raise ValueError(f"num_register_tokens must be >= 0, got {self.num_register_tokens}")
        if self.img_size % self.patch_size:
            raise ValueError(f"img_size={self.img_size} is not a multiple of patch_size={self.patch_size}")

    def _check_attention(self) -> None:
        _divisible("embed_dim", self.embed_dim, "num_heads", self.num_heads)
        head_dim = self.embed_dim // self.num_heads
        if head_dim % 4:
            raise ValueError(
                f"embed_dim/num_heads={head_dim} must be a multiple of 4 for the 2-D rotary embedding "
                "(two axes, each rotated in halves)"
            )
        _divisible(
            "camera head width 2*embed_dim", 2 * self.embed_dim, "camera_num_heads", self.camera_num_heads
        )
        if sorted(self.aa_order) != sorted(ATTENTION_KINDS):
            raise ValueError(f"aa_order must hold 'frame' and 'global' once each, got {self.aa_order!r}")
        if self.depth % self.aa_block_size:
            raise ValueError(f"depth={self.depth} is not a multiple of aa_block_size={self.aa_block_size}")

    def _check_patch_embed(self) -> None:
        if self.patch_embed not in PATCH_EMBED_KINDS:
            raise ValueError(f"patch_embed must be one of {PATCH_EMBED_KINDS}, got {self.patch_embed!r}")
        if self.patch_embed == "dinov2":
            for name in ("patch_embed_depth", "patch_embed_num_heads"):
                if getattr(self, name) <= 0:
                    raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
            _divisible("embed_dim", self.embed_dim, "patch_embed_num_heads", self.patch_embed_num_heads)

    def _check_dense_heads(self) -> None:
        if len(self.dpt_out_channels) != 4 or len(self.dpt_layers) != 4:
            raise ValueError("dpt_out_channels and dpt_layers must have exactly 4 entries each")
        if any(c <= 0 for c in self.dpt_out_channels):
            raise ValueError(f"dpt_out_channels must be positive, got {self.dpt_out_channels}")
        for layer in self.dpt_layers:
            if not -self.depth <= layer < self.depth:
                raise ValueError(f"dpt_layers entry {layer} is out of range for depth={self.depth}")
        if self.dpt_features % 2:
            raise ValueError(f"dpt_features must be even, got {self.dpt_features}")

    def _check_track_head(self) -> None:
        if not self.enable_track:
            return
        if self.track_features % 4:
            raise ValueError(f"track_features must be a multiple of 4, got {self.track_features}")
        if self.track_hidden_size % 8:
            raise ValueError(
                f"track_hidden_size must be a multiple of the tracker's 8 heads, got {self.track_hidden_size}"
            )

    # ------------------------------------------------------------------ helpers
    @property
    def patch_start_idx(self) -> int:
        """Index of the first patch token in each frame: [camera, registers..., patches...]."""
        return 1 + self.num_register_tokens

    @property
    def head_layers(self) -> tuple[int, ...]:
        """Aggregator outputs (non-negative indices) that some enabled head reads."""
        layers: set[int] = set()
        if self.enable_camera:
            layers.add(self.depth - 1)
        if self.enable_depth or self.enable_point or self.enable_track:
            layers.update(i % self.depth for i in self.dpt_layers)
        return tuple(sorted(layers))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VGGTConfig:
        """Build from a dict, rejecting unknown keys with a clear message."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown VGGTConfig field(s) {unknown}; known fields: {sorted(known)}")
        return cls(**d)


def _divisible(name: str, value: int, by_name: str, by: int) -> None:
    if value % by:
        raise ValueError(f"{name}={value} is not divisible by {by_name}={by}")


# Named architectures (fields that differ from VGGT-1B). "tiny" is for tests, "tiny-synthetic" is the shipped
# model's architecture, "test-tiny" a still smaller one for training tests.
PRESETS: dict[str, dict[str, Any]] = {
    "1b": {},
    "tiny": dict(
        embed_dim=64,
        depth=4,
        num_heads=4,
        patch_embed_depth=2,
        patch_embed_num_heads=4,
        camera_trunk_depth=2,
        camera_num_heads=4,
        dpt_features=32,
        dpt_out_channels=(16, 32, 64, 64),
        dpt_layers=(0, 1, 2, 3),
        track_features=16,
        track_hidden_size=32,
        track_corr_levels=3,
        track_corr_radius=2,
        track_iters=2,
    ),
    "tiny-synthetic": dict(
        img_size=112,
        embed_dim=128,
        depth=6,
        num_heads=4,
        patch_embed_depth=2,
        patch_embed_num_heads=4,
        camera_trunk_depth=2,
        camera_num_heads=4,
        dpt_features=64,
        dpt_out_channels=(32, 64, 128, 128),
        dpt_layers=(1, 3, 4, 5),
        enable_point=False,
        enable_track=False,
    ),
    "test-tiny": dict(
        img_size=56,
        embed_dim=32,
        depth=2,
        num_heads=2,
        patch_embed="conv",
        camera_trunk_depth=1,
        camera_num_heads=2,
        dpt_features=16,
        dpt_out_channels=(8, 16, 16, 16),
        dpt_layers=(0, 1, 1, 1),
        enable_point=False,
        enable_track=False,
    ),
}


def preset_config(name: str, **overrides: Any) -> VGGTConfig:
    """The configuration of a named architecture (see ``PRESETS``), with fields overridden.

    Raises:
        ValueError: an unknown name or field.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown VGGT preset {name!r}; known: {', '.join(sorted(PRESETS))}")
    return VGGTConfig.from_dict({**PRESETS[name], **overrides})


def tiny_config(**overrides: Any) -> VGGTConfig:
    """A very small random-weight configuration for tests and smoke runs (about 0.6 M parameters)."""
    return preset_config("tiny", **overrides)
