"""Training configuration: nested frozen dataclasses loaded from YAML or JSON, with ``key=value`` overrides.

Example file (YAML)::

    model: {preset: tiny-synthetic}
    data: {source: synthetic, pool_size: 600, batch_size: 4}
    optim: {lr: 3.0e-4, max_steps: 4000}
    run: {out_dir: runs/tiny}

Overrides use dotted keys and YAML values: ``--set optim.lr=1e-4 --set data.max_frames=4``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from vggtkit.models.vggt.config import PRESETS, VGGTConfig, preset_config
from vggtkit.train.losses import LossConfig

DATA_SOURCES = ("synthetic", "scene_folder")
AMP_MODES = ("auto", "bf16", "off")
LOGGERS = ("csv", "tensorboard")


@dataclass(frozen=True)
class ModelSection:
    """Architecture: a preset name and/or explicit VGGTConfig fields (fields override the preset);
    ``init_from`` loads starting weights (a checkpoint folder, file or bundled name) for fine-tuning, except for
    the top-level modules named in ``fresh`` (e.g. ``camera_head``), which start from random weights."""

    preset: str | None = "tiny-synthetic"
    fields: dict[str, Any] = field(default_factory=dict)
    init_from: str | None = None
    fresh: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "fresh", tuple(self.fresh))
        if self.preset is not None and self.preset not in PRESETS:
            raise ValueError(f"unknown model preset {self.preset!r}; known: {sorted(PRESETS)}")

    def build_config(self) -> VGGTConfig:
        if self.preset is None:
            return VGGTConfig.from_dict(dict(self.fields))
        return preset_config(self.preset, **self.fields)


@dataclass(frozen=True)
class DataSection:
    """Training data.

    Attributes:
        source: "synthetic" (rendered scene pool) or "scene_folder" (``path`` holds scene folders).
        path: root of the scene folders (source scene_folder).
        pool_size: number of synthetic scenes rendered once and cached; pool_frames: views per scene;
            pan_probability: the share of those scenes whose camera pans in place instead of orbiting.
        image_size: (H, W) of the training images (multiples of the patch size).
        cache_dir: where the rendered pool is cached (None: memory only).
        batch_size: sequences per step and process; min_frames/max_frames: frames per sequence.
        zoom: scale-augmentation range (None disables); color_jitter: enable colour jitter;
        jitter_shared_p: the chance that all frames of a sequence share one colour jitter (otherwise each frame
            draws its own; the released training uses 0.7).
        num_tracks: ground-truth point tracks per sequence (frame-0 points followed through its frames; needed
            by the track loss); 0 draws none.
        workers: processes that render the synthetic pool and prepare the batches (0: the training process);
            the batches are the same either way.
    """

    source: str = "synthetic"
    path: str | None = None
    pool_size: int = 600
    pool_frames: int = 8
    pan_probability: float = 0.0
    image_size: tuple[int, int] = (112, 112)
    supersample: int = 1
    cache_dir: str | None = ".cache/vggtkit-pools"
    batch_size: int = 4
    min_frames: int = 2
    max_frames: int = 6
    zoom: tuple[float, float] | None = (0.8, 1.2)
    color_jitter: bool = True
    jitter_shared_p: float = 0.7
    num_tracks: int = 0
    workers: int = 0

    def __post_init__(self) -> None:
        if self.source not in DATA_SOURCES:
            raise ValueError(f"data.source must be one of {DATA_SOURCES}, got {self.source!r}")
        if self.source == "scene_folder" and not self.path:
            raise ValueError("data.source=scene_folder needs data.path (a folder of scene folders)")
        object.__setattr__(self, "image_size", tuple(self.image_size))
        if self.zoom is not None:
            object.__setattr__(self, "zoom", tuple(self.zoom))
        if self.pool_size < 1 or self.pool_frames < 1 or self.batch_size < 1:
            raise ValueError("data.pool_size, data.pool_frames and data.batch_size must be >= 1")
        if not 1 <= self.min_frames <= self.max_frames:
            raise ValueError(
                f"need 1 <= data.min_frames <= data.max_frames, got {self.min_frames}, {self.max_frames}"
            )
        if not 0 <= self.jitter_shared_p <= 1:
            raise ValueError(f"data.jitter_shared_p is a probability, got {self.jitter_shared_p}")
        if self.num_tracks < 0 or self.workers < 0:
            raise ValueError(
                f"data.num_tracks and data.workers must be >= 0, got {self.num_tracks}, {self.workers}"
            )


@dataclass(frozen=True)
class OptimSection:
    """AdamW with linear warm-up then cosine decay; clipping, precision, checkpointing and freezing.

    Attributes:
        lr, weight_decay, betas: AdamW settings; min_lr: the schedule's floor (start and end).
        decay_all: apply weight decay to every parameter, as the released code does; False exempts biases,
            norm weights, LayerScale gammas, tokens and position embeddings (the usual ViT practice; decay
            pulls the LayerScale gammas, which start at 0.01, towards 0).
        max_steps: optimiser steps; warmup_frac: share of the steps spent warming up.
        grad_clip: L2 max norm per parameter group (aggregator and each head); <= 0 disables clipping.
        amp: "auto" (bf16 where the device supports it fast: CUDA with bf16), "bf16" or "off".
        grad_checkpointing: recompute aggregator blocks in the backward pass (saves memory, costs time).
        freeze: glob patterns of module names to freeze (e.g. "aggregator*" to fine-tune the heads only).
        max_bad_steps: abort after this many consecutive non-finite losses.
    """

    lr: float = 3e-4
    min_lr: float = 1e-8
    weight_decay: float = 0.05
    decay_all: bool = True
    betas: tuple[float, float] = (0.9, 0.95)
    max_steps: int = 1000
    warmup_frac: float = 0.05
    grad_clip: float = 1.0
    amp: str = "auto"
    grad_checkpointing: bool = False
    freeze: tuple[str, ...] = ()
    max_bad_steps: int = 20

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(self.betas))
        object.__setattr__(self, "freeze", tuple(self.freeze))
        if self.lr <= 0 or self.min_lr < 0 or self.min_lr > self.lr:
            raise ValueError(f"need 0 <= optim.min_lr <= optim.lr and lr > 0, got {self.min_lr}, {self.lr}")
        if self.max_steps < 1:
            raise ValueError(f"optim.max_steps must be >= 1, got {self.max_steps}")
        if not 0 <= self.warmup_frac < 1:
            raise ValueError(f"optim.warmup_frac must lie in [0, 1), got {self.warmup_frac}")
        if self.amp not in AMP_MODES:
            raise ValueError(f"optim.amp must be one of {AMP_MODES}, got {self.amp!r}")


@dataclass(frozen=True)
class RunSection:
    """Where and how often: output folder, seed, logging and checkpoint cadence, resuming.

    ``probe_every`` > 0 scores the model every so many steps on ``probe_scenes`` held-out synthetic scenes and as
    many training scenes (``probe.csv``; see :mod:`vggtkit.train.probe`).
    """

    out_dir: str = "runs/train"
    seed: int = 0
    log_every: int = 10
    ckpt_every: int = 250
    keep_checkpoints: int = 3
    logger: str = "csv"
    resume: str | None = None
    device: str = "auto"
    num_threads: int | None = None
    progress: bool = True
    probe_every: int = 0
    probe_scenes: int = 8

    def __post_init__(self) -> None:
        if self.logger not in LOGGERS:
            raise ValueError(f"run.logger must be one of {LOGGERS}, got {self.logger!r}")
        if self.probe_every < 0 or self.probe_scenes < 1:
            raise ValueError("run.probe_every must be >= 0 and run.probe_scenes >= 1")
        if self.log_every < 1 or self.ckpt_every < 1 or self.keep_checkpoints < 1:
            raise ValueError("run.log_every, run.ckpt_every and run.keep_checkpoints must be >= 1")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; see the module docstring for the file format."""

    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimSection = field(default_factory=OptimSection)
    run: RunSection = field(default_factory=RunSection)

    def __post_init__(self) -> None:
        if self.loss.track_weight > 0 and self.data.num_tracks == 0:
            raise ValueError("loss.track_weight > 0 needs ground-truth tracks: set data.num_tracks > 0")

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return _build(cls, data, "")


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"{where or 'the training config'} must be a mapping, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(
            f"unknown key(s) {unknown} in {where or 'the training config'}; known: {sorted(known)}"
        )
    kwargs = {}
    for name, value in data.items():
        default = getattr(cls(), name) if _has_defaults(cls) else None
        if is_dataclass(default) and isinstance(value, dict):
            kwargs[name] = _build(type(default), value, f"{where}{name}.")
        else:
            kwargs[name] = _coerce(value, default, f"{where}{name}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"invalid {where or 'training config'}: {exc}") from exc


def _coerce(value: Any, default: Any, where: str) -> Any:
    """YAML 1.1 reads ``1e-4`` as a string: turn numeric strings into the default's number type."""
    if isinstance(value, str) and isinstance(default, (int, float)) and not isinstance(default, bool):
        try:
            return type(default)(float(value)) if isinstance(default, float) else int(value)
        except ValueError as exc:
            raise ValueError(f"{where} must be a number, got {value!r}") from exc
    if isinstance(value, int) and isinstance(default, float) and not isinstance(value, bool):
        return float(value)
    return value


def _has_defaults(cls: type) -> bool:
    try:
        cls()
    except TypeError:
        return False
    return True


def _parse_value(text: str) -> Any:
    """An override's value as YAML, or as JSON where PyYAML is not installed; unparsable text stays a string."""
    try:
        import yaml
    except ImportError:
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _apply(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like section.key=value (e.g. optim.lr=1e-4)")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        node = data
        for part in parts[:-1]:
            if not isinstance(node, dict) or part not in node:
                raise ValueError(f"override {item!r}: unknown section {part!r}")
            node = node[part]
        leaf = parts[-1]
        if not isinstance(node, dict) or (leaf not in node and parts[:-1] != ["model", "fields"]):
            raise ValueError(f"override {item!r}: unknown key {key!r}")
        node[leaf] = _parse_value(text)
    return data


def apply_overrides(config: TrainConfig, overrides: list[str]) -> TrainConfig:
    """Apply ``section.key=value`` overrides (values parsed as YAML: numbers, lists, null, booleans)."""
    return TrainConfig.from_dict(_apply(config.to_dict(), overrides))


def load_train_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML (.yaml/.yml) or JSON training config (None: all defaults) and apply overrides.

    The file is merged over the defaults and the overrides over that, before anything is validated, so an
    override can complete a file (for example ``data.path`` of a fine-tuning config).
    """
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"training config {path} does not exist")
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            import yaml

            try:
                data = yaml.safe_load(text) or {}
            except yaml.YAMLError as exc:
                raise ValueError(f"cannot parse {path}: {exc}") from exc
        else:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"cannot parse {path} as JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"{path} must hold a mapping with sections model, data, loss, optim, run")
        defaults = TrainConfig().to_dict()
        unknown = sorted(set(data) - set(defaults))
        if unknown:
            raise ValueError(f"unknown section(s) {unknown} in {path}; known: {sorted(defaults)}")
    merged = _merge(TrainConfig().to_dict(), data)
    return TrainConfig.from_dict(_apply(merged, overrides or []))


def with_changes(config: TrainConfig, **sections: dict[str, Any]) -> TrainConfig:
    """Copy with some fields of some sections replaced, e.g. ``with_changes(c, optim={"lr": 1e-4})``."""
    return replace(
        config, **{name: replace(getattr(config, name), **vals) for name, vals in sections.items()}
    )
