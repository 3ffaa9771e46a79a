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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vggtkit.data.augment import ColorJitter
from vggtkit.data.batches import BatchOptions, BatchStream, SceneSource
from vggtkit.data.normalize import normalize_batch
from vggtkit.inference import ExecutionPlan
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
from vggtkit.utils.atomic import atomic_path

logger = logging.getLogger(__name__)

# What the model and the losses read (the world points also set the normalisation's scale).
_BATCH_KEYS = ("images", "depths", "point_masks", "extrinsics", "intrinsics", "world_points")
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
        num_frames=data.pool_frames,
        image_size=data.image_size,
        supersample=data.supersample,
        num_tracks=0,
        pan_probability=data.pan_probability,
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
        return render_pool(scene_config, seeds, data.cache_dir, callback, workers=data.workers)
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
        color_jitter=ColorJitter(shared_p=d.jitter_shared_p) if d.color_jitter else None,
        num_tracks=d.num_tracks,
    )


def training_batch(stream: BatchStream, step: int) -> dict[str, Tensor]:
    """The normalised batch of one step (first camera as world, unit mean point distance): the tensors the
    model and the loss take, still on the CPU."""
    raw = stream.batch(step)
    batch, _ = normalize_batch({k: raw[k] for k in _BATCH_KEYS + _TRACK_KEYS if k in raw})
    return batch


class _StepBatches(torch.utils.data.Dataset):
    """Batches ``start`` .. ``stop - 1`` of a stream, for a DataLoader (each batch depends only on its step)."""

    def __init__(self, stream: BatchStream, start: int, stop: int) -> None:
        self.stream, self.start, self.stop = stream, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return training_batch(self.stream, self.start + index)


def _worker_threads(_: int) -> None:
    torch.set_num_threads(1)


def step_batches(
    stream: BatchStream, start: int, stop: int, workers: int, pin_memory: bool = False
) -> Iterator[dict[str, Tensor]]:
    """The :func:`training_batch` of steps ``start`` .. ``stop - 1`` in order, prepared in ``workers``
    processes (0: here)."""
    if workers == 0:
        return (training_batch(stream, step) for step in range(start, stop))
    loader = torch.utils.data.DataLoader(
        _StepBatches(stream, start, stop),
        batch_size=None,
        num_workers=workers,
        pin_memory=pin_memory,
        prefetch_factor=2,
        worker_init_fn=_worker_threads,
    )
    return iter(loader)


