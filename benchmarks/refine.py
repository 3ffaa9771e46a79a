"""Refinement ("VGGT + BA") against ground truth, beside COLMAP's own from-scratch result; and its time.

Three parts, each printing a Markdown table:

* ``model``: synthetic scenes (448 px, 6 views, seeds outside the held-out set) reconstructed by the shipped
  ``tiny-synthetic`` model (at its 112 px), then refined at the original resolution; COLMAP (pycolmap's
  SIFT extraction, exhaustive matching and incremental mapping, default options) from scratch on the same
  images. AUC@30 over all frame pairs (pooled over scenes, as ``vggtkit evaluate``); a frame COLMAP does
  not register makes its pairs count as failed (180 degrees).
* ``perturbed``: the same scenes from ground-truth cameras rotated by 3 degrees and moved by 5 % of their
  distance to the first camera, depth with 2 % noise per pixel and up to 5 % per frame: mean rotation error
  (relative to the first camera) before and after refinement.
* ``timing``: refinement time for 10, 25 and 50 frames at 518 px (perturbed ground-truth start, as a good
  model gives), split into stages.
* ``track-head``: the cost of the track-head source (one forward pass per query frame) beside the classical
  matcher on the same scene: the shipped model's architecture with a track head added (random weights: no
  trained track head exists here, so only the cost means something).

    python benchmarks/refine.py                              # everything (about 30 min on 2 busy cores)
    python benchmarks/refine.py --parts model --seeds 100 101 102
    python benchmarks/refine.py --parts timing --timing-frames 10 25
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.spatial.transform import Rotation

from vggtkit.data.synthetic import SyntheticSceneConfig, load_heldout_set, render_scene
from vggtkit.metrics.pose import pose_metrics, relative_pose_errors
from vggtkit.pipeline import Reconstruction
from vggtkit.refine import refine

FAILED = 180.0  # pair error when a method leaves a frame without a pose


# ----------------------------------------------------------------------------------------------- scenes
def _render(seed: int, frames: int, size: int) -> dict:
    return render_scene(SyntheticSceneConfig(num_frames=frames, image_size=(size, size), num_tracks=0), seed)


def _rgb(sample: dict) -> list[np.ndarray]:
    return [np.rint(im.transpose(1, 2, 0) * 255).astype(np.uint8) for im in sample["images"].numpy()]


def _write_images(sample: dict, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, rgb in enumerate(_rgb(sample)):
        paths.append(folder / f"frame_{i:03d}.png")
        Image.fromarray(rgb).save(paths[-1])
    return paths


def _first_camera_world(extrinsics: np.ndarray) -> np.ndarray:
    world_from_first = np.linalg.inv(np.vstack((extrinsics[0], [0, 0, 0, 1])))
    return np.stack([e @ world_from_first for e in extrinsics])


def _perturbed_reconstruction(sample: dict, seed: int) -> tuple[Reconstruction, np.ndarray]:
    """Ground truth with cameras 3 degrees / 5 % off and noisy depth, at the original resolution."""
    rng = np.random.default_rng(seed)
    truth = _first_camera_world(sample["extrinsics"].double().numpy())
    poses = truth.copy()
    for i in range(1, len(poses)):
        axis = rng.normal(size=3)
        rot = (
            Rotation.from_rotvec(np.radians(3.0) * axis / np.linalg.norm(axis)).as_matrix() @ truth[i, :, :3]
        )
        centre = -truth[i, :, :3].T @ truth[i, :, 3]
        step = rng.normal(size=3)
        centre = centre + 0.05 * np.linalg.norm(centre) * step / np.linalg.norm(step)
        poses[i] = np.concatenate((rot, (-rot @ centre)[:, None]), axis=1)
    K = sample["intrinsics"].double().numpy()
    depth = sample["depths"].numpy()
    depth = (
        depth * rng.uniform(0.95, 1.05, (len(depth), 1, 1)) * (1 + 0.02 * rng.standard_normal(depth.shape))
    )
    rec = Reconstruction.from_cameras(sample["images"].numpy(), poses, K, depth.astype(np.float32))
    return rec, truth


def _rotation_errors(poses: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(S - 1,) degrees between each camera's rotation relative to the first and the truth's."""
    out = []
    for i in range(1, len(poses)):
        rel = poses[i, :, :3] @ poses[0, :, :3].T
        rel_truth = truth[i, :, :3] @ truth[0, :, :3].T
        out.append(np.degrees(Rotation.from_matrix(rel @ rel_truth.T).magnitude()))
    return np.array(out)


