"""Chunked reconstruction: chunks joined into one frame, as one pass would give, with loop closure and a refine hook.

Model outputs come from :class:`_sequences.Oracle` (ground truth of a rendered trajectory, each call in its own
frame and scale, with controlled errors) in place of the model call; the golden tiny model runs for real in
``test_a_real_model_in_chunks``.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from _sequences import Oracle, centre_error, trajectory
from scipy.spatial.transform import Rotation

from vggtkit import Reconstruction, reconstruct
from vggtkit.geometry import pose_encoding_to_extri_intri
from vggtkit.pipeline.loop_closure import PoseEdge, optimize_pose_graph
from vggtkit.pipeline.prediction import ChunkPrediction
from vggtkit.pipeline.sim3 import Sim3

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def use_oracle(monkeypatch):
    """Install an :class:`Oracle` of a sample as the model call; returns it."""

    def install(sample: dict, **noise) -> Oracle:
        oracle = Oracle(sample, **noise)
        monkeypatch.setattr("vggtkit.pipeline.run._run_model", oracle)
        return oracle

    return install


def _in_frame_of(sample: dict, reference: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth cameras (S, 3, 4) and world points (S, H, W, 3) with ``reference``'s camera as the world,
    lengths multiplied by ``scale``."""
    ext = sample["extrinsics"].double().numpy()
    rot0, t0 = ext[reference, :3, :3], ext[reference, :3, 3]
    world_from_gt = Sim3(scale, rot0, scale * t0)
    return world_from_gt.transform_cameras(ext), world_from_gt.apply(sample["world_points"].double().numpy())


def test_noise_free_chunks_give_the_exact_scene(golden_vggt, use_oracle) -> None:
    sample = trajectory(48)
    oracle = use_oracle(sample)
    rec = reconstruct(sample["images"], golden_vggt, device="cpu", chunk_size=12, overlap=3)
    assert [len(frames) for frames in oracle.calls] == [12] * 5  # 0-11, 9-20, 18-29, 27-38, 36-47
    assert isinstance(rec.depth, np.memmap) and rec.num_frames == 48
    # One world frame (frame 0's camera) and one scale (the first chunk's), for every chunk's frames.
    gt_depth = sample["depths"].double().numpy()
    valid = gt_depth > 0
    scale = float(np.median(rec.depth[..., 0][valid] / gt_depth[valid]))
    np.testing.assert_allclose(rec.depth[..., 0], scale * gt_depth, rtol=1e-5, atol=1e-6)
    cameras, points = _in_frame_of(sample, 0, scale)
    np.testing.assert_allclose(rec.extrinsic, cameras, atol=1e-5)
    np.testing.assert_allclose(rec.world_points_from_depth[valid], points[valid], rtol=1e-4, atol=1e-4)
    decoded, _ = pose_encoding_to_extri_intri(torch.from_numpy(rec.pose_enc).double(), rec.model_hw)
    np.testing.assert_allclose(decoded.numpy(), rec.extrinsic, atol=1e-5)
    np.testing.assert_allclose(rec.intrinsic, sample["intrinsics"].double().numpy(), rtol=1e-5)


def test_the_reference_frame_is_the_world(golden_vggt, use_oracle) -> None:
    sample = trajectory(48)
    use_oracle(sample)
    first = reconstruct(sample["images"], golden_vggt, device="cpu", chunk_size=12, overlap=3)
    use_oracle(sample)
    rec = reconstruct(sample["images"], golden_vggt, device="cpu", chunk_size=12, overlap=3, reference=30)
    assert rec.reference_index == 30
    np.testing.assert_allclose(rec.extrinsic[30], np.eye(4)[:3], atol=1e-6)
    scale = float(np.median(rec.depth / np.maximum(first.depth, 1e-9)))
    np.testing.assert_allclose(rec.extrinsic[:, :, :3], _in_frame_of(sample, 30, 1.0)[0][:, :, :3], atol=1e-5)
    # The same scene as with frame 0 as the world: relative poses agree.
    relative = rec.cam_from_world() @ np.linalg.inv(rec.cam_from_world()[30])
    expected = first.cam_from_world() @ np.linalg.inv(first.cam_from_world()[30])
    np.testing.assert_allclose(relative[:, :3, :3], expected[:, :3, :3], atol=1e-5)
    np.testing.assert_allclose(relative[:, :3, 3], scale * expected[:, :3, 3], atol=1e-5)


