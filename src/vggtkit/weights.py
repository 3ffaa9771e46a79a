"""Checkpoint I/O for every model family: finding checkpoints (bundled names, folders, files, Hugging Face hub ids),
reading state dicts and configs, strict loading, and safetensors saving. Nothing here knows a model class: the
families (:mod:`vggtkit.models`) say how to build a model from a config."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vggtkit.utils.atomic import atomic_path

logger = logging.getLogger(__name__)

DEFAULT_CHECKPOINT = "facebook/VGGT-1B"
CONFIG_NAME = "config.json"
WEIGHTS_NAMES = ("model.safetensors", "model.pt", "pytorch_model.bin", "model.pth")
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
# Models shipped inside the package: name -> folder (relative to vggtkit/assets) in the Hugging Face layout.
BUNDLED_MODELS: dict[str, str] = {"tiny-synthetic": "tiny-synthetic"}


class CheckpointError(ValueError):
    """A checkpoint cannot be found, read, or does not match the model."""


# ----------------------------------------------------------------------------- state dicts
def read_state_dict(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Tensor]:
    """Read a ``.safetensors`` file, or a torch pickle with ``weights_only=True`` (as the official model.pt)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device=str(map_location))
        state = torch.load(path, map_location=map_location, weights_only=True)
    except CheckpointError:
        raise
    except Exception as exc:  # corrupt or foreign file: say which one
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    return convert_state_dict(state)


def convert_state_dict(state: Mapping[str, Any]) -> dict[str, Tensor]:
    """Unwrap the containers checkpoints come in: ``{"model": sd}`` (training) and ``module.`` (DDP) prefixes."""
    if "model" in state and isinstance(state["model"], Mapping):
        state = state["model"]
    out = {}
    for key, value in state.items():
        if not isinstance(value, Tensor):
            raise CheckpointError(f"checkpoint entry {key!r} is a {type(value).__name__}, not a tensor")
        out[key.removeprefix("module.")] = value
    return out


