"""VGGT-Ω's image preprocessing (the official ``load_and_preprocess_images``), with transforms.

Per image: RGBA is composited on white and converted to RGB; an aspect ratio ``h / w``
outside [0.5, 2] is centre-cropped into it; the image is resized (Pillow bicubic) to a
multiple of the patch size chosen by ``mode``:

* ``balanced``: about ``(image_resolution / patch)²`` patches at the image's aspect ratio
  (``w_patches = round(sqrt(n / aspect))``, ``h_patches = round(n / sqrt(n / aspect))``);
* ``max_size``: the longer side becomes ``image_resolution``, the other the nearest patch
  multiple (at least one patch).

Images that end up with different sizes are padded with white (centred) to a common size.
Each image's :class:`~vggt_uncertainty_ros.model.preprocess.ImageTransform` maps original
pixels to network-input pixels (for :func:`~vggt_uncertainty_ros.model.intrinsics_to_original`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from vggt_uncertainty_ros.errors import ModelError
from vggt_uncertainty_ros.model.preprocess import ImageLike, ImageTransform, _load_rgb, stack_with_white_padding

logger = logging.getLogger(__name__)

#: Preprocessing modes of VGGT-Ω.
OMEGA_MODES = ("balanced", "max_size")
#: The official default resolution (``vggt_omega_1b_512.pt``).
DEFAULT_RESOLUTION = 512
PATCH = 16


def _crop_box(width: int, height: int) -> tuple[int, int, int, int]:
    """``(left, top, right, bottom)`` bringing ``height / width`` into [0.5, 2] (centred)."""
    aspect = height / max(width, 1)
    if aspect < 0.5:
        crop_w = min(width, max(1, int(round(height / 0.5))))
        left = max((width - crop_w) // 2, 0)
        return left, 0, left + crop_w, height
    if aspect > 2.0:
        crop_h = min(height, max(1, int(round(width * 2.0))))
        top = max((height - crop_h) // 2, 0)
        return 0, top, width, top + crop_h
    return 0, 0, width, height


def target_shape(height: int, width: int, mode: str, image_resolution: int, patch: int = PATCH) -> tuple[int, int]:
    """Network input ``(H, W)`` for an (already aspect-cropped) ``height x width`` image."""
    aspect = height / max(width, 1)
    if mode == "balanced":
        n = (image_resolution // patch) ** 2
        w_p = np.sqrt(n / aspect)
        h_p = n / w_p
        return max(1, int(np.round(h_p))) * patch, max(1, int(np.round(w_p))) * patch

    def to_patch(v: float) -> int:
        return max(patch, int(np.round(float(v) / patch)) * patch)

    if aspect >= 1.0:
        return image_resolution, to_patch(image_resolution / aspect)
    return to_patch(image_resolution * aspect), image_resolution


def load_and_preprocess_images_with_transforms(
    images: Sequence[ImageLike],
    mode: str = "balanced",
    image_resolution: int = DEFAULT_RESOLUTION,
    patch_size: int = PATCH,
) -> tuple[torch.Tensor, list[ImageTransform]]:
    """Preprocess like the official loader; also return each image's transform.

    Args:
        images: paths, PIL images or uint8 arrays (HxW, HxWx3 RGB, HxWx4 RGBA).
        mode: ``balanced`` or ``max_size``.
        image_resolution: target resolution (a multiple of ``patch_size``; 512 for
            ``vggt_omega_1b_512.pt``, 416 for the reproduce checkpoint).
        patch_size: patch side (16).

    Returns:
        ``([S, 3, H, W] float32 RGB in [0, 1], transforms)``.

    Raises:
        ModelError: no images, an unknown mode or a bad resolution.
        DataError: an image cannot be read.
    """
    if len(images) == 0:
        raise ModelError("at least one image is required")
    if mode not in OMEGA_MODES:
        raise ModelError(f"mode must be one of {', '.join(OMEGA_MODES)}; got {mode!r}")
    if patch_size <= 0 or image_resolution <= 0 or image_resolution % patch_size:
        raise ModelError(
            f"image_resolution ({image_resolution}) must be a positive multiple of patch_size ({patch_size})"
        )
    tensors, geoms = [], []
    for image in images:
        img = _load_rgb(image)
        width0, height0 = img.size
        left, top, right, bottom = _crop_box(width0, height0)
        if (left, top, right, bottom) != (0, 0, width0, height0):
            img = img.crop((left, top, right, bottom))
        cw, ch = img.size
        th, tw = target_shape(ch, cw, mode, image_resolution, patch_size)
        img = img.resize((tw, th), Image.Resampling.BICUBIC)
        tensors.append(torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float().div(255))
        sx, sy = tw / cw, th / ch
        geoms.append([sx, sy, -left * sx, -top * sy, height0, width0])
    return stack_with_white_padding(tensors, geoms)


def load_and_preprocess_images(
    images: Sequence[ImageLike],
    mode: str = "balanced",
    image_resolution: int = DEFAULT_RESOLUTION,
    patch_size: int = PATCH,
) -> torch.Tensor:
    """``[S, 3, H, W]`` float32 in [0, 1], equal to the official VGGT-Ω loader (see above)."""
    return load_and_preprocess_images_with_transforms(images, mode, image_resolution, patch_size)[0]
