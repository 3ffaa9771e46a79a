"""Chunked reconstruction of long sequences in bounded memory.

The sequence is run through the model in overlapping chunks (:func:`~vggtkit.pipeline.planning.chunk_spans`),
read from disk only as each chunk starts (:mod:`vggtkit.pipeline.streaming`). Each chunk is predicted in its own
frame; consecutive chunks are joined by the similarity transform their shared frames agree on
(:func:`~vggtkit.pipeline.alignment.estimate_sim3`), and the chain of these transforms places every chunk in the
world frame, that of frame 0 (or of the reference frame). With loop closure, revisited places add constraints
between distant chunks and a pose graph spreads the accumulated drift over the chain
(:mod:`vggtkit.pipeline.loop_closure`). Finally each frame's prediction, from the chunk that owns it
(:func:`~vggtkit.pipeline.planning.owned_ranges`), is moved into the world frame: cameras composed with the
chunk's transform, depth multiplied by its scale, point maps transformed.

What stays in memory: the model, one chunk's frames and outputs, the previous chunk's shared frames, and a few
hundred bytes per frame (cameras, names, place descriptors). Per-frame maps go to a
:class:`~vggtkit.pipeline.store.FrameStore` on disk; the returned reconstruction maps them back.

Refinement hook: ``refine(prediction, images)`` is called on every chunk's prediction before it is stored and
aligned (a :data:`ChunkRefiner`, e.g. bundle adjustment of the chunk's cameras and depths); alignment, loop
closure and the final transform then use the refined cameras and depths.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from vggtkit.geometry import extri_intri_to_pose_encoding, unproject_depth_map_to_point_map
from vggtkit.pipeline.alignment import Alignment, estimate_sim3
from vggtkit.pipeline.frames import PreparedFrames, concat_frames, slice_frames
from vggtkit.pipeline.loop_closure import (
    LoopCandidate,
    PoseEdge,
    find_loop_candidates,
    frame_descriptor,
    optimize_pose_graph,
)
from vggtkit.pipeline.planning import ChunkSpan, RunPlan, owned_ranges
from vggtkit.pipeline.prediction import ChunkPrediction, prediction_from_output
from vggtkit.pipeline.sim3 import Sim3
from vggtkit.pipeline.store import FrameStore
from vggtkit.pipeline.streaming import FrameFeed
from vggtkit.reconstruction import Reconstruction

__all__ = ["ChunkRefiner", "ChunkedOptions", "Predictor", "reconstruct_chunked"]

logger = logging.getLogger(__name__)

Predictor = Callable[[torch.Tensor], dict]
"""Runs the model: images (n, 3, H, W) in [0, 1] -> its output dict (batch of 1)."""
ChunkRefiner = Callable[[ChunkPrediction, torch.Tensor], ChunkPrediction]
"""Refines one chunk's prediction given its images (n, 3, H, W) before the chunk is aligned; returns the refined
prediction of the same frames in the same (chunk) frame."""
Progress = Callable[[str, int, int], None]

LOOP_MIN_SIMILARITY = 0.6  # descriptor similarity of a loop candidate (see loop_closure.frame_descriptor)
LOOP_MIN_INLIERS = 0.5  # share of confident pixels a loop chunk must agree on with each of the two chunks
_LOCAL = ("depth", "depth_conf", "world_points", "world_points_conf")  # dense maps kept per chunk


@dataclass(frozen=True)
class ChunkedOptions:
    """How :func:`reconstruct_chunked` runs.

    Attributes:
        loop_closure: detect revisited places and optimise the chunk chain with them.
        reference: the frame whose camera is the world frame.
        mode: the preprocessing mode (e.g. "crop"), recorded in the result.
        work_dir: folder for the frame store (None: the system's temporary folder).
    """

    loop_closure: bool = False
    reference: int = 0
    mode: str = "crop"
    work_dir: str | os.PathLike[str] | None = None


@dataclass
class _ChunkRecord:
    """What stays in memory of a chunk: its span, cameras and where its maps are stored."""

    span: ChunkSpan
    cameras: ChunkPrediction  # dense arrays emptied: (n, 0, 0, ...)
    records: dict[int, int]  # frame -> record in the store
    median_depth: float


@dataclass
class _Sequence:
    """Per-frame metadata of the whole sequence, in memory (small)."""

    names: list[str] = field(default_factory=list)
    image_paths: list[str] = field(default_factory=list)
    original_hw: list[np.ndarray] = field(default_factory=list)
    original_from_model: list[np.ndarray] = field(default_factory=list)
    descriptors: list[np.ndarray] = field(default_factory=list)

    def extend(self, frames: PreparedFrames, describe: bool) -> None:
        self.names += frames.names
        self.image_paths += frames.image_paths
        self.original_hw += list(frames.original_hw)
        self.original_from_model += list(frames.original_from_model)
        if describe:
            self.descriptors += [frame_descriptor(image) for image in frames.images.numpy()]


def _cameras_only(pred: ChunkPrediction) -> ChunkPrediction:
    n = pred.num_frames
    empty = np.zeros((n, 0, 0), np.float32)
    return ChunkPrediction(
        pred.frames, pred.pose_enc, pred.extrinsic, pred.intrinsic, empty[..., None], empty
    )


def _median_depth(pred: ChunkPrediction) -> float:
    depth = pred.depth[np.isfinite(pred.depth) & (pred.depth > 0)]
    return float(np.median(depth)) if depth.size else 1.0


class _ChunkedRun:
    """The state of one chunked reconstruction: the store, the chunks done, the alignments."""

    def __init__(
        self,
        predict: Predictor,
        feed: FrameFeed,
        plan: RunPlan,
        options: ChunkedOptions,
        refine: ChunkRefiner | None,
    ) -> None:
        self.predict = predict
        self.feed = feed
        self.plan = plan
        self.options = options
        self.refine = refine
        self.hw = feed.hw
        self.store = FrameStore(options.work_dir)
        self.chunks: list[_ChunkRecord] = []
        self.sequential: list[Alignment] = []
        self.sequence = _Sequence()
        self.timings: dict[str, float] = {}
        self._records = 0
        self._previous: ChunkPrediction | None = None  # the last chunk's prediction of the frames it shares

    def _time(self, stage: str, start: float) -> None:
        self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - start

    # ------------------------------------------------------------------ streaming
    def stream(self, progress: Progress | None) -> None:
        """Run every chunk as its frames arrive."""
        carry: PreparedFrames | None = None
        frames_read = 0
        for planned, following in zip(self.plan.spans, [*self.plan.spans[1:], None], strict=True):
            start = time.perf_counter()
            new = self.feed.take(planned.stop - frames_read)
            self._time("load_images", start)
            if new is None:
                break  # the input ended early (a video shorter than its container said)
            frames_read += len(new.names)
            batch = new if carry is None else concat_frames(carry, new)
            span = ChunkSpan(planned.index, planned.start, frames_read)
            self._keep_frames(new, frames_read - len(new.names))
            self._run_chunk(span, batch, following)
            if progress is not None:
                progress("inference", frames_read, self.feed.num_frames)
            if following is None or frames_read < planned.stop:
                break
            carry = slice_frames(batch, following.start - span.start, len(batch.names))
        if frames_read < self.feed.num_frames:
            logger.warning("%d of the %d expected frames could be read", frames_read, self.feed.num_frames)

    def _keep_frames(self, new: PreparedFrames, first: int) -> None:
        """Store the new frames' images and source pixels, and keep their metadata."""
        frames = range(first, first + len(new.names))
        self.store.write_many("images", frames, new.images.numpy())
        for path, rgb in zip(new.image_paths, new.source_frames, strict=True):
            self.store.append_source(None if path else rgb)
        self.sequence.extend(new, self.options.loop_closure)

    def _predict(self, frames: np.ndarray, images: torch.Tensor, names: list[str]) -> ChunkPrediction:
        start = time.perf_counter()
        pred = prediction_from_output(self.predict(images), frames, names, self.hw)
        if self.refine is not None:
            pred = self.refine(pred, images)
        self._time("inference", start)
        return pred

    def _run_chunk(self, span: ChunkSpan, batch: PreparedFrames, following: ChunkSpan | None) -> None:
        frames = np.arange(span.start, span.stop)
        pred = self._predict(frames, batch.images, batch.names)
        start = time.perf_counter()
        records = self._store_local(pred)
        if self._previous is not None:
            shared = self._previous.frames
            self.sequential.append(estimate_sim3(self._previous, pred.subset(shared)))
        self._previous = pred.subset(frames[frames >= following.start]) if following is not None else None
        self.chunks.append(_ChunkRecord(span, _cameras_only(pred), records, _median_depth(pred)))
        self._time("alignment", start)

    def _store_local(self, pred: ChunkPrediction) -> dict[int, int]:
        records = dict(
            zip(pred.frames.tolist(), range(self._records, self._records + pred.num_frames), strict=True)
        )
        self._records += pred.num_frames
        for name in _LOCAL:
            if getattr(pred, name) is not None:
                self.store.write_many(f"local_{name}", list(records.values()), getattr(pred, name))
        return records

    def local_prediction(self, chunk: int, frames: np.ndarray) -> ChunkPrediction:
        """A chunk's prediction of some of its frames, dense maps read back from the store."""
        record = self.chunks[chunk]
        cameras = record.cameras.subset(frames)
        rows = [record.records[int(f)] for f in frames]
        dense = {
            name: self.store.read(f"local_{name}", rows) if self.store.has(f"local_{name}") else None
            for name in _LOCAL
        }
        return ChunkPrediction(
            cameras.frames, cameras.pose_enc, cameras.extrinsic, cameras.intrinsic, **dense
        )

    # ------------------------------------------------------------------ chaining and loops
    def chain(self) -> list[Sim3]:
        """``world_from_chunk`` of every chunk from the consecutive alignments (chunk 0 is the world)."""
        world_from = [Sim3()]
        for alignment in self.sequential:
            world_from.append(world_from[-1] @ alignment.target_from_source)
        return world_from

    def sequential_edges(self) -> list[PoseEdge]:
        return [
            PoseEdge(k, k + 1, a.target_from_source, self.chunks[k + 1].median_depth)
            for k, a in enumerate(self.sequential)
        ]

    def _loop_window(self, chunk: int, frame: int, owned: tuple[int, int]) -> np.ndarray:
        half = max(0, (self.plan.chunk_size - 2) // 4)  # two windows of 2 * half + 1 frames fit in one chunk
        return np.arange(max(owned[0], frame - half), min(owned[1], frame + half + 1))

    def loop_edge(self, candidate: LoopCandidate, owned: list[tuple[int, int]]) -> PoseEdge | None:
        """Run the model on the frames around both places together, and align that run with each chunk."""
        frames_a = self._loop_window(candidate.chunk_a, candidate.frame_a, owned[candidate.chunk_a])
        frames_b = self._loop_window(candidate.chunk_b, candidate.frame_b, owned[candidate.chunk_b])
        frames = np.concatenate([frames_a, frames_b])
        images = torch.from_numpy(self.store.read("images", frames))
        loop = self._predict(frames, images, [self.sequence.names[f] for f in frames])
        a_from_loop = estimate_sim3(self.local_prediction(candidate.chunk_a, frames_a), loop.subset(frames_a))
        b_from_loop = estimate_sim3(self.local_prediction(candidate.chunk_b, frames_b), loop.subset(frames_b))
        agreement = min(a_from_loop.inlier_fraction, b_from_loop.inlier_fraction)
        if agreement < LOOP_MIN_INLIERS:
            logger.info(
                "loop candidate frames %d and %d rejected: the joint run agrees with only %.0f %% of the pixels",
                candidate.frame_a,
                candidate.frame_b,
                100 * agreement,
            )
            return None
        a_from_b = a_from_loop.target_from_source @ b_from_loop.target_from_source.inverse()
        return PoseEdge(
            candidate.chunk_a, candidate.chunk_b, a_from_b, self.chunks[candidate.chunk_b].median_depth
        )

    def close_loops(self, world_from: list[Sim3], progress: Progress | None) -> tuple[list[Sim3], int]:
        """Optimised ``world_from_chunk`` with the loops found, and the number of loops used."""
        owned = owned_ranges([c.span for c in self.chunks])
        chunk_of = np.concatenate([np.full(b - a, k) for k, (a, b) in enumerate(owned)])
        candidates = find_loop_candidates(np.stack(self.sequence.descriptors), chunk_of, LOOP_MIN_SIMILARITY)
        edges = []
        for done, candidate in enumerate(candidates, start=1):
            edge = self.loop_edge(candidate, owned)
            if edge is not None:
                edges.append(edge)
            if progress is not None:
                progress("loop closure", done, len(candidates))
        if not edges:
            return world_from, 0
        return optimize_pose_graph(world_from, self.sequential_edges() + edges), len(edges)

    # ------------------------------------------------------------------ final frame
    def _reference_from_world(self, world_from: list[Sim3], owned: list[tuple[int, int]]) -> Sim3:
        """The rigid change to the reference frame's camera (identity for frame 0's chunk frame)."""
        reference = self.options.reference
        if reference == 0:
            return Sim3()
        chunk = next(k for k, (a, b) in enumerate(owned) if a <= reference < b)
        camera = world_from[chunk].transform_cameras(
            self.chunks[chunk].cameras.subset([reference]).extrinsic
        )[0]
        return Sim3(1.0, camera[:, :3], camera[:, 3])

    def finalize(self, world_from: list[Sim3], progress: Progress | None) -> Reconstruction:
        """Move every frame into the world frame and build the reconstruction on the stored maps."""
        owned = owned_ranges([c.span for c in self.chunks])
        to_reference = self._reference_from_world(world_from, owned)
        cameras = []
        for k, (first, stop) in enumerate(owned):
            frames = np.arange(first, stop)
            cameras.append(
                self._write_world_frames(self.local_prediction(k, frames), to_reference @ world_from[k])
            )
            if progress is not None:
                progress("postprocess", k + 1, len(owned))
        return self._reconstruction(cameras)

    def _write_world_frames(self, pred: ChunkPrediction, world_from_chunk: Sim3) -> ChunkPrediction:
        extrinsic = world_from_chunk.transform_cameras(pred.extrinsic)
        depth = (world_from_chunk.scale * pred.depth).astype(np.float32)
        frames = pred.frames.tolist()
        self.store.write_many("depth", frames, depth)
        self.store.write_many("depth_conf", frames, pred.depth_conf)
        points = unproject_depth_map_to_point_map(depth, extrinsic, pred.intrinsic).astype(np.float32)
        self.store.write_many("world_points_from_depth", frames, points)
        if pred.world_points is not None:
            self.store.write_many(
                "world_points", frames, world_from_chunk.apply(pred.world_points).astype(np.float32)
            )
            self.store.write_many("world_points_conf", frames, pred.world_points_conf)
        pose_enc = extri_intri_to_pose_encoding(
            torch.from_numpy(extrinsic), torch.from_numpy(pred.intrinsic), self.hw
        ).numpy()
        return _cameras_only(
            ChunkPrediction(pred.frames, pose_enc, extrinsic, pred.intrinsic, depth, pred.depth_conf)
        )

    def _reconstruction(self, cameras: list[ChunkPrediction]) -> Reconstruction:
        intrinsic = np.concatenate([c.intrinsic for c in cameras])
        original_from_model = np.stack(self.sequence.original_from_model)
        has_points = self.store.has("world_points")
        return Reconstruction(
            pose_enc=np.concatenate([c.pose_enc for c in cameras]),
            extrinsic=np.concatenate([c.extrinsic for c in cameras]),
            intrinsic=intrinsic,
            depth=self.store.mapped("depth"),
            depth_conf=self.store.mapped("depth_conf"),
            world_points=self.store.mapped("world_points") if has_points else None,
            world_points_conf=self.store.mapped("world_points_conf") if has_points else None,
            world_points_from_depth=self.store.mapped("world_points_from_depth"),
            images=self.store.mapped("images"),
            intrinsic_original=original_from_model @ intrinsic,
            original_from_model=original_from_model,
            original_hw=np.stack(self.sequence.original_hw),
            names=self.sequence.names,
            image_paths=self.sequence.image_paths,
            reference_index=self.options.reference,
            mode=self.options.mode,
            source_frames=self.store.source_frames(),
        )


def _summary(run: _ChunkedRun, loops: int, seconds: float) -> str:
    frames = len(run.sequence.names)
    residuals = [a.median_residual for a in run.sequential if np.isfinite(a.median_residual)]
    inliers = [a.inlier_fraction for a in run.sequential]
    joins = (
        f"median residual of the shared frames {100 * float(np.median(residuals)):.2g} % of depth, "
        f"least agreeing join {100 * min(inliers):.0f} % inliers"
        if residuals
        else "no join"
    )
    return (
        f"{frames} frames in {len(run.chunks)} chunks of {run.plan.chunk_size} (overlap {run.plan.overlap}): "
        f"{joins}; {loops} loop closure(s); {seconds:.1f} s ({frames / max(seconds, 1e-9):.2f} frames/s)"
    )


def reconstruct_chunked(
    predict: Predictor,
    feed: FrameFeed,
    plan: RunPlan,
    options: ChunkedOptions,
    *,
    refine: ChunkRefiner | None = None,
    progress: Progress | None = None,
) -> Reconstruction:
    """Reconstruct a sequence chunk by chunk and join the chunks into one reconstruction.

    Args:
        predict: runs the model on a batch of frames (see :data:`Predictor`).
        feed: the frames, read in order as chunks need them.
        plan: chunk size, overlap and spans (:func:`~vggtkit.pipeline.planning.plan_chunks`).
        options: loop closure, reference frame, preprocessing mode, work folder.
        refine: optional refinement of each chunk before it is aligned (see :data:`ChunkRefiner`).
        progress: ``progress(stage, done, total)``: "inference" counts frames, "loop closure" candidates,
            "postprocess" chunks.

    Returns:
        One :class:`Reconstruction` of every frame in the world frame; its per-frame maps are memory-mapped from
        unlinked files (see :mod:`vggtkit.pipeline.store`); ``timings`` has the seconds of each stage.
    """
    start = time.perf_counter()
    run = _ChunkedRun(predict, feed, plan, options, refine)
    try:
        run.stream(progress)
        world_from = run.chain()
        loops = 0
        if options.loop_closure and len(run.chunks) > 2:
            t_loops = time.perf_counter()
            world_from, loops = run.close_loops(world_from, progress)
            run._time("loop_closure", t_loops)
        t_final = time.perf_counter()
        rec = run.finalize(world_from, progress)
        run._time("postprocess", t_final)
    finally:
        run.store.close()
    rec.timings.update(run.timings)
    logger.info("%s", _summary(run, loops, time.perf_counter() - start))
    return rec
