"""`vggtkit quickstart`: the README's main job. Reconstruct the bundled example scene with the bundled
``tiny-synthetic`` model (offline), refine its cameras by bundle adjustment, score cameras (model alone and
refined) and depth against the scene's ground truth, write exports."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from vggtkit.cli.common import UserError, add_device_options
from vggtkit.cli.evaluate import BASELINE
from vggtkit.cli.export import print_exports

DEFAULT_FORMATS = "glb,ply,colmap,cameras,npz"
REFINED = "model + BA"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "quickstart",
        help="reconstruct the bundled example scene offline and score it against its ground truth",
        description=(
            "Reconstruct the example scene shipped in the package (5 synthetic views with exact ground truth) "
            "with the bundled tiny-synthetic model, refine its cameras by bundle adjustment, print camera errors "
            "(model alone, refined, a trivial baseline) and depth errors against the ground truth, and write "
            "exports (GLB, PLY, COLMAP, cameras, npz) of the model's result to --out."
        ),
    )
    parser.add_argument(
        "--out", default="outputs/quickstart", help="output folder (default: outputs/quickstart)"
    )
    parser.add_argument(
        "--model", default="tiny-synthetic", help="model to use (default: tiny-synthetic, bundled)"
    )
    parser.add_argument(
        "--scene", help="a scene folder with ground truth to use instead of the bundled example (see docs)"
    )
    parser.add_argument(
        "--formats", default=DEFAULT_FORMATS, help=f"comma-separated exports (default: {DEFAULT_FORMATS})"
    )
    parser.add_argument("--no-ba", action="store_true", help="skip the bundle-adjustment refinement")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="instead, start the web demo with the bundled example reconstructed (same as `vggtkit demo --example`)",
    )
    add_device_options(parser)
    parser.set_defaults(func=run)


def _example_folder() -> Path:
    from importlib import resources

    return Path(str(resources.files("vggtkit").joinpath("assets", "example")))


def _check_frames(rec, truth: dict) -> None:
    if rec.num_frames != len(truth["images"]) or rec.model_hw != tuple(truth["depths"].shape[-2:]):
        h, w = truth["depths"].shape[-2:]
        raise UserError(
            f"the reconstruction has {rec.num_frames} frames of {rec.model_hw[1]}x{rec.model_hw[0]} but the "
            f"ground truth {len(truth['images'])} of {w}x{h}; use a scene whose images/ holds exactly the frames "
            "of its cameras, with the model's aspect ratio"
        )


def _prediction(rec) -> dict:
    """The evaluation's prediction of a reconstruction. The scene folder orders frames by file name; the
    reconstruction by natural name order."""
    order = np.argsort(rec.names)
    prediction = {
        "extrinsics": rec.extrinsic[order],
        "intrinsics": rec.intrinsic[order],
        "depth": rec.depth[order, ..., 0],
    }
    return prediction


def _constant(prediction: dict):
    """A method of the evaluation that returns ``prediction`` for the (only) scene."""
    return lambda sample: prediction


def _score(recs: dict, truth: dict) -> dict:
    """Score reconstructions (name -> Reconstruction) and the trivial baseline with the evaluation
    (``vggtkit evaluate``'s code)."""
    from vggtkit.eval import evaluate_methods, identity_constant_baseline

    methods = {name: _constant(_prediction(rec)) for name, rec in recs.items()}
    return evaluate_methods({**methods, BASELINE: identity_constant_baseline}, [truth])


def _camera_row(label: str, values: list[float], fmt: str) -> str:
    return f"  {label:33s}" + "".join(f"{v:{fmt}}" for v in values)


def _print_scores(results: dict, names: list[str], frames: int) -> None:
    scenes = [results[k]["scenes"][0] for k in (*names, BASELINE)]
    aucs = [100 * results[k]["summary"]["auc@30"] for k in (*names, BASELINE)]
    header = "".join(f"{n:>16s}" for n in ("model", *names[1:], "identity poses"))
    print(f"\ncameras ({frames * (frames - 1) // 2} frame pairs)  {header}")
    print(_camera_row("mean rotation error (deg)", [s["rot_err_mean"] for s in scenes], "16.2f"))
    print(_camera_row("mean translation-direction error", [s["trans_err_mean"] for s in scenes], "16.2f"))
    print(_camera_row("AUC@30 (%)", aucs, "16.1f"))
    model, base = scenes[0], scenes[-1]
    print("depth (per-frame median scaling)       model   constant depth")
    print(f"  AbsRel                           {model['depth_abs_rel']:8.3f}   {base['depth_abs_rel']:8.3f}")
    print(
        f"  delta < 1.25 (%)                 {100 * model['depth_delta']:8.1f}   {100 * base['depth_delta']:8.1f}"
    )
    print("points (Sim(3)-aligned, units of the normalised ground truth)")
    print(f"  accuracy {model['point_accuracy']:.3f}   completeness {model['point_completeness']:.3f}")


def _refine(rec) -> tuple[object, str]:
    """The refinement result and a line on what it did (the model's cameras when it could not run)."""
    from vggtkit.refine import refine

    start = time.perf_counter()
    result = refine(rec)
    report = result.report
    seconds = time.perf_counter() - start
    if report.status == "feed-forward":
        return (
            result,
            f"bundle adjustment kept the model's cameras ({'; '.join(report.warnings)}); {seconds:.1f} s",
        )
    refined = sum(f.status != "kept" for f in report.frames)
    return result, (
        f"bundle adjustment refined {refined} of {rec.num_frames} cameras at the images' {_sizes(rec)} px "
        f"({report.num_tracks} tracks, mean length {report.mean_track_length:.1f}) in {seconds:.1f} s"
    )


def _sizes(rec) -> str:
    return ", ".join(sorted({f"{int(w)}x{int(h)}" for h, w in rec.original_hw}))


def _export(rec, refined, out: Path, formats: list[str]) -> dict:
    """The model's ``predictions.npz``; every other export from the refined result when there is one."""
    from vggtkit.export import export_all
    from vggtkit.refine import export_refined

    if refined is None:
        return export_all(rec, out, formats)
    results = export_all(rec, out, ["npz"]) if "npz" in formats else {}
    return results | export_refined(refined, out, [f for f in formats if f != "npz"])


def run(args: argparse.Namespace) -> int:
    if args.demo:
        from vggtkit.cli import main

        return main(["demo", "--example", "--device", args.device, "--dtype", args.dtype])

    from vggtkit import VGGT, reconstruct
    from vggtkit.data.scene_folder import load_scene_folder
    from vggtkit.export import parse_export_names

    start = time.perf_counter()
    scene = Path(args.scene) if args.scene else _example_folder()
    formats = parse_export_names(args.formats)
    model = VGGT.from_pretrained(args.model)
    truth = load_scene_folder(scene, image_size=model.config.img_size)
    if not truth["has_depth"]:
        raise UserError(
            f"{scene} has no depths/ folder: quickstart needs ground-truth depth to score against"
        )
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model {args.model}: {n_params / 1e6:.2f} M parameters, trained at {model.config.img_size} px")
    print(f"scene {scene.name}: {len(truth['images'])} views")

    rec = reconstruct(scene / "images", model, device=args.device, dtype=args.dtype)  # at the model's size
    _check_frames(rec, truth)
    recs = {args.model: rec}
    refined = None
    if not args.no_ba:
        refined, line = _refine(rec)
        recs[REFINED] = refined.reconstruction
        print(line)
    _print_scores(_score(recs, truth), list(recs), rec.num_frames)
    out = Path(args.out)
    results = _export(rec, refined, out, formats)
    print(f"\nexports in {out}/:")
    print_exports(results, out)
    print(
        f"done in {time.perf_counter() - start:.1f} s (offline; the model and the scene ship with the package)"
    )
    return 0