def _summarise(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def check_state_dict(model: torch.nn.Module, state: Mapping[str, Tensor]) -> None:
    """Raise CheckpointError naming every missing, unexpected or mis-shaped key."""
    _check_keys(model.state_dict(), state)


def _check_keys(expected: Mapping[str, Tensor], state: Mapping[str, Tensor]) -> None:
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mis_shaped = sorted(
        f"{k} (checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)})"
        for k in set(expected) & set(state)
        if tuple(state[k].shape) != tuple(expected[k].shape)
    )
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_summarise(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_summarise(unexpected)}")
    if mis_shaped:
        problems.append(f"{len(mis_shaped)} mis-shaped key(s): {_summarise(mis_shaped, 4)}")
    if problems:
        raise CheckpointError(
            "checkpoint does not match the model configuration: "
            + "; ".join(problems)
            + ". Use the config.json that belongs to these weights (or the matching model configuration)."
        )


# ----------------------------------------------------------------------------- sources
def read_config_dict(path: str | Path) -> dict[str, Any]:
    """The model configuration in a ``config.json``: its ``model`` object, or the whole object.

    Raises:
        CheckpointError: the file cannot be read or holds no JSON object.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read model configuration {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} must hold a JSON object of model configuration fields")
    return data["model"] if isinstance(data.get("model"), dict) else data


def build_config(config_class: Callable[..., Any], fields: Mapping[str, Any], origin: str) -> Any:
    """``config_class.from_dict(fields)``, with invalid fields reported as a CheckpointError naming ``origin``."""
    try:
        return config_class.from_dict(dict(fields))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"invalid model configuration in {origin}: {exc}") from exc


def _weights_in(folder: Path) -> Path:
    for name in WEIGHTS_NAMES:
        if (folder / name).is_file():
            return folder / name
    raise CheckpointError(f"no weights file in {folder}: expected one of {', '.join(WEIGHTS_NAMES)}")


def _looks_like_repo_id(source: str) -> bool:
    parts = source.split("/")
    return len(parts) == 2 and all(parts) and not source.startswith((".", "~")) and "\\" not in source


def _hub_file(source: str) -> tuple[str, str] | None:
    """(repo id, file name) of an ``owner/repo/file.pt`` source: one weights file of a hub repo that holds several
    (facebook/VGGT-Omega ships vggt_omega_1b_512.pt and vggt_omega_1b_256_text.pt)."""
    repo, _, name = source.rpartition("/")
    if _looks_like_repo_id(repo) and name and Path(name).suffix in WEIGHT_SUFFIXES:
        return repo, name
    return None


def _hub_reachable(endpoint: str, timeout: float = 3.0) -> bool:
    """True when the hub host resolves within ``timeout`` (huggingface_hub itself retries for ~20 s offline)."""
    host = endpoint.split("://", 1)[-1].split("/", 1)[0].split(":")[0]
    result: list[bool] = []

    def resolve() -> None:
        try:
            socket.getaddrinfo(host, 443)
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=resolve, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def _download_from_hub(
    repo_id: str,
    cache_dir: str | Path | None,
    revision: str | None,
    local_files_only: bool | None,
    weights_names: tuple[str, ...] = WEIGHTS_NAMES,
) -> tuple[Path, Path | None]:
    """Resolve (weights, config) of a hub repo from the cache, downloading only when the hub is reachable; the
    weights are the first of ``weights_names`` the repo holds."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    offline = bool(local_files_only) or constants.HF_HUB_OFFLINE

    def fetch(filename: str, local_only: bool) -> Path | None:
        try:
            return Path(
                hf_hub_download(
                    repo_id, filename, cache_dir=cache_dir, revision=revision, local_files_only=local_only
                )
            )
        except (EntryNotFoundError, LocalEntryNotFoundError):
            return None
        except Exception as exc:  # network errors, gated repos, bad ids
            raise CheckpointError(f"cannot download {filename} from the hub repo {repo_id}: {exc}") from exc

    def fetch_weights(local_only: bool) -> Path | None:
        for name in weights_names:
            path = fetch(name, local_only)
            if path is not None:
                return path
        return None

    one_file = weights_names != WEIGHTS_NAMES
    what = f"{repo_id}/{weights_names[0]}" if one_file else repo_id
    weights = fetch_weights(local_only=True)
    if weights is None:
        if offline or not _hub_reachable(constants.ENDPOINT):
            raise CheckpointError(
                f"the checkpoint {what} is not in the Hugging Face cache"
                f"{' (nor a local file)' if one_file else ''} and the hub cannot be reached"
                f"{' (offline mode is on)' if offline else ''}. Download it on a connected machine with "
                f"`hf download {repo_id}{' ' + weights_names[0] if one_file else ''}` (then copy "
                "~/.cache/huggingface), or give a local folder or weights file as the checkpoint."
            )
        weights = fetch_weights(local_only=False)
        if weights is None:
            raise CheckpointError(f"the hub repo {repo_id} has none of {', '.join(weights_names)}")
    config = fetch(CONFIG_NAME, local_only=True) or (
        None if offline else fetch(CONFIG_NAME, local_only=False)
    )
    return weights, config


def resolve_checkpoint(
    source: str | Path,
    cache_dir: str | Path | None = None,
    revision: str | None = None,
    local_files_only: bool | None = None,
) -> tuple[Path, Path | None]:
    """Find (weights file, config.json or None) for a source.

    Sources: a bundled model name (see ``BUNDLED_MODELS``), a folder in the Hugging Face layout, a weights file
    (``.safetensors``, ``.pt``, ``.pth``, ``.bin``; a ``config.json`` beside it is used), a hub repo id, or one
    weights file of a hub repo (``owner/repo/file.pt``, when no such local file exists).
    """
    text = str(source)
    if text in BUNDLED_MODELS:
        folder = Path(__file__).parent / "assets" / BUNDLED_MODELS[text]
        return _weights_in(folder), folder / CONFIG_NAME
    path = Path(text).expanduser()
    if path.is_dir():
        config = path / CONFIG_NAME
        return _weights_in(path), config if config.is_file() else None
    if path.is_file():
        if path.suffix not in WEIGHT_SUFFIXES:
            raise CheckpointError(
                f"{path} is not a weights file: expected one of {', '.join(WEIGHT_SUFFIXES)}"
            )
        config = path.parent / CONFIG_NAME
        return path, config if config.is_file() else None
    hub_file = _hub_file(text)
    if hub_file is not None:
        return _download_from_hub(hub_file[0], cache_dir, revision, local_files_only, (hub_file[1],))
    if path.suffix in WEIGHT_SUFFIXES or os.sep in text.strip("/") and not _looks_like_repo_id(text):
        raise CheckpointError(f"checkpoint path {path} does not exist")
    if _looks_like_repo_id(text):
        return _download_from_hub(text, cache_dir, revision, local_files_only)
    names = ", ".join(sorted(BUNDLED_MODELS)) or "none"
    raise CheckpointError(
        f"unknown checkpoint {text!r}: not a bundled model ({names}), an existing path, or a hub repo id "
        "such as facebook/VGGT-1B"
    )


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint read from disk: where the weights came from, its config.json (if any) and the state dict."""

    weights: Path
    config: dict[str, Any] | None
    config_path: Path | None
    state: dict[str, Tensor]


def load_checkpoint(
    source: str | Path,
    map_location: str | torch.device = "cpu",
    cache_dir: str | Path | None = None,
    revision: str | None = None,
    local_files_only: bool | None = None,
) -> Checkpoint:
    """Resolve ``source`` (see :func:`resolve_checkpoint`) and read its weights and config."""
    weights, config_path = resolve_checkpoint(source, cache_dir, revision, local_files_only)
    config = read_config_dict(config_path) if config_path is not None else None
    return Checkpoint(weights, config, config_path, read_state_dict(weights, map_location))


def load_strict(
    build: Callable[[], nn.Module], checkpoint: Checkpoint, map_location: str | torch.device = "cpu"
) -> nn.Module:
    """Build a model on the meta device, check every key and shape, and adopt the checkpoint's tensors.

    Returns the model on ``map_location`` in eval mode.

    Raises:
        CheckpointError: a missing, unexpected or mis-shaped key (all of them are named).
    """
    with torch.device("meta"):
        model = build()
    check_state_dict(model, checkpoint.state)
    # assign=True adopts the loaded tensors instead of allocating and copying a second set of weights.
    model.load_state_dict(checkpoint.state, strict=True, assign=True)
    logger.info(
        "loaded %s (%d tensors) from %s", type(model).__name__, len(checkpoint.state), checkpoint.weights
    )
    return model.to(map_location).eval()


def load_matching_weights(
    model: torch.nn.Module, source: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[list[str], list[str]]:
    """Load a checkpoint into ``model`` module by module, for fine-tuning with heads added or removed.

    Every top-level module (``aggregator``, ``camera_head``, ...) that both hold must match exactly; modules only
    the model has keep their initialisation and modules only the checkpoint has are skipped.

    Returns:
        ``(initialised, skipped)``: the names of the model's new modules and of the checkpoint's unused ones.
    """
    weights, _ = resolve_checkpoint(source)
    state = read_state_dict(weights, map_location)
    expected = model.state_dict()

    def module_of(key: str) -> str:
        return key.split(".", 1)[0]

    ours, theirs = {module_of(k) for k in expected}, {module_of(k) for k in state}
    shared = ours & theirs
    if not shared:
        raise CheckpointError(
            f"checkpoint {source} shares no module with the model (it holds {sorted(theirs)})"
        )
    shared_state = {k: v for k, v in state.items() if module_of(k) in shared}
    _check_keys({k: v for k, v in expected.items() if module_of(k) in shared}, shared_state)
    model.load_state_dict(shared_state, strict=False)
    initialised, skipped = sorted(ours - theirs), sorted(theirs - ours)
    logger.info(
        "loaded %s from %s; initialised %s; skipped %s", sorted(shared), weights, initialised, skipped
    )
    return initialised, skipped


def save_pretrained(model: nn.Module, directory: str | Path) -> Path:
    """Write ``config.json`` (``model.config.to_dict()``) and ``model.safetensors`` into ``directory``, each
    under a temporary name first."""
    from safetensors.torch import save_file

    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise CheckpointError(f"cannot save into {directory}: it exists and is not a folder")
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(directory / "model.safetensors") as tmp:
        save_file(state, str(tmp), metadata={"format": "pt"})
    with atomic_path(directory / CONFIG_NAME) as tmp:
        tmp.write_text(json.dumps(model.config.to_dict(), indent=2) + "\n")
    return directory
