"""`vggtkit quickstart`: the README's main job. Reconstruct the bundled example scene with the bundled
``tiny-synthetic`` model (offline), score cameras and depth against the scene's ground truth, write exports."""

from __future__ import annotations

import argparse
import time

from vggtkit.cli.common import UserError, add_device_options

DEFAULT_FORMATS = "glb,ply,colmap,cameras,npz"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "quickstart",
        help="reconstruct the bundled example scene offline and score it against its ground truth",
        description=(
            "Reconstruct the example scene shipped in the package (5 synthetic views with exact ground truth) "
            "with the bundled tiny-synthetic model, print camera and depth errors against the ground truth "
            "(and a trivial baseline), and write exports (GLB, PLY, COLMAP, cameras, npz) to --out."
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
    parser.add_argument(
        "--demo",
        action="store_true",
        help="instead, start the web demo with the bundled example reconstructed (same as `vggtkit demo --example`)",
    )
    add_device_options(parser)
    parser.set_defaults(func=run)


def _example_folder():
    from importlib import resources

    return resources.files("vggtkit").joinpath("assets", "example")


def run(args: argparse.Namespace) -> int:
    if args.demo:
        from vggtkit.cli import main

        return main(["demo", "--example", "--device", args.device, "--dtype", args.dtype])

    from pathlib import Path

    import numpy as np
    import torch

    from vggtkit import VGGT, reconstruct
    from vggtkit.data.scene_folder import load_scene_folder
    from vggtkit.eval.runner import normalized_ground_truth
    from vggtkit.export import export_all, parse_export_names
    from vggtkit.metrics.depth import depth_metrics
    from vggtkit.metrics.points import point_cloud_metrics
    from vggtkit.metrics.pose import pose_metrics, relative_pose_errors

    start = time.perf_counter()
    scene = Path(args.scene) if args.scene else Path(str(_example_folder()))
    formats = parse_export_names(args.formats)
    model = VGGT.from_pretrained(args.model)
    width = model.config.img_size
    truth = load_scene_folder(scene, image_size=width)
    if not truth["has_depth"]:
        raise UserError(
            f"{scene} has no depths/ folder: quickstart needs ground-truth depth to score against"
        )
    paths = sorted((scene / "images").iterdir())
    paths = [p for p in paths if p.suffix.lower() in (".png", ".jpg", ".jpeg")]
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model {args.model}: {n_params / 1e6:.2f} M parameters, trained at {width} px")
    print(f"scene {scene.name}: {len(paths)} views")

    rec = reconstruct(
        [str(p) for p in paths], model=model, device=args.device, dtype=args.dtype, resolution=width
    )
    if rec.depth.shape[1:3] != tuple(truth["depths"].shape[-2:]):
        raise UserError(
            f"the reconstruction is {rec.depth.shape[2]}x{rec.depth.shape[1]} but the ground truth is "
            f"{truth['depths'].shape[-1]}x{truth['depths'].shape[-2]}; use images of the model's aspect ratio"
        )
    gt = normalized_ground_truth(truth)
    mask = gt["point_masks"].astype(bool)
    rot, trans = relative_pose_errors(torch.as_tensor(rec.extrinsic), torch.as_tensor(gt["extrinsics"]))
    poses = pose_metrics(rot, trans)
    ident_rot, ident_trans = relative_pose_errors(
        torch.as_tensor(np.tile(np.eye(4)[:3], (len(paths), 1, 1))), torch.as_tensor(gt["extrinsics"])
    )
    depth = depth_metrics(rec.depth[..., 0], gt["depths"], mask)
    constant = depth_metrics(np.ones_like(gt["depths"]), gt["depths"], mask)
    cloud = point_cloud_metrics(rec.world_points_from_depth, gt["world_points"], mask)

    pairs = len(rot)
    print(f"\ncameras ({pairs} frame pairs)              model   identity poses")
    print(f"  mean rotation error (deg)        {rot.mean():8.2f}   {ident_rot.mean():8.2f}")
    print(f"  mean translation-direction error {trans.mean():8.2f}   {ident_trans.mean():8.2f}")
    print(f"  AUC@30 (%)                       {100 * poses['auc@30']:8.1f}   {0.0:8.1f}")
    print("depth (per-frame median scaling)       model   constant depth")
    print(f"  AbsRel                           {depth['abs_rel']:8.3f}   {constant['abs_rel']:8.3f}")
    print(
        f"  delta < 1.25 (%)                 {100 * depth['delta_1.25']:8.1f}   {100 * constant['delta_1.25']:8.1f}"
    )
    print("points (Sim(3)-aligned, units of the normalised ground truth)")
    print(f"  accuracy {cloud['accuracy']:.3f}   completeness {cloud['completeness']:.3f}")

    out = Path(args.out)
    results = export_all(rec, out, formats)
    print(f"\nexports in {out}/:")
    for name, result in results.items():
        shown = ", ".join(
            str(Path(f).relative_to(out)) if Path(f).is_relative_to(out) else str(f) for f in result.files[:3]
        )
        more = f" (+{len(result.files) - 3} more)" if len(result.files) > 3 else ""
        print(f"  {name:8s} {shown}{more}")
    print(
        f"done in {time.perf_counter() - start:.1f} s (offline; the model and the scene ship with the package)"
    )
    return 0
