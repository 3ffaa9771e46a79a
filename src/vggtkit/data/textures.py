"""Texture bank for the synthetic scenes: photographs shipped with scikit-image plus procedural noise.

Textures are (3, T, T) float tensors in [0, 1] that tile (the sampler wraps coordinates). Photographs come
from ``skimage.data`` (bundled in the wheel, no download). A machine without scikit-image renders the same
scenes from a bank file written by :func:`save_photo_bank` on one with it, named by the ``VGGTKIT_PHOTO_BANK``
environment variable (so worker processes see it too); with neither, the bank falls back to procedural
textures only, so the generator still works (with a logged warning) but draws other scenes.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

logger = logging.getLogger(__name__)

TEXTURE_SIZE = 128
PHOTO_BANK_ENV = "VGGTKIT_PHOTO_BANK"
# Sample images inside the scikit-image wheel (no network): colour and grey photographs of varied content.
_PHOTO_NAMES = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "colorwheel",
    "camera",
    "brick",
    "grass",
    "gravel",
    "moon",
    "coins",
    "clock",
    "page",
    "text",
)


@functools.lru_cache(maxsize=1)
def photo_bank(size: int = 2 * TEXTURE_SIZE) -> Tensor:
    """All bundled photographs as RGB, resized to ``size`` x ``size``: from the file named by
    ``$VGGTKIT_PHOTO_BANK`` when set, otherwise from scikit-image.

    Returns:
        (P, 3, size, size) float32 in [0, 1]; P = 0 when neither is available.

    Raises:
        ValueError: the bank file cannot be read or holds photographs of another size.
    """
    path = os.environ.get(PHOTO_BANK_ENV)
    if path:
        return _read_photo_bank(Path(path), size)
    try:
        import skimage.data as skdata
    except ImportError:
        logger.warning("scikit-image is not installed: synthetic scenes use procedural textures only")
        return torch.zeros(0, 3, size, size)
    photos = []
    for name in _PHOTO_NAMES:
        try:
            array = getattr(skdata, name)()
        except Exception as exc:  # a sample that needs a download in this scikit-image version
            logger.debug("skipping skimage.data.%s: %s", name, exc)
            continue
        image = torch.as_tensor(array).float()
        if image.ndim == 2:
            image = image[..., None].expand(*image.shape, 3)
        image = image[..., :3].permute(2, 0, 1) / 255.0
        photos.append(F.interpolate(image[None], size=(size, size), mode="bilinear", antialias=True)[0])
    return torch.stack(photos).clamp(0, 1) if photos else torch.zeros(0, 3, size, size)


def _read_photo_bank(path: Path, size: int) -> Tensor:
    from safetensors.torch import load_file

    try:
        photos = load_file(str(path))["photos"]
    except (OSError, KeyError, RuntimeError) as exc:
        raise ValueError(f"cannot read the photo bank {path} (${PHOTO_BANK_ENV}): {exc}") from exc
    if photos.ndim != 4 or tuple(photos.shape[1:]) != (3, size, size):
        raise ValueError(
            f"the photo bank {path} holds {tuple(photos.shape)}, expected (P, 3, {size}, {size})"
        )
    return photos.float()


def save_photo_bank(path: str | os.PathLike[str]) -> Path:
    """Write this machine's photo bank (from scikit-image) to a safetensors file for machines without it.

    Raises:
        ValueError: scikit-image is not installed here either.
    """
    from safetensors.torch import save_file

    from vggtkit.utils.atomic import atomic_path

    photos = photo_bank()
    if len(photos) == 0:
        raise ValueError("no photographs to save: install scikit-image")
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file({"photos": photos.contiguous()}, str(tmp))
    return path


def value_noise(generator: torch.Generator, size: int = TEXTURE_SIZE, octaves: int = 4) -> Tensor:
    """Tileable multi-octave value noise.

    Returns:
        (size, size) float32 in [0, 1].
    """
    out = torch.zeros(size, size)
    amplitude, total = 1.0, 0.0
    for octave in range(octaves):
        cells = 2 ** (octave + 2)
        grid = torch.rand(1, 1, cells, cells, generator=generator)
        # Wrap padding then bicubic upsampling keeps the texture tileable.
        grid = F.pad(grid, (1, 2, 1, 2), mode="circular")
        up = F.interpolate(grid, scale_factor=size / cells, mode="bicubic", align_corners=False)[0, 0]
        offset = size // cells
        out += amplitude * up[offset : offset + size, offset : offset + size]
        total += amplitude
        amplitude *= 0.55
    out = out / total
    return ((out - out.min()) / (out.max() - out.min() + 1e-6)).clamp(0, 1)


def _random_colour(generator: torch.Generator) -> Tensor:
    return 0.15 + 0.85 * torch.rand(3, generator=generator)


def procedural_texture(generator: torch.Generator, size: int = TEXTURE_SIZE) -> Tensor:
    """One procedural texture: coloured noise, checkers, stripes or marble-like bands.

    Returns:
        (3, size, size) float32 in [0, 1].
    """
    kind = int(torch.randint(0, 4, (1,), generator=generator))
    low, high = _random_colour(generator), _random_colour(generator)
    noise = value_noise(generator, size)
    coords = torch.arange(size, dtype=torch.float32) / size
    if kind == 0:
        mix = noise
    elif kind == 1:
        cells = int(torch.randint(2, 9, (1,), generator=generator))
        checker = ((coords[:, None] * cells).floor() + (coords[None, :] * cells).floor()) % 2
        mix = 0.75 * checker + 0.25 * noise
    elif kind == 2:
        bands = int(torch.randint(2, 12, (1,), generator=generator))
        mix = 0.5 + 0.5 * torch.sin(2 * torch.pi * bands * coords[None, :] + 3.0 * noise)
    else:
        mix = 0.5 + 0.5 * torch.sin(2 * torch.pi * (coords[:, None] + coords[None, :]) * 2 + 6.0 * noise)
    return (low[:, None, None] * (1 - mix) + high[:, None, None] * mix).clamp(0, 1)


def photo_texture(generator: torch.Generator, size: int = TEXTURE_SIZE) -> Tensor | None:
    """A random crop of a random bundled photograph with a random tint, or None without scikit-image.

    Returns:
        (3, size, size) float32 in [0, 1], made tileable by mirroring.
    """
    bank = photo_bank()
    if len(bank) == 0:
        return None
    photo = bank[int(torch.randint(0, len(bank), (1,), generator=generator))]
    full = photo.shape[-1]
    crop = int(torch.randint(full // 3, full + 1, (1,), generator=generator))
    y0 = int(torch.randint(0, full - crop + 1, (1,), generator=generator))
    x0 = int(torch.randint(0, full - crop + 1, (1,), generator=generator))
    patch = photo[:, y0 : y0 + crop, x0 : x0 + crop]
    half = F.interpolate(patch[None], size=(size // 2, size // 2), mode="bilinear", antialias=True)[0]
    # Mirror into a 2x2 tile so the texture wraps without seams.
    top = torch.cat((half, half.flip(-1)), dim=-1)
    tile = torch.cat((top, top.flip(-2)), dim=-2)
    tint = 0.7 + 0.6 * torch.rand(3, generator=generator)
    return (tile * tint[:, None, None]).clamp(0, 1)


def random_texture(generator: torch.Generator, photo_probability: float = 0.5) -> Tensor:
    """A photograph (probability ``photo_probability``, when available) or a procedural texture.

    Returns:
        (3, TEXTURE_SIZE, TEXTURE_SIZE) float32 in [0, 1].
    """
    if float(torch.rand(1, generator=generator)) < photo_probability:
        texture = photo_texture(generator)
        if texture is not None:
            return texture
    return procedural_texture(generator)


def sample_textures(textures: Tensor, material: Tensor, uv: Tensor) -> Tensor:
    """Bilinear, wrapping lookup of per-point materials.

    Args:
        textures: (M, 3, T, T) texture stack.
        material: (N,) long material index of each point.
        uv: (N, 2) texture coordinates in texture repeats (any real value; the integer part is dropped).

    Returns:
        (N, 3) colours.
    """
    num, _, size, _ = textures.shape
    flat = textures.permute(0, 2, 3, 1).reshape(num * size * size, 3)
    pix = uv * size - 0.5
    base = pix.floor()
    frac = pix - base
    x0 = base[:, 0].long() % size
    y0 = base[:, 1].long() % size
    x1 = (x0 + 1) % size
    y1 = (y0 + 1) % size
    offset = material * size * size

    def tap(y: Tensor, x: Tensor) -> Tensor:
        return flat[offset + y * size + x]

    fx, fy = frac[:, :1], frac[:, 1:]
    top = tap(y0, x0) * (1 - fx) + tap(y0, x1) * fx
    bottom = tap(y1, x0) * (1 - fx) + tap(y1, x1) * fx
    return top * (1 - fy) + bottom * fy
