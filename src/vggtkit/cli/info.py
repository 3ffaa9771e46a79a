"""`vggtkit info`: versions, devices, the model families, and where checkpoints are looked up (which of the
released ones are cached?)."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import sys
from pathlib import Path

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


def _cached_file(source: str) -> str | None:
    """The local path of a hub checkpoint (``repo`` or ``repo/file``) in the Hugging Face cache, or None."""
    from huggingface_hub import try_to_load_from_cache

    from vggtkit.weights import WEIGHT_SUFFIXES, WEIGHTS_NAMES

    repo, _, name = source.rpartition("/")
    candidates = [(repo, name)] if source.count("/") == 2 and Path(name).suffix in WEIGHT_SUFFIXES else []
    candidates = candidates or [(source, n) for n in WEIGHTS_NAMES]
    for repo_id, filename in candidates:
        found = try_to_load_from_cache(repo_id, filename)
        if isinstance(found, str):
            return found
    return None


def _family_lines() -> list[str]:
    from vggtkit.models.registry import FAMILIES

    lines = []
    for family in FAMILIES.values():
        lines.append(f"{family.title} ({family.model_class.__name__}):")
        for source in family.released:
            cached = _cached_file(source)
            lines.append(
                f"  {source:46s} "
                + (f"cached at {cached}" if cached else f"not cached (`hf download {_repo(source)}`)")
            )
    return lines


def _repo(source: str) -> str:
    """``hf download`` arguments for a hub checkpoint: the repo, and the file when it names one."""
    return " ".join(source.rsplit("/", 1)) if source.count("/") == 2 else source


def _checkpoint_lines() -> list[str]:
    from huggingface_hub import constants

    from vggtkit.weights import BUNDLED_MODELS, DEFAULT_CHECKPOINT

    return [
        f"hugging face cache: {constants.HF_HUB_CACHE}",
        f"offline mode (HF_HUB_OFFLINE): {'on' if constants.HF_HUB_OFFLINE else 'off'}",
        f"default checkpoint: {DEFAULT_CHECKPOINT}"
        + (
            "" if _cached_file(DEFAULT_CHECKPOINT) else " (not cached: download it or pass --checkpoint PATH)"
        ),
        f"bundled models: {', '.join(sorted(BUNDLED_MODELS)) or 'none'}",
        "--checkpoint also takes a folder (config.json + weights), a .safetensors/.pt file, or a hub id; the "
        "model family is recognised from the checkpoint's keys",
    ]


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
    print("model families and their released checkpoints:")
    for line in _family_lines():
        print(f"  {line}")
    print("checkpoints:")
    for line in _checkpoint_lines():
        print(f"  {line}")
    return 0