def test_noisy_chunks_lie_in_one_frame_about_as_well_as_one_pass(golden_vggt, use_oracle) -> None:
    """Camera-centre error after one global Sim(3) alignment: chunks within 1.5x of one pass (the target)."""
    sample = trajectory(48)
    truth = sample["extrinsics"].numpy()
    noise = {"rotation_noise_deg": 0.5, "translation_noise": 0.01, "depth_noise": 0.02, "outliers": 0.05}
    one_pass, chunked = [], []
    for seed in range(2):
        use_oracle(sample, seed=seed, **noise)
        one_pass.append(
            centre_error(reconstruct(sample["images"], golden_vggt, device="cpu").extrinsic, truth)
        )
        use_oracle(sample, seed=seed + 100, **noise)
        rec = reconstruct(sample["images"], golden_vggt, device="cpu", chunk_size=12, overlap=3)
        chunked.append(centre_error(rec.extrinsic, truth))
    assert 0.005 < np.mean(one_pass) < 0.05  # the noise is felt
    assert np.mean(chunked) <= 1.5 * np.mean(one_pass), (chunked, one_pass)


def test_chunks_covering_all_frames_are_one_pass(golden_vggt, use_oracle) -> None:
    sample = trajectory(48)
    oracle = use_oracle(sample)
    rec = reconstruct(sample["images"], golden_vggt, device="cpu", chunk_size=48)
    assert [len(c) for c in oracle.calls] == [48] and not isinstance(rec.depth, np.memmap)


def _exact_cameras(sample: dict, pred: ChunkPrediction) -> np.ndarray:
    """The cameras of a chunk without noise: ground truth in the chunk's frame and scale (read off its depth)."""
    frames = pred.frames
    gt_depth = sample["depths"][frames].double().numpy()
    valid = gt_depth > 0
    scale = float(np.median(pred.depth[..., 0][valid] / gt_depth[valid]))
    ext = sample["extrinsics"][frames].double().numpy()
    return Sim3(scale, ext[0, :3, :3], scale * ext[0, :3, 3]).transform_cameras(ext)


def test_refined_chunks_are_what_gets_aligned(golden_vggt, use_oracle) -> None:
    """A refiner (the place for bundle adjustment) sees every chunk's prediction and images before alignment;
    its cameras are the ones the chunks are joined and placed with."""
    sample = trajectory(48)
    truth = sample["extrinsics"].numpy()
    use_oracle(sample, rotation_noise_deg=1.0, translation_noise=0.02, seed=3)
    noisy = centre_error(
        reconstruct(sample["images"], golden_vggt, device="cpu", chunk_size=12).extrinsic, truth
    )
    seen = []

    def refine(pred: ChunkPrediction, images: torch.Tensor) -> ChunkPrediction:
        seen.append((pred.frames.tolist(), tuple(images.shape)))
        pred.extrinsic = _exact_cameras(sample, pred)
        return pred

    use_oracle(sample, rotation_noise_deg=1.0, translation_noise=0.02, seed=3)
    rec = reconstruct(sample["images"], golden_vggt, device="cpu", chunk_size=12, refine_chunk=refine)
    assert [frames[0] for frames, _ in seen] == [0, 9, 18, 27, 36]
    assert all(shape == (12, 3, 42, 56) for _, shape in seen)
    assert noisy > 0.01 and centre_error(rec.extrinsic, truth) < 1e-6


def test_pose_graph_spreads_a_loop_error() -> None:
    """Chunks on a circle, consecutive measurements each slightly off; one exact loop edge."""
    rng = np.random.default_rng(0)
    n = 12
    truth = [
        Sim3(
            np.exp(rng.normal(0, 0.2)),
            Rotation.from_rotvec([0, 0, a]).as_matrix(),
            [3 * np.cos(a), 3 * np.sin(a), 0],
        )
        for a in 2 * np.pi * np.arange(n) / n
    ]
    bias = Sim3(np.exp(0.02), Rotation.from_rotvec([0.0, 0.03, 0.02]).as_matrix(), [0.05, 0.0, 0.0])
    edges, chain = [], [truth[0]]
    for k in range(1, n):
        measured = truth[k - 1].inverse() @ truth[k] @ bias
        edges.append(PoseEdge(k - 1, k, measured, 1.0))
        chain.append(chain[-1] @ measured)
    loop = PoseEdge(0, n - 1, truth[0].inverse() @ truth[n - 1], 1.0)

    def error(world_from: list[Sim3]) -> float:
        return max(
            float(np.linalg.norm(w.translation - t.translation))
            for w, t in zip(world_from, truth, strict=True)
        )

    unchanged = optimize_pose_graph(chain, edges)  # without a loop the chain is already optimal
    np.testing.assert_allclose([w.matrix() for w in unchanged], [w.matrix() for w in chain], atol=1e-9)
    optimized = optimize_pose_graph(chain, [*edges, loop])
    np.testing.assert_array_equal(optimized[0].matrix(), chain[0].matrix())  # the first chunk is the world
    assert error(optimized) < error(chain) / 5, (error(optimized), error(chain))


