"""The training loop: AdamW + warm-up/cosine, clipping per parameter group, optional bf16 autocast, gradient
checkpointing, freezing, safetensors checkpoints with resume, CSV/TensorBoard logs, and data parallelism.

Use :func:`train` (``vggtkit train`` calls it). Launch with ``torchrun --nproc_per_node=N`` for data-parallel
training: each process draws its own sequences, gradients are averaged by DDP, rank 0 logs and checkpoints.
"""

from __future__ import annotations

import csv
import fnmatch
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vggtkit.data.augment import ColorJitter
from vggtkit.data.batches import BatchOptions, BatchStream, SceneSource
from vggtkit.data.normalize import normalize_batch
from vggtkit.inference import ExecutionPlan
from vggtkit.models.vggt.config import VGGTConfig
from vggtkit.models.vggt.model import VGGT
from vggtkit.train.checkpoint import (
    OPTIM_NAME,
    load_optimizer_state,
    read_trainer_state,
    resolve_resume,
    save_checkpoint,
)
from vggtkit.train.config import OptimSection, TrainConfig
from vggtkit.train.distributed import (
    DistInfo,
    all_reduce_mean,
    barrier,
    cleanup,
    init_distributed,
    process_device,
)
from vggtkit.train.losses import MultitaskLoss
from vggtkit.weights import load_matching_weights

logger = logging.getLogger(__name__)

_BATCH_KEYS = ("images", "depths", "point_masks", "extrinsics", "intrinsics", "world_points", "cam_points")
_TRACK_KEYS = ("tracks", "track_vis_mask")


@dataclass
class TrainResult:
    """What a run did: final ``step``, ``out_dir``, last logged ``losses``, ``skipped`` non-finite steps,
    ``wall_time`` in seconds, the ``checkpoint`` folder written last (None if none; rank 0 only) and the
    trained ``model`` (this process's replica)."""

    step: int
    out_dir: Path
    losses: dict[str, float]
    skipped: int
    wall_time: float
    checkpoint: Path | None
    model: VGGT | None = None


# ----------------------------------------------------------------------------- schedule
def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warm-up from ``min_lr`` to ``lr`` over ``warmup_frac`` of the steps, then cosine back to ``min_lr``.

    ``step`` counts from 0; progress is ``step / max_steps`` as in the released code's ``where``.
    """
    opt = config.optim
    where = step / opt.max_steps
    if opt.warmup_frac > 0 and where < opt.warmup_frac:
        return opt.min_lr + (opt.lr - opt.min_lr) * where / opt.warmup_frac
    progress = (where - opt.warmup_frac) / (1 - opt.warmup_frac)
    return opt.min_lr + 0.5 * (opt.lr - opt.min_lr) * (1 + math.cos(math.pi * min(progress, 1.0)))


# ----------------------------------------------------------------------------- model set-up
def freeze_modules(model: torch.nn.Module, patterns: tuple[str, ...]) -> list[str]:
    """Freeze modules whose name matches a glob pattern: no gradients, and kept in eval mode.

    Returns:
        the names of the frozen modules (top-most matches only).

    Raises:
        ValueError: when a pattern matches no module.
    """
    frozen: list[str] = []
    for pattern in patterns:
        matched = [name for name, _ in model.named_modules() if name and fnmatch.fnmatch(name, pattern)]
        if not matched:
            tops = sorted({n.split(".")[0] for n, _ in model.named_modules() if n})
            raise ValueError(f"freeze pattern {pattern!r} matches no module; top-level modules: {tops}")
        for name in matched:
            if any(name.startswith(f + ".") for f in frozen):
                continue
            module = model.get_submodule(name)
            for param in module.parameters():
                param.requires_grad_(False)
            frozen.append(name)
    return frozen


def parameter_groups(
    params: dict[str, torch.nn.Parameter], weight_decay: float, decay_all: bool
) -> list[dict[str, Any]]:
    """AdamW groups: everything decayed, or (``decay_all=False``) biases, norm weights, LayerScale gammas,
    tokens and position embeddings exempt."""
    if decay_all:
        return [{"params": list(params.values()), "weight_decay": weight_decay}]

    def exempt(name: str, param: torch.nn.Parameter) -> bool:
        return param.ndim <= 1 or "token" in name or "pos_embed" in name

    groups = (
        [p for n, p in params.items() if not exempt(n, p)],
        [p for n, p in params.items() if exempt(n, p)],
    )
    return [
        {"params": group, "weight_decay": decay}
        for group, decay in zip(groups, (weight_decay, 0.0), strict=True)
        if group
    ]


def _set_train_mode(model: torch.nn.Module, frozen: list[str]) -> None:
    model.train()
    for name in frozen:
        model.get_submodule(name).eval()


def _clip_groups(model: torch.nn.Module) -> dict[str, list[torch.nn.Parameter]]:
    """Trainable parameters grouped by top-level module (aggregator, camera_head, depth_head, ...)."""
    groups: dict[str, list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            groups.setdefault(name.split(".")[0], []).append(param)
    return groups


def resolve_amp(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: bf16 when asked, or with "auto" on CUDA devices that support it; else None (fp32).

    On CPU "auto" stays in fp32: for models of this size bf16 autocast was not faster here.
    """
    if mode == "off":
        return None
    if mode == "bf16":
        return torch.bfloat16
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def _default_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("run.device asks for CUDA but it is not available; use run.device=cpu or auto")
    return device


