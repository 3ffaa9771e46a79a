"""`vggtkit info`: versions, devices, and where checkpoints are looked up (is the default one cached?)."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import sys

EXAMPLES = """\
examples:
  vggtkit info
  HF_HOME=/data/hf vggtkit info      # check another Hugging Face cache
"""

# Distribution names; versions are read from package metadata (importing gradio alone takes seconds).
_PACKAGES = (
    "torch",
    "numpy",
    "pillow",
    "opencv-python-headless",
    "trimesh",
    "pycolmap",
    "huggingface_hub",
    "safetensors",
    "onnxruntime",
    "gradio",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "info",
        help="show versions, devices and checkpoint locations",
        description="Print the versions of vggtkit and its dependencies, the compute devices torch sees, where "
        "checkpoints are looked up, and whether the default checkpoint is in the local cache.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=run)


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed (optional)" if distribution in ("onnxruntime", "gradio") else "not installed"


def _devices() -> list[str]:
    import torch

    lines = [f"cpu: {os.cpu_count()} cores, torch uses {torch.get_num_threads()} threads"]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            lines.append(f"cuda:{i}: {props.name}, {props.total_memory / 2**30:.1f} GiB")
    else:
        lines.append("cuda: not available")
    mps = getattr(torch.backends, "mps", None)
    lines.append(f"mps: {'available' if mps is not None and mps.is_available() else 'not available'}")
    return lines


def _checkpoint_lines() -> list[str]:
    from huggingface_hub import constants, try_to_load_from_cache

    from vggtkit.weights import BUNDLED_MODELS, DEFAULT_CHECKPOINT, WEIGHTS_NAMES

    cached = None
    for name in WEIGHTS_NAMES:
        found = try_to_load_from_cache(DEFAULT_CHECKPOINT, name)
        if isinstance(found, str):
            cached = found
            break
    lines = [
        f"hugging face cache: {constants.HF_HUB_CACHE}",
        f"offline mode (HF_HUB_OFFLINE): {'on' if constants.HF_HUB_OFFLINE else 'off'}",
        f"default checkpoint: {DEFAULT_CHECKPOINT} -> "
        + (
            f"cached at {cached}"
            if cached
            else f"NOT cached (download it with `hf download {DEFAULT_CHECKPOINT}` or pass --checkpoint PATH)"
        ),
        f"bundled models: {', '.join(sorted(BUNDLED_MODELS)) or 'none'}",
        "--checkpoint also takes a folder (config.json + model.safetensors), a .safetensors/.pt file, or a repo id",
    ]
    return lines


def run(args: argparse.Namespace) -> int:
    import vggtkit

    print(f"vggtkit {vggtkit.__version__}")
    print(f"python {platform.python_version()} ({sys.executable}), {platform.platform()}")
    print("packages:")
    for name in _PACKAGES:
        print(f"  {name:24s} {_version(name)}")
    print("devices:")
    for line in _devices():
        print(f"  {line}")
    print("checkpoints:")
    for line in _checkpoint_lines():
        print(f"  {line}")
    return 0
