"""Training checkpoints: a Hugging Face-layout model folder plus optimiser state in safetensors (no pickles).

Layout of ``<out_dir>/checkpoints/step_000500/``: ``config.json`` + ``model.safetensors`` (loadable with
``VGGT.from_pretrained``), ``optimizer.safetensors`` (AdamW moments keyed by parameter name) and
``trainer_state.json`` (step, counters, the training config). ``<out_dir>/checkpoints/latest`` names the newest.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vggtkit.utils.atomic import atomic_dir, atomic_path
from vggtkit.weights import CheckpointError

STATE_NAME = "trainer_state.json"
OPTIM_NAME = "optimizer.safetensors"


def optimizer_state_tensors(optimizer: torch.optim.Optimizer, names: dict[int, str]) -> dict[str, Tensor]:
    """Flatten an AdamW-like state into ``{"<param name>/<state key>": tensor}``."""
    out = {}
    for param, state in optimizer.state.items():
        name = names[id(param)]
        for key, value in state.items():
            tensor = value if isinstance(value, Tensor) else torch.tensor(float(value))
            out[f"{name}/{key}"] = tensor.detach().contiguous().cpu()
    return out


def load_optimizer_state(
    optimizer: torch.optim.Optimizer, tensors: dict[str, Tensor], params: dict[str, Any]
) -> None:
    """Restore the state written by :func:`optimizer_state_tensors` (params: name -> parameter)."""
    for key, value in tensors.items():
        name, _, field = key.rpartition("/")
        if name not in params:
            raise CheckpointError(
                f"optimizer state for unknown parameter {name!r}; wrong checkpoint for this model?"
            )
        param = params[name]
        optimizer.state[param][field] = value.to(param.device) if value.ndim else value.clone()


def save_checkpoint(
    directory: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    keep: int,
) -> Path:
    """Write ``step_<n>`` atomically (temporary folder, then rename), update ``latest``, keep the newest ``keep``."""
    from safetensors.torch import save_file

    step = int(state["step"])
    final = directory / f"step_{step:07d}"
    with atomic_dir(final) as tmp:
        model.save_pretrained(tmp)
        names = {id(p): n for n, p in model.named_parameters()}
        save_file(optimizer_state_tensors(optimizer, names), str(tmp / OPTIM_NAME))
        (tmp / STATE_NAME).write_text(json.dumps(state, indent=2) + "\n")
    with atomic_path(directory / "latest") as tmp:
        tmp.write_text(final.name + "\n")
    existing = sorted(p for p in directory.glob("step_*") if p.is_dir())
    for old in existing[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def resolve_resume(path: str | Path) -> Path:
    """A checkpoint folder, or a run/checkpoints folder whose ``latest`` file names one."""
    path = Path(path)
    for candidate in (path, path / "checkpoints"):
        if (candidate / "latest").is_file():
            return candidate / (candidate / "latest").read_text().strip()
    if (path / STATE_NAME).is_file():
        return path
    raise CheckpointError(
        f"cannot resume from {path}: expected a checkpoint folder with {STATE_NAME} or a run folder with "
        "checkpoints/latest"
    )


def read_trainer_state(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / STATE_NAME).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read {folder / STATE_NAME}: {exc}") from exc
