"""VGGT-Omega on its golden fixture: the worst golden error per output group, and reduced-precision drift.

1. Golden errors: every output and intermediate of tests/fixtures/golden/omega-tiny (the official code, float32 on a
   CPU) against vggtkit with the reference plan and the lean plans, in the golden measure max |ours - ref| /
   (1 + |ref|) (tolerance 1e-4).
2. Drift: each precision mode of the lean plans against the float32 reference plan, next to an emulation of the
   official code on a GPU (its aggregator under bfloat16 autocast, here CPU autocast; heads float32). The
   specification's numbers for the official code on this fixture: depth about 3e-2, pose about 6e-3 (golden measure).

    python benchmarks/drift_omega.py [--out benchmarks/results/drift_omega.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from vggtkit import VGGTOmega, VGGTOmegaConfig
from vggtkit.geometry import (
    closed_form_inverse_se3,
    encoding_to_camera,
    extri_intri_to_pose_encoding,
    mat_to_quat,
    quat_to_mat,
)
from vggtkit.inference import ExecutionPlan, InferenceOptions
from vggtkit.io import load_and_preprocess_omega_images
from vggtkit.layers.dpt import ConvRunner
from vggtkit.models.common import normalize_images
from vggtkit.utils.atomic import atomic_path

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "golden" / "omega-tiny"
OUTPUTS = ("camera_and_register_tokens", "pose_enc", "depth", "depth_conf", "text_alignment_embedding",
           "text_alignment_token")  # fmt: skip
OFFICIAL_BF16 = {"depth": 0.03, "pose_enc": 0.006}
PLANS = {
    "reference": ExecutionPlan.reference(),
    "lean": InferenceOptions(),
    "lean, chunked": InferenceOptions(frame_chunk_size=1, query_chunk_size=5),
}


def golden() -> tuple[VGGTOmega, dict[str, np.ndarray]]:
    model = VGGTOmega(VGGTOmegaConfig.from_dict(json.loads((GOLDEN / "config.json").read_text())["model"]))
    model.load_state_dict(load_file(GOLDEN / "weights.safetensors"), strict=True)
    with np.load(GOLDEN / "io.npz") as npz:
        return model.eval(), {k: npz[k] for k in npz.files}


def measure(ours: torch.Tensor | np.ndarray, ref: np.ndarray) -> float:
    ours = ours.detach().double().numpy() if isinstance(ours, torch.Tensor) else np.asarray(ours, np.float64)
    if ours.shape != ref.shape:
        return float("inf")
    return float(np.max(np.abs(ours - ref) / (1 + np.abs(ref.astype(np.float64)))))


def model_errors(model: VGGTOmega, g: dict[str, np.ndarray], options) -> dict[str, float]:
    """Worst golden error per group of model outputs and intermediates under one plan."""
    seen: dict[str, torch.Tensor] = {}
    hooks = {"camera_trunk_out": model.camera_head.trunk[-1], "camera_raw": model.camera_head.camera_branch,
             "text_readout_out": model.text_alignment_head.readout_blocks[-1]}  # fmt: skip
    # The first call of each hooked module is the golden images' (the single-frame and remainder runs follow).
    handles = [
        m.register_forward_hook(lambda _m, _i, o, k=k: None if k in seen else seen.__setitem__(k, o.clone()))
        for k, m in hooks.items()
    ]
    images = torch.from_numpy(g["images"])
    with torch.no_grad():
        out = model(images, return_all_layers=True, options=options)
        single = model(images[0, :1], options=options)
        remainder = model(torch.from_numpy(g["remainder_images"]), options=options)
    for handle in handles:
        handle.remove()
    layers = out["aggregated_tokens_list"]
    return {
        "aggregator layers (all)": max(measure(t, g[f"aggregated_{i}"]) for i, t in enumerate(layers)),
        "camera_and_register_tokens": measure(
            out["camera_and_register_tokens"], g["camera_and_register_tokens"]
        ),
        "pose_enc (+ camera trunk, raw)": max(
            measure(out["pose_enc"], g["pose_enc"]),
            *(measure(seen[k], g[k]) for k in ("camera_trunk_out", "camera_raw")),
        ),
        "depth": measure(out["depth"], g["depth"]),
        "depth_conf": measure(out["depth_conf"], g["depth_conf"]),
        "text embedding, token (+ readout)": max(
            *(measure(out[k], g[k]) for k in OUTPUTS[4:]),
            measure(seen["text_readout_out"], g["text_readout_out"]),
        ),
        "single frame (all outputs)": max(measure(single[k], g[f"single_frame_{k}"]) for k in OUTPUTS),
        "sizes not multiples of 16 (all outputs)": max(
            measure(remainder[k], g[f"remainder_{k}"]) for k in OUTPUTS
        ),
    }


def part_errors(model: VGGTOmega, g: dict[str, np.ndarray]) -> dict[str, float]:
    """Worst golden error of the patch embedder, RoPE tables and dense head stages (called directly)."""
    images = torch.from_numpy(g["images"])
    agg = model.aggregator
    with torch.no_grad():
        tokens = agg.patch_embed(normalize_images(images.flatten(0, 1)))
        layers, psi = agg(images, ExecutionPlan.reference())
    n, head = agg.patch_embed.num_prefix_tokens, model.dense_head
    h, w = images.shape[-2] // 16, images.shape[-1] // 16
    rope = []
    for prefix, module in (("patch_embed_rope", agg.patch_embed.rope_embed), ("rope", agg.rope_embed)):
        tables = module.tables(h, w, 0)
        D = tables.cos.shape[-1]
        sign = torch.cat([-torch.ones(D // 2), torch.ones(D // 2)])
        rope += [
            measure(tables.cos[:, 0], g[f"{prefix}_cos"]),
            measure(tables.sin_signed[:, 0] * sign, g[f"{prefix}_sin"]),
        ]
    flat = [layers[i].flatten(0, 1) for i in head.intermediate_layer_idx]
    with torch.no_grad():
        levels = [
            measure(head.level(k, ConvRunner(), t, images.shape[-2:], psi), g[f"dense_level_{k}"])
            for k, t in enumerate(flat)
        ]
        fused = measure(head.fuse(ConvRunner(), flat, images.shape[-2:], psi), g["dense_fused"])
    return {
        "patch embedder (patch, cls, storage tokens)": max(
            measure(tokens[:, n:], g["patch_tokens"]),
            measure(tokens[:, 0], g["patch_embed_cls_token"]),
            measure(tokens[:, 1:n], g["patch_embed_storage_tokens"]),
        ),  # fmt: skip
        "RoPE tables (both)": max(rope),
        "dense head levels and fusion": max(*levels, fused),
    }


def utility_errors(g: dict[str, np.ndarray]) -> dict[str, float]:
    t = {k: torch.from_numpy(v) for k, v in g.items() if k.startswith(("util_", "pose_enc"))}
    hw = tuple(int(v) for v in g["util_image_hw"])
    E, K = encoding_to_camera(t["util_pose_enc"], hw)
    E2, K2 = encoding_to_camera(torch.from_numpy(g["pose_enc"]), g["images"].shape[-2:])
    files = [str(GOLDEN / "images" / f) for f in g["pre_files"]]
    res = int(g["pre_resolution"])
    pre = [
        measure(load_and_preprocess_omega_images(files, m, res), g[f"pre_{m}_all"])
        for m in ("balanced", "max_size")
    ]
    pre += [measure(load_and_preprocess_omega_images([f], m, res), g[f"pre_{m}_{i}"])
            for m in ("balanced", "max_size") for i, f in enumerate(files)]  # fmt: skip
    pre.append(
        measure(load_and_preprocess_omega_images(files, "balanced", 112, 14), g["pre_balanced_r112_p14_all"])
    )
    return {
        "utilities (pose encoding, rotations, SE(3) inverse)": max(
            measure(
                extri_intri_to_pose_encoding(t["util_extrinsic"], t["util_intrinsic"], hw), g["util_pose_enc"]
            ),
            measure(E, g["util_extrinsic_back"]),
            measure(K, g["util_intrinsic_back"]),
            measure(E2, g["pose_enc_extrinsic"]),
            measure(K2, g["pose_enc_intrinsic"]),
            measure(quat_to_mat(t["util_quat"]), g["util_rotmat"]),
            measure(mat_to_quat(t["util_rotmat"]), g["util_mat_to_quat"]),
            measure(quat_to_mat(t["util_quat_nonunit"]), g["util_quat_nonunit_to_mat"]),
            measure(mat_to_quat(t["util_special_rotmat"]), g["util_special_mat_to_quat"]),
            measure(closed_form_inverse_se3(g["util_extrinsic"][0]), g["util_se3_inverse_np"]),
            measure(closed_form_inverse_se3(t["util_se3_in_4x4"]), g["util_se3_inverse_torch"]),
        ),  # fmt: skip
        "preprocessing (balanced, max_size, mixed sizes, patch 14)": max(pre),
    }


def official_autocast(model: VGGTOmega, images: torch.Tensor, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The official code's GPU precision, emulated: the aggregator under autocast, the heads in float32."""
    with torch.no_grad():
        with torch.autocast("cpu", dtype=dtype):
            tokens, psi = model.aggregator(images)
        tokens = [None if t is None else t.float() for t in tokens]
        depth, conf = model.dense_head(tokens, images, psi)
        embedding, _ = model.text_alignment_head(tokens[-1], psi)
        return {"pose_enc": model.camera_head(tokens[-1], psi), "depth": depth, "depth_conf": conf,
                "text_alignment_embedding": embedding}  # fmt: skip