# ----------------------------------------------------------------------------- data
def build_source(config: TrainConfig, progress: bool = True) -> SceneSource:
    """The training scenes: a cached synthetic pool or the scene folders under ``data.path``."""
    data = config.data
    if data.source == "scene_folder":
        from vggtkit.data.scene_folder import SceneFolderCollection

        return SceneFolderCollection(data.path, image_size=data.image_size)
    from vggtkit.data.pool import render_pool
    from vggtkit.data.synthetic import TRAIN_SEED_OFFSET, SyntheticSceneConfig

    scene_config = SyntheticSceneConfig(
        num_frames=data.pool_frames, image_size=data.image_size, supersample=data.supersample, num_tracks=64
    )
    seeds = [TRAIN_SEED_OFFSET + i for i in range(data.pool_size)]
    bar = None
    callback: Callable[[int, int], None] | None = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(seeds), desc="rendering training scenes", unit="scene", leave=False)

        def callback(done: int, total: int) -> None:
            bar.update(1)

    try:
        return render_pool(scene_config, seeds, data.cache_dir, callback)
    finally:
        if bar is not None:
            bar.close()


def _batch_options(config: TrainConfig) -> BatchOptions:
    d = config.data
    return BatchOptions(
        batch_size=d.batch_size,
        min_frames=d.min_frames,
        max_frames=d.max_frames,
        zoom=d.zoom,
        color_jitter=ColorJitter() if d.color_jitter else None,
    )