def test_loop_closure_reduces_drift(golden_vggt, use_oracle, caplog) -> None:
    """A model whose cameras drift along each run: a loop round a room closes onto its start."""
    sample = trajectory(64, arc_deg=355.0, seed=5)
    truth = sample["extrinsics"].numpy()
    drift = {"drift_deg": 0.3, "rotation_noise_deg": 0.2, "seed": 1}
    use_oracle(sample, **drift)
    open_chain = reconstruct(sample["images"], golden_vggt, device="cpu", chunk_size=12, overlap=3)
    oracle = use_oracle(sample, **drift)
    with caplog.at_level(logging.INFO, logger="vggtkit.pipeline.chunked"):
        closed = reconstruct(
            sample["images"], golden_vggt, device="cpu", chunk_size=12, overlap=3, loop_closure=True
        )
    loop_calls = oracle.calls[7:]  # after the 7 chunks: runs on the frames of both places
    assert loop_calls and all(min(c) < 16 and max(c) >= 48 for c in loop_calls)
    assert "1 loop closure(s)" in caplog.text
    before, after = centre_error(open_chain.extrinsic, truth), centre_error(closed.extrinsic, truth)
    assert after < before / 3, (before, after)


def test_a_real_model_in_chunks(golden_vggt, tmp_path) -> None:
    """The golden tiny model (random weights) run in chunks: one reconstruction that saves and loads."""
    images = trajectory(48)["images"][:20]
    rec = reconstruct(images, golden_vggt, device="cpu", chunk_size=8, overlap=2, work_dir=tmp_path / "work")
    assert rec.num_frames == 20 and rec.world_points is not None  # the golden model has a point head
    assert np.isfinite(rec.depth).all() and np.isfinite(rec.world_points).all()
    assert {"inference", "alignment", "postprocess"} <= set(rec.timings)
    assert not list((tmp_path / "work").iterdir())  # the frame store is gone, its maps still readable
    loaded = Reconstruction.load_npz(rec.save_npz(tmp_path / "predictions.npz"))
    np.testing.assert_array_equal(loaded.depth, rec.depth)
    np.testing.assert_array_equal(loaded.world_points, rec.world_points)
    np.testing.assert_array_equal(loaded.images, images.numpy())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"overlap": 3}, "overlap is only used with chunk_size"),
        ({"chunk_size": 4, "overlap": 4}, r"overlap must be smaller than chunk_size \(4\)"),
        ({"chunk_size": 1}, "chunk_size must be a number of frames >= 2"),
        ({"chunk_size": 4, "overlap": 0}, "overlap must be a number of frames >= 1"),
        ({"max_memory": "lots"}, "cannot read max_memory 'lots'"),
    ],
)
def test_bad_chunk_options(golden_vggt, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        reconstruct(torch.rand(4, 3, 28, 28), golden_vggt, device="cpu", **options)


def test_running_out_of_memory_in_a_chunk_suggests_smaller_chunks(golden_vggt, monkeypatch) -> None:
    from vggtkit.pipeline import InsufficientMemoryError

    def oom(*args):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr("vggtkit.pipeline.run._run_model", oom)
    with pytest.raises(
        InsufficientMemoryError, match=r"running 8 frames .* try smaller chunks \(chunk_size=4\)"
    ):
        reconstruct(torch.rand(20, 3, 28, 28), golden_vggt, device="cpu", chunk_size=8)
    with pytest.raises(
        InsufficientMemoryError, match=r"try chunks \(chunk_size=10, or max_memory to choose them\)"
    ):
        reconstruct(torch.rand(20, 3, 28, 28), golden_vggt, device="cpu")
