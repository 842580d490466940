"""Image preprocessing identical to the official ``load_and_preprocess_images``.

Per image: RGBA is alpha-composited onto white, then converted to RGB; the image is resized
with Pillow's BICUBIC filter and converted to float in [0, 1] (``uint8 / 255``).

* ``"crop"``: width 518, height ``round(H * 518 / W / 14) * 14``; a height above 518 is
  centre-cropped to 518.
* ``"pad"``: the longer side becomes 518, the shorter one ``round(... / 14) * 14``; then
  padded with white (1.0) to 518 x 518 (``top = (518 - h) // 2``, same for left).

When the images of one call end up with different sizes, each is padded with white to the
largest height and width (centred, ``top = dh // 2``), as the official function does.

Coordinates: :class:`ImageTransform` maps *continuous* pixel coordinates whose origin is
the top-left corner of the top-left pixel (so the image centre is ``(W/2, H/2)``, VGGT's
principal point) from the original image to the model input: ``x_in = sx * x + ox``,
``y_in = sy * y + oy``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from vggt_uncertainty_ros.errors import DataError, ModelError

logger = logging.getLogger(__name__)

TARGET_SIZE = 518
PATCH = 14

ImageLike = str | os.PathLike | Image.Image | np.ndarray
ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)
T = TypeVar("T")


@dataclass(frozen=True)
class ImageTransform:
    """Affine map from original-image to model-input pixel coordinates (no rotation/shear).

    Attributes:
        original_hw: ``(H, W)`` of the original image (px).
        output_hw: ``(H, W)`` of the model input (px).
        scale_xy: ``(sx, sy)`` model px per original px.
        offset_xy: ``(ox, oy)`` model px (negative after cropping, positive after padding).
    """

    original_hw: tuple[int, int]
    output_hw: tuple[int, int]
    scale_xy: tuple[float, float]
    offset_xy: tuple[float, float]


def _to_pil(image: ImageLike) -> Image.Image:
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise DataError(f"expected a uint8 image array, got dtype {image.dtype}")
        if image.ndim == 2:
            return Image.fromarray(image, mode="L")
        if image.ndim == 3 and image.shape[2] in (3, 4):
            return Image.fromarray(np.ascontiguousarray(image), mode="RGB" if image.shape[2] == 3 else "RGBA")
        raise DataError(f"expected an HxW, HxWx3 or HxWx4 image array, got shape {image.shape}")
    path = Path(image)
    try:
        return Image.open(path)
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot open image: {err}") from err


def _load_rgb(image: ImageLike) -> Image.Image:
    img = _to_pil(image)
    if img.mode == "RGBA":
        img = Image.alpha_composite(Image.new("RGBA", img.size, (255, 255, 255, 255)), img)
    return img.convert("RGB")


def _resize(image: ImageLike, mode: str) -> tuple[Image.Image, tuple[int, int]]:
    """Load one image as RGB and resize it as the official loader does (Pillow bicubic).

    Returns the resized image and the original ``(height, width)``.
    """
    img = _load_rgb(image)
    width, height = img.size
    if mode == "pad" and height > width:
        new_h = TARGET_SIZE
        new_w = round(width * (new_h / height) / PATCH) * PATCH
    else:
        new_w = TARGET_SIZE
        new_h = round(height * (new_w / width) / PATCH) * PATCH
    return img.resize((new_w, new_h), Image.Resampling.BICUBIC), (height, width)


def _to_tensor(img: Image.Image, original_hw: tuple[int, int], mode: str) -> tuple[torch.Tensor, list[float]]:
    """Resized image -> (``[3, h, w]`` float32 in [0, 1] cropped or padded, ``[sx, sy, ox, oy, H0, W0]``)."""
    height, width = original_hw
    new_w, new_h = img.size
    t = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float().div(255)
    sx, sy, ox, oy = new_w / width, new_h / height, 0.0, 0.0
    if mode == "crop" and new_h > TARGET_SIZE:
        start = (new_h - TARGET_SIZE) // 2
        t = t[:, start : start + TARGET_SIZE, :]
        oy -= start
    if mode == "pad":
        dh, dw = TARGET_SIZE - t.shape[1], TARGET_SIZE - t.shape[2]
        if dh > 0 or dw > 0:
            t = F.pad(t, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2), mode="constant", value=1.0)
            ox += dw // 2
            oy += dh // 2
    return t, [sx, sy, ox, oy, height, width]


def shrink_for_model(image: np.ndarray, mode: Literal["crop", "pad"] = "crop") -> np.ndarray:
    """The image at the size preprocessing resizes it to, when that is smaller (else the image itself).

    Preprocessing this result gives exactly the same tensor as preprocessing ``image``: the
    resize is the same Pillow bicubic resize, and the second resize is to the same size (a
    copy). The node calls it when a frame arrives, so windows waiting for the model hold
    518-pixel-wide frames instead of full-resolution ones.

    Args:
        image: ``HxWx3`` uint8 RGB.
        mode: ``"crop"`` or ``"pad"``, as given to :func:`preprocess_images`.

    Returns:
        ``hxwx3`` uint8 RGB with ``h <= H`` and ``w <= W``; intrinsics estimated on it map to
        the original pixels by ``fx * W / w``, ``fy * H / h`` (and the same for cx, cy).

    Raises:
        ModelError: unknown mode.
        DataError: not an ``HxWx3`` uint8 array.
    """
    if mode not in ("crop", "pad"):
        raise ModelError(f"mode must be 'crop' or 'pad', got {mode!r}")
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise DataError(f"expected an HxWx3 uint8 RGB array, got {getattr(image, 'shape', None)}")
    resized, (height, width) = _resize(image, mode)
    if resized.size[0] >= width or resized.size[1] >= height:  # not a reduction: keep the original
        return image
    return np.asarray(resized)


#: Threads resizing the images of one call (Pillow releases the GIL while resampling; the
#: bicubic resize is ~90 % of the preprocessing time). Only the resize runs there: the
#: float tensors are made on the caller's thread, so the workers' malloc arenas stay small.
#: Created on first use.
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _map_images(fn: Callable[[ImageLike], T], images: Sequence[ImageLike]) -> list[T]:
    """``[fn(image) for image in images]``, on a shared thread pool when there are several."""
    global _POOL
    if len(images) == 1:
        return [fn(images[0])]
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1), thread_name_prefix="vggt-preprocess")
    return list(_POOL.map(fn, images))


def preprocess_images_with_transforms(
    images: Sequence[ImageLike], mode: Literal["crop", "pad"] = "crop"
) -> tuple[torch.Tensor, list[ImageTransform]]:
    """Preprocess images exactly as the official VGGT loader and report each one's transform.

    Args:
        images: File paths, PIL images, or ``uint8`` arrays ``HxW``, ``HxWx3`` (RGB) or
            ``HxWx4`` (RGBA).
        mode: ``"crop"`` or ``"pad"`` (see the module docstring).

    Returns:
        ``([S, 3, H, W] float32 RGB in [0, 1], one ImageTransform per image)``.

    Raises:
        ModelError: Empty input or unknown mode.
        DataError: An image cannot be read or has an unsupported shape/dtype.
    """
    if len(images) == 0:
        raise ModelError("at least one image is required")
    if mode not in ("crop", "pad"):
        raise ModelError(f"mode must be 'crop' or 'pad', got {mode!r}")
    done = [_to_tensor(img, hw, mode) for img, hw in _map_images(partial(_resize, mode=mode), images)]
    tensors = [t for t, _ in done]
    geoms = [g for _, g in done]  # sx, sy, ox, oy, H0, W0
    return stack_with_white_padding(tensors, geoms)


def stack_with_white_padding(
    tensors: list[torch.Tensor], geoms: list[list[float]]
) -> tuple[torch.Tensor, list[ImageTransform]]:
    """Stack ``[3, h, w]`` images, padding smaller ones with white (1.0) to the largest, centred,
    as the official preprocessing does; ``geoms`` rows ``[sx, sy, ox, oy, H0, W0]`` (scale and
    offset from original to output pixels, original size) get the padding offset added.
    """
    max_h = max(t.shape[1] for t in tensors)
    max_w = max(t.shape[2] for t in tensors)
    if any(t.shape[1:] != (max_h, max_w) for t in tensors):
        logger.warning("images have different sizes after preprocessing; padding with white to %dx%d", max_h, max_w)
        for i, t in enumerate(tensors):
            dh, dw = max_h - t.shape[1], max_w - t.shape[2]
            if dh > 0 or dw > 0:
                tensors[i] = F.pad(t, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2), mode="constant", value=1.0)
                geoms[i][2] += dw // 2
                geoms[i][3] += dh // 2
    transforms = [
        ImageTransform(
            original_hw=(int(g[4]), int(g[5])),
            output_hw=(max_h, max_w),
            scale_xy=(float(g[0]), float(g[1])),
            offset_xy=(float(g[2]), float(g[3])),
        )
        for g in geoms
    ]
    return torch.stack(tensors), transforms


def preprocess_images(images: Sequence[ImageLike], mode: Literal["crop", "pad"] = "crop") -> torch.Tensor:
    """``[S, 3, H, W]`` float32 RGB in [0, 1], identical to the official ``load_and_preprocess_images``.

    See :func:`preprocess_images_with_transforms` for the arguments and errors.
    """
    return preprocess_images_with_transforms(images, mode)[0]


def intrinsics_to_original(intrinsics: ArrayT, transform: ImageTransform) -> ArrayT:
    """Map pinhole intrinsics from model-input pixels back to the original image's pixels.

    Args:
        intrinsics: ``[..., 3, 3]`` ``K`` in model-input pixels (continuous coordinates,
            origin at the top-left image corner), numpy or torch.
        transform: The image's :class:`ImageTransform`.

    Returns:
        ``K_orig = A^-1 K`` with ``A = [[sx, 0, ox], [0, sy, oy], [0, 0, 1]]``, same type,
        dtype and shape: ``fx/sx``, ``fy/sy``, ``(cx - ox)/sx``, ``(cy - oy)/sy``.
    """
    sx, sy = transform.scale_xy
    ox, oy = transform.offset_xy
    out = intrinsics.clone() if isinstance(intrinsics, torch.Tensor) else np.array(intrinsics, copy=True)
    out[..., 0, :] = (intrinsics[..., 0, :] - ox * intrinsics[..., 2, :]) / sx
    out[..., 1, :] = (intrinsics[..., 1, :] - oy * intrinsics[..., 2, :]) / sy
    return out