# ----------------------------------------------------------------------------- logging
class _MetricLogger:
    """Appends rows to ``<out_dir>/<name>.csv`` (columns fixed by the first row) and, optionally, TensorBoard."""

    def __init__(self, out_dir: Path, name: str, kind: str, resume: bool) -> None:
        self.path = out_dir / f"{name}.csv"
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

    def _columns(self, row: dict[str, Any]) -> list[str]:
        if self.fieldnames is None:
            if self.path.exists() and self.path.stat().st_size:
                with self.path.open() as handle:
                    self.fieldnames = next(csv.reader(handle))
            else:
                self.fieldnames = list(row)
                with self.path.open("w", newline="") as handle:
                    csv.writer(handle).writerow(self.fieldnames)
        return self.fieldnames

    def log(self, step: int, values: dict[str, float]) -> None:
        row = {"step": step, **values}
        columns = self._columns(row)
        with self.path.open("a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore").writerow(row)
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class _RunningMean:
    """Means of the step losses since the last log line."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.count += 1

    def pop(self, info: DistInfo) -> dict[str, float]:
        """The means (averaged over the ranks too: every rank calls this at the same step), then reset."""
        means = {k: v / max(self.count, 1) for k, v in self.sums.items()}
        if info.enabled:
            keys = sorted(means)
            reduced = all_reduce_mean(torch.tensor([means[k] for k in keys], dtype=torch.float64), info)
            means = dict(zip(keys, reduced.tolist(), strict=True))
        self.sums, self.count = {}, 0
        return means


# ----------------------------------------------------------------------------- the run's parts
def training_plan(opt: OptimSection, amp_dtype: torch.dtype | None) -> ExecutionPlan:
    """How the model runs in a training step: the aggregator in the mixed-precision dtype (the heads, the residual
    stream and LayerNorms stay float32, as under the official code's autocast), optionally recomputing each
    block in the backward pass."""
    return ExecutionPlan(dtype=amp_dtype or torch.float32, gradient_checkpointing=opt.grad_checkpointing)


def build_model(config: TrainConfig) -> VGGT:
    """The model to train: from ``model.init_from`` (fine-tuning) or randomly initialised (seeded).

    With ``model.fields`` or ``model.fresh`` set, the checkpoint fills the top-level modules (``aggregator``,
    ``camera_head``, ...) it shares with the configured model, except those listed in ``model.fresh``; the
    others keep their random initialisation, so fine-tuning can add, drop or reshape a head.
    """
    section = config.model
    if section.init_from and not section.fields and not section.fresh:
        return VGGT.from_pretrained(section.init_from)
    torch.manual_seed(config.run.seed)
    model = VGGT(section.build_config())
    if section.init_from:
        _initialise_from(model, section.init_from, section.fresh)
    return model


def _initialise_from(model: VGGT, source: str, fresh: tuple[str, ...]) -> None:
    donor = VGGT.from_pretrained(source)
    loaded = []
    for name, module in model.named_children():
        donor_module = getattr(donor, name, None)
        if name in fresh or donor_module is None:
            continue
        try:
            module.load_state_dict(donor_module.state_dict())
        except RuntimeError as exc:
            raise ValueError(
                f"model.init_from: the {name} of {source} does not match the configured one; list it in "
                f"model.fresh to start it from random weights ({str(exc).splitlines()[0]})"
            ) from exc
        loaded.append(name)
    logger.info("initialised %s from %s; the other modules start from random weights", loaded, source)


@dataclass
class _Session:
    """What one training process holds: the model (and its DDP wrapper), optimiser, loss and settings."""

    config: TrainConfig
    device: torch.device
    info: DistInfo
    model: VGGT
    ddp_model: torch.nn.Module
    frozen: list[str]
    params: dict[str, torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    clip_groups: dict[str, list[torch.nn.Parameter]]
    criterion: MultitaskLoss
    amp_dtype: torch.dtype | None
    plan: ExecutionPlan


def _wrap_ddp(model: VGGT, device: torch.device, info: DistInfo) -> torch.nn.Module:
    if not info.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(
        model,
        device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=True,
        broadcast_buffers=True,
    )


def _build_session(config: TrainConfig, device: torch.device, info: DistInfo) -> _Session:
    opt = config.optim
    amp_dtype = resolve_amp(opt.amp, device)
    model = build_model(config).to(device)
    frozen = freeze_modules(model, opt.freeze)
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if not params:
        raise ValueError("every parameter is frozen: nothing to train (check optim.freeze)")
    optimizer = torch.optim.AdamW(
        parameter_groups(params, opt.weight_decay, opt.decay_all), lr=opt.lr, betas=opt.betas
    )
    return _Session(
        config=config,
        device=device,
        info=info,
        model=model,
        ddp_model=_wrap_ddp(model, device, info),
        frozen=frozen,
        params=params,
        optimizer=optimizer,
        clip_groups=_clip_groups(model),
        criterion=MultitaskLoss(config.loss),
        amp_dtype=amp_dtype,
        plan=training_plan(opt, amp_dtype),
    )


def _resume(session: _Session, resume: str) -> tuple[int, int]:
    """Load weights and optimiser state from a checkpoint; returns (step, skipped steps) it had reached."""
    from safetensors.torch import load_file

    folder = resolve_resume(resume)
    state = read_trainer_state(folder)
    weights = VGGT.from_pretrained(folder, map_location="cpu")
    session.model.load_state_dict(weights.state_dict(), strict=True)
    load_optimizer_state(session.optimizer, load_file(str(folder / OPTIM_NAME)), session.params)
    logger.info("resumed from %s at step %d", folder, int(state["step"]))
    return int(state["step"]), int(state.get("skipped", 0))


def _scene_source(config: TrainConfig, source: SceneSource | None, info: DistInfo) -> SceneSource:
    if source is not None:
        return source
    # Rank 0 renders (and caches) the pool first; the other ranks then read the cache instead of re-rendering.
    if info.enabled and not info.is_main:
        barrier(info)
    source = build_source(config, progress=config.run.progress and info.is_main)
    if info.enabled and info.is_main:
        barrier(info)
    return source


def _to_device(batch: dict[str, Tensor], session: _Session) -> tuple[dict[str, Tensor], Tensor | None]:
    """Move a training batch to the device; returns it and the track queries (frame 0's track points, or None
    without the track loss)."""
    batch = {k: v.to(session.device, non_blocking=True) for k, v in batch.items()}
    if session.config.loss.track_weight <= 0:
        return batch, None
    if "tracks" not in batch:
        raise ValueError("loss.track_weight > 0 needs ground-truth tracks: set data.num_tracks > 0")
    return batch, batch["tracks"][:, 0]


def _losses(session: _Session, batch: dict[str, Tensor], queries: Tensor | None) -> dict[str, Tensor]:
    predictions = session.ddp_model(batch["images"], queries, options=session.plan)
    return session.criterion(predictions, batch)


def _apply_gradients(session: _Session, objective: Tensor) -> dict[str, float]:
    """Backward pass, clipping per module, optimiser step; returns the pre-clipping gradient norms."""
    objective.backward()
    grad_norms = {}
    if session.config.optim.grad_clip > 0:
        for name, group_params in session.clip_groups.items():
            norm = torch.nn.utils.clip_grad_norm_(group_params, session.config.optim.grad_clip)
            grad_norms[f"grad_norm_{name}"] = float(norm)
    session.optimizer.step()
    return grad_norms


def _train_step(
    session: _Session, batch: dict[str, Tensor]
) -> tuple[dict[str, float], dict[str, float]] | None:
    """One optimiser step on a training batch; returns (losses, gradient norms), or None when some rank's loss
    was not finite (no update then)."""
    batch, queries = _to_device(batch, session)
    losses = _losses(session, batch, queries)
    objective = losses["objective"]
    finite = torch.isfinite(objective.detach()).float()
    session.optimizer.zero_grad(set_to_none=True)
    # All ranks must agree on skipping, or DDP would hang in the all-reduce.
    if bool(all_reduce_mean(finite, session.info) != 1.0):
        logger.warning("non-finite loss (%s); skipping the update", _fmt(losses))
        return None
    grad_norms = _apply_gradients(session, objective)
    return {k: float(v.detach()) for k, v in losses.items() if isinstance(v, Tensor)}, grad_norms


class _Reporter:
    """Rank 0's outputs during the loop: loss log, probe log, progress bar and checkpoints."""

    def __init__(
        self, session: _Session, out_dir: Path, start_step: int, probe_sets: dict[str, list]
    ) -> None:
        run = session.config.run
        self.session = session
        self.ckpt_dir = out_dir / "checkpoints"
        self.main = session.info.is_main
        resume = bool(run.resume)
        self.metrics = _MetricLogger(out_dir, "metrics", run.logger, resume) if self.main else None
        self.probe_log = _MetricLogger(out_dir, "probe", "csv", resume) if self.main and probe_sets else None
        self.probe_sets = probe_sets
        self.bar = None
        if run.progress and self.main:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=session.config.optim.max_steps, initial=start_step, desc="training", unit="step"
            )
        self.last_ckpt: Path | None = None

    def progress(self, values: dict[str, float], lr: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{values['objective']:.3f}", lr=f"{lr:.2e}")

    def log(self, step: int, losses: dict[str, float], extra: dict[str, float]) -> None:
        if self.metrics is None:
            return
        self.metrics.log(step, {**losses, **extra})
        if self.bar is None:
            logger.info("step %d/%d %s", step, self.session.config.optim.max_steps, _fmt(losses))

    def probe(self, step: int) -> None:
        """Score the model on the probe scenes (rank 0), then put it back in training mode."""
        if self.probe_log is None:
            return
        from vggtkit.train.probe import score_probe

        row: dict[str, float] = {}
        for name, scenes in self.probe_sets.items():
            scores = score_probe(self.session.model, scenes, self.session.device)
            row.update({f"{name}_{k}": v for k, v in scores.items()})
        _set_train_mode(self.session.model, self.session.frozen)
        self.probe_log.log(step, row)

    def checkpoint(self, step: int, skipped: int) -> None:
        if not self.main:
            return
        state = {"step": step, "skipped": skipped, "config": self.session.config.to_dict()}
        keep = self.session.config.run.keep_checkpoints
        self.last_ckpt = save_checkpoint(
            self.ckpt_dir, self.session.model, self.session.optimizer, state, keep
        )

    def close(self) -> None:
        for closable in (self.bar, self.metrics, self.probe_log):
            if closable is not None:
                closable.close()


def _probe_sets(config: TrainConfig, source: SceneSource, info: DistInfo) -> dict[str, list]:
    """Held-out and training scenes to score every ``run.probe_every`` steps (rank 0 only)."""
    run = config.run
    if not run.probe_every or not info.is_main:
        return {}
    from vggtkit.train.probe import heldout_probe_scenes, training_probe_scenes

    return {
        "heldout": heldout_probe_scenes(run.probe_scenes, config.data.image_size),
        "train": training_probe_scenes(source, run.probe_scenes),
    }


def _prepare_output(config: TrainConfig, info: DistInfo) -> Path:
    out_dir = Path(config.run.out_dir)
    if info.is_main:
        with atomic_path(out_dir / "train_config.json") as tmp:
            tmp.write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    return out_dir


def _log_start(session: _Session) -> None:
    model = session.model
    logger.info(
        "training %.2f M parameters (%.2f M trainable) on %s x%d, amp=%s, frozen=%s",
        sum(p.numel() for p in model.parameters()) / 1e6,
        sum(p.numel() for p in session.params.values()) / 1e6,
        session.device,
        session.info.world_size,
        session.amp_dtype,
        session.frozen or "none",
    )


# ----------------------------------------------------------------------------- the loop
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
    out_dir = _prepare_output(config, info)
    source = _scene_source(config, source, info)
    stream = BatchStream(
        source, _batch_options(config), seed=run.seed, rank=info.rank, world_size=info.world_size
    )
    session = _build_session(config, device, info)
    step, skipped = _resume(session, run.resume) if run.resume else (0, 0)
    reporter = _Reporter(session, out_dir, step, _probe_sets(config, source, info))
    _log_start(session)
    running = _RunningMean()
    last_losses: dict[str, float] = {}
    bad_in_a_row = 0
    _set_train_mode(session.model, session.frozen)
    batches = step_batches(stream, step, opt.max_steps, config.data.workers, pin_memory=device.type == "cuda")
    for batch in batches:
        lr = learning_rate(step, config)
        for group in session.optimizer.param_groups:
            group["lr"] = lr
        outcome = _train_step(session, batch)
        step += 1
        if outcome is None:
            skipped, bad_in_a_row = skipped + 1, bad_in_a_row + 1
            if bad_in_a_row >= opt.max_bad_steps:
                raise RuntimeError(
                    f"{bad_in_a_row} consecutive non-finite losses: lower optim.lr or check the data"
                )
            continue
        bad_in_a_row = 0
        values, grad_norms = outcome
        running.add(values)
        reporter.progress(values, lr)
        if step % run.log_every == 0 or step == opt.max_steps:
            last_losses = running.pop(info)
            extra = {"lr": lr, "frames": batch["images"].shape[1], "skipped": skipped}
            reporter.log(step, last_losses, {**grad_norms, **extra, "elapsed_s": _elapsed(start_time)})
        if run.probe_every and (step % run.probe_every == 0 or step == opt.max_steps):
            reporter.probe(step)
        if step % run.ckpt_every == 0 or step == opt.max_steps:
            reporter.checkpoint(step, skipped)
    reporter.close()
    if skipped:
        logger.warning("%d step(s) were skipped because of non-finite losses", skipped)
    wall = time.perf_counter() - start_time
    return TrainResult(step, out_dir, last_losses, skipped, wall, reporter.last_ckpt, session.model)


def _elapsed(start_time: float) -> float:
    return round(time.perf_counter() - start_time, 1)


def _fmt(losses: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={float(v.detach() if isinstance(v, Tensor) else v):.4g}" for k, v in losses.items()
    )