def drift(out: dict[str, torch.Tensor], ref: dict[str, torch.Tensor]) -> dict[str, float]:
    def golden_measure(key: str) -> float:
        return ((out[key] - ref[key]).abs() / (1 + ref[key].abs())).max().item()

    rel = ((out["depth"] - ref["depth"]).abs() / ref["depth"].abs()).flatten()
    return {
        "depth": golden_measure("depth"),
        "depth_median_rel_err": rel.median().item(),
        "depth_conf": golden_measure("depth_conf"),
        "pose_enc": golden_measure("pose_enc"),
        "pose_max_abs_err": (out["pose_enc"] - ref["pose_enc"]).abs().max().item(),
        "text_embedding_max_abs_err": (out["text_alignment_embedding"] - ref["text_alignment_embedding"])
        .abs()
        .max()
        .item(),
    }


def drift_rows(model: VGGTOmega, images: torch.Tensor) -> dict[str, dict[str, float]]:
    modes: dict[str, Callable[[VGGTOmega], dict]] = {
        "lean float32": lambda m: m(images, options=InferenceOptions()),
        "lean bfloat16 (heads float32)": lambda m: m(images, options="bfloat16"),
        "lean bfloat16, layers stored float32": lambda m: m(
            images, options=InferenceOptions(dtype="bfloat16", store_layers_dtype="float32")
        ),
        "lean bfloat16, heads bfloat16": lambda m: m(
            images, options=InferenceOptions(dtype="bfloat16", heads_dtype="bfloat16")
        ),
        "official-style bfloat16 autocast (emulated)": lambda m: official_autocast(m, images, torch.bfloat16),
    }
    with torch.no_grad():
        ref = model(images, options=ExecutionPlan.reference())
        rows = {name: drift(run(model), ref) for name, run in modes.items()}
        converted = copy.deepcopy(model)  # weight conversion is one-way
        options = InferenceOptions(dtype="bfloat16", heads_dtype="bfloat16", weights_dtype="bfloat16")
        converted.convert_weights(options)
        rows["lean bfloat16, heads and weights bfloat16"] = drift(converted(images, options=options), ref)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "drift_omega.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model, g = golden()
    errors = {name: model_errors(model, g, options) for name, options in PLANS.items()}
    shared = {**part_errors(model, g), **utility_errors(g)}
    print("| output group | " + " | ".join(PLANS) + " |")
    print("|---|" + "---|" * len(PLANS))
    for group in errors["reference"]:
        print(f"| {group} | " + " | ".join(f"{errors[p][group]:.1e}" for p in PLANS) + " |")
    for group, value in shared.items():
        print(f"| {group} | " + " | ".join([f"{value:.1e}"] * len(PLANS)) + " |")
    worst = max(max(e.values()) for e in errors.values()) if errors else 0.0
    worst = max(worst, *shared.values())
    print(f"\nworst golden error {worst:.2e} (tolerance 1e-4)\n")
    rows = drift_rows(model, torch.from_numpy(g["images"]))
    print(
        "| mode | depth (golden measure) | depth median rel. | depth_conf | pose_enc | pose max abs | text emb. max abs |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['depth']:.2e} | {100 * r['depth_median_rel_err']:.2f}% | {r['depth_conf']:.2e} | "
              f"{r['pose_enc']:.2e} | {r['pose_max_abs_err']:.2e} | {r['text_embedding_max_abs_err']:.1e} |")  # fmt: skip
    print(f"| official code, bfloat16 autocast (specification) | about {OFFICIAL_BF16['depth']:.0e} | - | - | "
          f"about {OFFICIAL_BF16['pose_enc']:.0e} | - | - |")  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps({"golden_errors": errors, "golden_errors_shared": shared, "drift": rows,
                                   "official_bf16_spec": OFFICIAL_BF16, "torch": torch.__version__}, indent=1))  # fmt: skip
    print(f"\nresults: {out}")
    lean_ok = all(
        r["depth"] <= 1.5 * OFFICIAL_BF16["depth"] and r["pose_enc"] <= 1.5 * OFFICIAL_BF16["pose_enc"]
        for name, r in rows.items()
        if name.startswith("lean") and "heads bfloat16" not in name and "weights" not in name
    )
    return 0 if worst <= 1e-4 and lean_ok else 1


if __name__ == "__main__":
    sys.exit(main())