# ----------------------------------------------------------------------------- logging
class _MetricLogger:
    def __init__(self, out_dir: Path, kind: str, resume: bool) -> None:
        self.kind = kind
        self.path = out_dir / "metrics.csv"
        self.fieldnames: list[str] | None = None
        self.writer = None
        if kind == "tensorboard":
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise ValueError(
                    "run.logger=tensorboard needs the tensorboard package (pip install tensorboard); "
                    "or use run.logger=csv"
                ) from exc
            self.writer = SummaryWriter(str(out_dir / "tensorboard"))
        if not resume and self.path.exists():
            self.path.unlink()

    def log(self, step: int, values: dict[str, float]) -> None:
        row = {"step": step, **values}
        if self.fieldnames is None:
            if self.path.exists() and self.path.stat().st_size:
                with self.path.open() as handle:
                    self.fieldnames = next(csv.reader(handle))
            else:
                self.fieldnames = list(row)
                with self.path.open("w", newline="") as handle:
                    csv.writer(handle).writerow(self.fieldnames)
        with self.path.open("a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=self.fieldnames, extrasaction="ignore").writerow(row)
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


# ----------------------------------------------------------------------------- the loop
def training_plan(opt: OptimSection, amp_dtype: torch.dtype | None) -> ExecutionPlan:
    """How the model runs in a training step: the aggregator in the mixed-precision dtype (the heads, the residual
    stream and LayerNorms stay float32, as under the official code's autocast), optionally recomputing each
    block in the backward pass."""
    return ExecutionPlan(dtype=amp_dtype or torch.float32, gradient_checkpointing=opt.grad_checkpointing)


def build_model(config: TrainConfig) -> VGGT:
    """The model to train: from ``model.init_from`` (fine-tuning) or randomly initialised (seeded).

    With ``model.fields`` set, the checkpoint fills the modules it shares with the configured model, so
    fine-tuning can add a head (randomly initialised) or drop one.
    """
    model_config: VGGTConfig = config.model.build_config()
    if config.model.init_from and not config.model.fields:
        return VGGT.from_pretrained(config.model.init_from)
    torch.manual_seed(config.run.seed)
    model = VGGT(model_config)
    if config.model.init_from:
        load_matching_weights(model, config.model.init_from)
    return model


def train(config: TrainConfig, source: SceneSource | None = None) -> TrainResult:
    """Run (or resume) a training job described by ``config``.

    Args:
        config: the training configuration.
        source: scenes to train on; by default built from ``config.data`` (rendered synthetic pool or folders).

    Returns:
        a :class:`TrainResult`.
    """
    start_time = time.perf_counter()
    run = config.run
    threads = torch.get_num_threads()
    if run.num_threads:
        torch.set_num_threads(run.num_threads)
    device = _default_device(run.device)
    info = init_distributed(device)
    device = process_device(device, info)
    try:
        return _train(config, source, device, info, start_time)
    finally:
        cleanup(info)
        torch.set_num_threads(threads)


def _train(
    config: TrainConfig, source: SceneSource | None, device: torch.device, info: DistInfo, start_time: float
) -> TrainResult:
    run, opt = config.run, config.optim
    out_dir = Path(run.out_dir)
    ckpt_dir = out_dir / "checkpoints"
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "train_config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    show_progress = run.progress and info.is_main
    if source is None:
        # Rank 0 renders (and caches) the pool first; the other ranks then read the cache instead of re-rendering.
        if info.enabled and not info.is_main:
            barrier(info)
        source = build_source(config, progress=show_progress)
        if info.enabled and info.is_main:
            barrier(info)
    stream = BatchStream(
        source, _batch_options(config), seed=run.seed, rank=info.rank, world_size=info.world_size
    )

    model = build_model(config).to(device)
    frozen = freeze_modules(model, opt.freeze)
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if not params:
        raise ValueError("every parameter is frozen: nothing to train (check optim.freeze)")
    optimizer = torch.optim.AdamW(
        parameter_groups(params, opt.weight_decay, opt.decay_all), lr=opt.lr, betas=opt.betas
    )
    start_step, skipped = 0, 0
    if run.resume:
        from safetensors.torch import load_file

        folder = resolve_resume(run.resume)
        state = read_trainer_state(folder)
        weights = VGGT.from_pretrained(folder, map_location="cpu")
        model.load_state_dict(weights.state_dict(), strict=True)
        load_optimizer_state(optimizer, load_file(str(folder / OPTIM_NAME)), params)
        start_step, skipped = int(state["step"]), int(state.get("skipped", 0))
        logger.info("resumed from %s at step %d", folder, start_step)
    ddp_model: torch.nn.Module = model
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel

        ddp_model = DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=True,
            broadcast_buffers=True,
        )
    criterion = MultitaskLoss(config.loss)
    amp_dtype = resolve_amp(opt.amp, device)
    plan = training_plan(opt, amp_dtype)
    groups = _clip_groups(model)
    metric_logger = _MetricLogger(out_dir, run.logger, resume=bool(run.resume)) if info.is_main else None
    bar = None
    if show_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=opt.max_steps, initial=start_step, desc="training", unit="step")
    logger.info(
        "training %.2f M parameters (%.2f M trainable) on %s x%d, amp=%s, frozen=%s",
        sum(p.numel() for p in model.parameters()) / 1e6,
        sum(p.numel() for p in params.values()) / 1e6,
        device,
        info.world_size,
        amp_dtype,
        frozen or "none",
    )
    last_losses: dict[str, float] = {}
    running: dict[str, float] = {}
    running_n = 0
    bad_in_a_row = 0
    last_ckpt: Path | None = None
    step = start_step
    _set_train_mode(model, frozen)
    while step < opt.max_steps:
        lr = learning_rate(step, config)
        for group in optimizer.param_groups:
            group["lr"] = lr
        raw = stream.batch(step)
        batch, _ = normalize_batch({k: raw[k] for k in _BATCH_KEYS + _TRACK_KEYS if k in raw})
        batch = {k: v.to(device) for k, v in batch.items()}
        queries = None
        if config.loss.track_weight > 0:
            if "tracks" not in batch:
                raise ValueError(
                    "loss.track_weight > 0 needs ground-truth tracks, which this data source lacks"
                )
            queries = batch["tracks"][:, 0]  # the track head queries points in frame 0
        predictions = ddp_model(batch["images"], queries, options=plan)
        losses = criterion(predictions, batch)
        objective = losses["objective"]
        finite = torch.isfinite(objective.detach()).float()
        # All ranks must agree on skipping, or DDP would hang in the all-reduce.
        all_finite = bool(all_reduce_mean(finite, info) == 1.0)
        optimizer.zero_grad(set_to_none=True)
        if not all_finite:
            skipped += 1
            bad_in_a_row += 1
            logger.warning("step %d: non-finite loss (%s); skipping the update", step, _fmt(losses))
            if bad_in_a_row >= opt.max_bad_steps:
                raise RuntimeError(
                    f"{bad_in_a_row} consecutive non-finite losses: lower optim.lr or check the data"
                )
            step += 1
            continue
        bad_in_a_row = 0
        objective.backward()
        grad_norms = {}
        if opt.grad_clip > 0:
            for name, group_params in groups.items():
                norm = torch.nn.utils.clip_grad_norm_(group_params, opt.grad_clip)
                grad_norms[f"grad_norm_{name}"] = float(norm)
        optimizer.step()
        step += 1
        values = {k: float(v.detach()) for k, v in losses.items() if isinstance(v, Tensor)}
        for key, value in values.items():
            running[key] = running.get(key, 0.0) + value
        running_n += 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{values['objective']:.3f}", lr=f"{lr:.2e}")
        if step % run.log_every == 0 or step == opt.max_steps:
            last_losses = {k: v / running_n for k, v in running.items()}
            if info.enabled:  # every rank reaches this step: average the logged losses over the ranks
                keys = sorted(last_losses)
                mean = all_reduce_mean(
                    torch.tensor([last_losses[k] for k in keys], dtype=torch.float64), info
                )
                last_losses = dict(zip(keys, mean.tolist(), strict=True))
            running, running_n = {}, 0
            if metric_logger is not None:
                row = {
                    **last_losses,
                    **grad_norms,
                    "lr": lr,
                    "frames": int(batch["images"].shape[1]),
                    "skipped": skipped,
                    "elapsed_s": round(time.perf_counter() - start_time, 1),
                }
                metric_logger.log(step, row)
                if bar is None:
                    logger.info("step %d/%d %s", step, opt.max_steps, _fmt(last_losses))
        if info.is_main and (step % run.ckpt_every == 0 or step == opt.max_steps):
            state = {"step": step, "skipped": skipped, "config": config.to_dict()}
            last_ckpt = save_checkpoint(ckpt_dir, model, optimizer, state, run.keep_checkpoints)
    if bar is not None:
        bar.close()
    if metric_logger is not None:
        metric_logger.close()
    if skipped:
        logger.warning("%d step(s) were skipped because of non-finite losses", skipped)
    wall = time.perf_counter() - start_time
    return TrainResult(step, out_dir, last_losses, skipped, wall, last_ckpt, model)


def _fmt(losses: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={float(v.detach() if isinstance(v, Tensor) else v):.4g}" for k, v in losses.items()
    )