# ----------------------------------------------------------------------------------------------- methods
def _pair_errors(extrinsics: np.ndarray, truth: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Relative pose errors; pairs with a frame without a pose (NaN) count as failed."""
    missing = ~np.isfinite(extrinsics).all(axis=(1, 2))
    rot, trans = relative_pose_errors(torch.from_numpy(np.nan_to_num(extrinsics)), truth)
    i, j = np.triu_indices(len(extrinsics), 1)
    failed = missing[i] | missing[j]
    rot[failed], trans[failed] = FAILED, FAILED
    return rot, trans


def colmap_from_scratch(paths: list[Path], work: Path) -> np.ndarray:
    """COLMAP's own reconstruction with default options: (S, 3, 4) poses of its largest model, NaN where an
    image is not registered (all NaN when no model is built)."""
    import pycolmap

    pycolmap.set_random_seed(0)
    database = work / "database.db"
    image_dir = paths[0].parent
    pycolmap.extract_features(database, image_dir, device=pycolmap.Device.cpu)
    pycolmap.match_exhaustive(database, device=pycolmap.Device.cpu)
    models = pycolmap.incremental_mapping(database, image_dir, work / "sparse")
    poses = np.full((len(paths), 3, 4), np.nan)
    if models:
        best = max(models.values(), key=lambda m: m.num_reg_images())
        names = [p.name for p in paths]
        for image in best.images.values():
            if image.has_pose:
                poses[names.index(image.name)] = image.cam_from_world().matrix()
    return poses


def _summary(rot: list[np.ndarray], trans: list[np.ndarray]) -> dict:
    metrics = pose_metrics(np.concatenate(rot), np.concatenate(trans))
    return {
        "auc@30": 100 * metrics["auc@30"],
        "rra@5": 100 * metrics["rra@5"],
        "rot_median": metrics["rot_err_median"],
    }


# ----------------------------------------------------------------------------------------------- parts
def run_model_part(seeds: list[int], size: int, frames: int, with_colmap: bool) -> dict:
    import vggtkit

    model = vggtkit.VGGT.from_pretrained("tiny-synthetic")
    methods = ("tiny-synthetic", "tiny-synthetic + refinement") + (
        ("COLMAP from scratch",) if with_colmap else ()
    )
    errors = {m: ([], []) for m in methods}
    rows = []
    for seed in seeds:
        sample = _render(seed, frames, size)
        truth = sample["extrinsics"].double()
        work = Path(tempfile.mkdtemp(prefix=f"refine-bench-{seed}-"))
        try:
            paths = _write_images(sample, work / "images")
            rec = vggtkit.reconstruct(paths, model=model, device="cpu", resolution=model.config.img_size)
            start = time.perf_counter()
            result = refine(rec)
            seconds = time.perf_counter() - start
            poses = {
                "tiny-synthetic": rec.extrinsic,
                "tiny-synthetic + refinement": result.reconstruction.extrinsic,
            }
            colmap_seconds = None
            if with_colmap:
                start = time.perf_counter()
                poses["COLMAP from scratch"] = colmap_from_scratch(paths, work)
                colmap_seconds = time.perf_counter() - start
        finally:
            shutil.rmtree(work, ignore_errors=True)
        row = {"seed": seed, "refine_s": seconds, "colmap_s": colmap_seconds, "status": result.report.status}
        for method, extrinsics in poses.items():
            rot, trans = _pair_errors(extrinsics, truth)
            errors[method][0].append(rot)
            errors[method][1].append(trans)
            row[method] = 100 * pose_metrics(rot, trans)["auc@30"]
        row["refined frames"] = int(result.refined.sum())
        if with_colmap:
            row["COLMAP registered"] = int(np.isfinite(poses["COLMAP from scratch"]).all(axis=(1, 2)).sum())
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return {"rows": rows, "summary": {m: _summary(*errors[m]) for m in methods}}


def run_perturbed_part(seeds: list[int], size: int, frames: int) -> dict:
    rows = []
    for seed in seeds:
        rec, truth = _perturbed_reconstruction(_render(seed, frames, size), seed)
        start = time.perf_counter()
        result = refine(rec)
        row = {
            "seed": seed,
            "before": float(_rotation_errors(rec.extrinsic, truth).mean()),
            "after": float(_rotation_errors(result.reconstruction.extrinsic, truth).mean()),
            "status": result.report.status,
            "refine_s": time.perf_counter() - start,
        }
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return {"rows": rows, "mean_after": float(np.mean([r["after"] for r in rows]))}


def run_timing_part(counts: list[int], size: int, seed: int) -> dict:
    sample = _render(seed, max(counts), size)
    rows = []
    for count in counts:
        keep = np.round(np.linspace(0, max(counts) - 1, count)).astype(int)
        part = {
            k: (v[keep] if isinstance(v, torch.Tensor) and v.shape[:1] == (max(counts),) else v)
            for k, v in sample.items()
        }
        rec, truth = _perturbed_reconstruction(part, seed)
        start = time.perf_counter()
        result = refine(rec)
        total = time.perf_counter() - start
        row = {
            "frames": count,
            "refine_s": total,
            "correspondences_s": result.report.seconds.get("correspondences", 0.0),
            "registration_s": result.report.seconds.get("registration", 0.0),
            "guided_s": result.report.seconds.get("guided_matching", 0.0),
            # Registration includes its adjustment rounds; the final rounds follow guided matching when it helps.
            "adjustment_s": result.report.seconds.get("registration", 0.0)
            + result.report.seconds.get("final_adjustment", 0.0),
            "tracks": result.report.num_tracks,
            "rotation_error_after": float(_rotation_errors(result.reconstruction.extrinsic, truth).mean()),
            "status": result.report.status,
        }
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return {"rows": rows}


TRACK_HEAD_RESOLUTION = 224


def run_track_head_part(seed: int, size: int, frames: int, query_points: int) -> dict:
    import vggtkit
    from vggtkit.models.vggt.config import preset_config
    from vggtkit.refine import ClassicalMatcher
    from vggtkit.refine.track_head import TrackHeadSource

    sample = _render(seed, frames, size)
    work = Path(tempfile.mkdtemp(prefix="refine-bench-track-"))
    try:
        paths = _write_images(sample, work)
        # 224 px: at the shipped 112 px the track head's 4-level correlation pyramid pools its 8x8 feature map
        # below one cell.
        rec = vggtkit.reconstruct(
            paths, model="tiny-synthetic", device="cpu", resolution=TRACK_HEAD_RESOLUTION
        )
        query = list(range(frames))
        start = time.perf_counter()
        classical = ClassicalMatcher().find(rec, query)
        classical_s = time.perf_counter() - start
        torch.manual_seed(0)
        model = vggtkit.VGGT(preset_config("tiny-synthetic", enable_track=True)).eval()
        source = TrackHeadSource(model, max_query_points=query_points)
        start = time.perf_counter()
        tracked = source.find(rec, query)
        track_s = time.perf_counter() - start
        start = time.perf_counter()
        with torch.inference_mode():
            model(torch.from_numpy(rec.images))
        forward_s = time.perf_counter() - start
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "frames": frames,
        "query_frames": len(query),
        "query_points": query_points,
        "classical_s": classical_s,
        "classical_tracks": len(classical.tracks),
        "track_head_s": track_s,
        "track_head_s_per_query": float(np.mean(source.seconds_per_query)),
        "forward_without_tracks_s": forward_s,
        "track_head_tracks": len(tracked.tracks),
    }


# ----------------------------------------------------------------------------------------------- tables
def print_model_table(part: dict) -> None:
    methods = [m for m in part["summary"]]
    print("\n### Cameras of the shipped model alone, refined, and COLMAP from scratch (AUC@30, %)\n")
    print("| seed | " + " | ".join(methods) + " | refined frames | COLMAP registered | refine s | COLMAP s |")
    print("|---:|" + "---:|" * (len(methods) + 4))
    for row in part["rows"]:
        cells = [f"{row[m]:.1f}" for m in methods]
        colmap_s = "-" if row["colmap_s"] is None else f"{row['colmap_s']:.1f}"
        print(
            f"| {row['seed']} | " + " | ".join(cells) + f" | {row['refined frames']} | "
            f"{row.get('COLMAP registered', '-')} | {row['refine_s']:.1f} | {colmap_s} |"
        )
    summary = part["summary"]
    print("| **pooled** | " + " | ".join(f"**{summary[m]['auc@30']:.1f}**" for m in methods) + " | | | | |")
    print("\n| method | AUC@30 | RRA@5 | median rotation error (deg) |\n|---|---:|---:|---:|")
    for m in methods:
        s = summary[m]
        print(f"| {m} | {s['auc@30']:.1f} | {s['rra@5']:.1f} | {s['rot_median']:.2f} |")


def print_perturbed_table(part: dict) -> None:
    print("\n### From ground-truth cameras perturbed by 3 degrees and 5 % (mean rotation error, degrees)\n")
    print("| seed | before | after | status | refine s |\n|---:|---:|---:|---|---:|")
    for row in part["rows"]:
        print(
            f"| {row['seed']} | {row['before']:.2f} | {row['after']:.3f} | {row['status']} | {row['refine_s']:.1f} |"
        )
    print(f"| **mean** | 3.00 | **{part['mean_after']:.3f}** | | |")


def print_timing_table(part: dict, size: int) -> None:
    print(f"\n### Refinement time at {size} px (perturbed ground-truth start)\n")
    print(
        "| frames | refine s | correspondences s | registration + adjustment s | tracks | rotation error after (deg) | status |"
    )
    print("|---:|---:|---:|---:|---:|---:|---|")
    for r in part["rows"]:
        print(
            f"| {r['frames']} | {r['refine_s']:.1f} | {r['correspondences_s']:.1f} | {r['adjustment_s']:.1f} | "
            f"{r['tracks']} | {r['rotation_error_after']:.3f} | {r['status']} |"
        )


def print_track_head_table(part: dict) -> None:
    print(
        f"\n### Correspondences for {part['frames']} frames (all query frames): classical matcher vs track head\n"
    )
    print("| source | seconds | per query frame | tracks |\n|---|---:|---:|---:|")
    print(
        f"| classical (SIFT at original resolution) | {part['classical_s']:.1f} | | {part['classical_tracks']} |"
    )
    print(
        f"| track head, {part['query_points']} query points (random weights) | {part['track_head_s']:.1f} | "
        f"{part['track_head_s_per_query']:.2f} | {part['track_head_tracks']} |"
    )
    print(f"| one forward pass without query points | {part['forward_without_tracks_s']:.2f} | | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=("model", "perturbed", "timing", "track-head"),
        default=["model", "perturbed", "timing", "track-head"],
    )
    parser.add_argument("--query-points", type=int, default=1024, help="track-head part: per query frame")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(range(100, 116)))
    parser.add_argument("--size", type=int, default=448)
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--no-colmap", action="store_true", help="skip COLMAP's from-scratch reconstruction")
    parser.add_argument("--timing-frames", nargs="+", type=int, default=[10, 25, 50])
    parser.add_argument("--timing-size", type=int, default=518)
    parser.add_argument("--json", type=Path, help="also save the raw results here")
    args = parser.parse_args()
    heldout = set(load_heldout_set().seeds) & set(args.seeds)
    if heldout:
        parser.error(f"seeds {sorted(heldout)} belong to the held-out set; choose others")
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    results: dict = {"args": {k: str(v) for k, v in vars(args).items()}}
    if "model" in args.parts:
        results["model"] = run_model_part(args.seeds, args.size, args.frames, not args.no_colmap)
        print_model_table(results["model"])
    if "perturbed" in args.parts:
        results["perturbed"] = run_perturbed_part(args.seeds, args.size, args.frames)
        print_perturbed_table(results["perturbed"])
    if "timing" in args.parts:
        results["timing"] = run_timing_part(args.timing_frames, args.timing_size, seed=args.seeds[0])
        print_timing_table(results["timing"], args.timing_size)
    if "track-head" in args.parts:
        results["track-head"] = run_track_head_part(args.seeds[0], args.size, args.frames, args.query_points)
        print_track_head_table(results["track-head"])
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
