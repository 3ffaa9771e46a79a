"""The model families vggtkit runs, and loading a checkpoint of any of them through one entry point."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vggtkit.models.omega import VGGTOmega, VGGTOmegaConfig
from vggtkit.models.vggt import VGGT, VGGTConfig
from vggtkit.weights import CheckpointError, load_checkpoint


@dataclass(frozen=True)
class Family:
    """A model family: its classes and the key prefix that only its checkpoints hold.

    Attributes:
        name: the family's name ('vggt', 'omega').
        model_class: has ``from_checkpoint(checkpoint, config, map_location)``.
        config_class: the self-validating configuration dataclass.
        signature: a state-dict key prefix no other family's checkpoint holds.
        title: the family's name in messages.
        released: the official checkpoints on the Hugging Face hub (a repo id, or ``repo/file`` for one file of
            a repo that holds several).
    """

    name: str
    model_class: Any
    config_class: Any
    signature: str
    title: str
    released: tuple[str, ...]


FAMILIES: dict[str, Family] = {
    "vggt": Family(
        "vggt",
        VGGT,
        VGGTConfig,
        "aggregator.global_blocks.",
        "VGGT",
        ("facebook/VGGT-1B", "facebook/VGGT-1B-Commercial"),
    ),
    "omega": Family(
        "omega",
        VGGTOmega,
        VGGTOmegaConfig,
        "aggregator.inter_frame_blocks.",
        "VGGT-Omega",
        ("facebook/VGGT-Omega/vggt_omega_1b_512.pt", "facebook/VGGT-Omega/vggt_omega_1b_256_text.pt"),
    ),
}


def family_of_config(config: Any) -> Family:
    """The family whose configuration class ``config`` is an instance of.

    Raises:
        ValueError: a configuration of no known family.
    """
    for family in FAMILIES.values():
        if isinstance(config, family.config_class):
            return family
    raise ValueError(
        f"{type(config).__name__} is not the configuration of a known model family ({', '.join(FAMILIES)})"
    )


def detect_family(keys: Mapping[str, Any] | list[str]) -> Family:
    """The family whose signature keys a state dict holds.

    Raises:
        CheckpointError: no family's keys, or several families' keys at once (the keys are named).
    """
    keys = list(keys)
    found = [f for f in FAMILIES.values() if any(k.startswith(f.signature) for k in keys)]
    if len(found) == 1:
        return found[0]
    if not found:
        shown = ", ".join(sorted(keys)[:8]) + (f" (+{len(keys) - 8} more)" if len(keys) > 8 else "")
        raise CheckpointError(
            f"the checkpoint is not of a known model family ({', '.join(FAMILIES)}): none of its keys starts "
            f"with {' or '.join(f.signature for f in FAMILIES.values())}; its keys: {shown or 'none'}"
        )
    mixed = {f.name: sorted(k for k in keys if k.startswith(f.signature))[:3] for f in found}
    raise CheckpointError(f"the checkpoint mixes the keys of several model families: {mixed}")


def from_pretrained(
    source: str | Path,
    *,
    config: Any | None = None,
    map_location: str | torch.device = "cpu",
    cache_dir: str | Path | None = None,
    revision: str | None = None,
    local_files_only: bool | None = None,
) -> nn.Module:
    """Load a checkpoint of any family strictly; the family is recognised from the checkpoint's keys.

    Args:
        source: a bundled model name, a folder (config.json + weights), a weights file (.safetensors, or an
            official .pt read with ``torch.load(weights_only=True)``), or a Hugging Face hub id.
        config: the family's configuration, when the checkpoint comes without a config.json and is not the
            family's released default (VGGT-1B; VGGT-Omega-1B-512, or VGGT-Omega-1B-256-Text-Alignment when the
            text alignment head's keys are present).

    Raises:
        CheckpointError: the checkpoint cannot be found or read, is of no known family, or does not match.
    """
    checkpoint = load_checkpoint(source, map_location, cache_dir, revision, local_files_only)
    family = detect_family(checkpoint.state)
    if config is not None and not isinstance(config, family.config_class):
        raise CheckpointError(
            f"{source} is a {family.name} checkpoint, but the configuration given is a {type(config).__name__}"
        )
    return family.model_class.from_checkpoint(checkpoint, config, map_location)
