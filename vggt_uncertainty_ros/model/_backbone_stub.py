"""Temporary stand-ins for ``model/backbone.py`` (the ``Backbone`` protocol) until it is merged.

Same names and fields as that module; removed once ``model/backbone.py`` is on main.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vggt_uncertainty_ros.errors import InvalidWindowError

BUILDERS: dict[str, Callable[..., Any]] = {}


@dataclass(frozen=True)
class WindowPrediction:
    """One window's backbone output (see ``model/backbone.py``)."""

    T_0_i: np.ndarray
    intrinsics: np.ndarray
    features: np.ndarray
    valid: np.ndarray
    aux: Mapping[str, np.ndarray] = field(default_factory=dict)


def register_backbone(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        BUILDERS[name] = fn
        return fn

    return deco


def check_images(images: Sequence[np.ndarray]) -> None:
    if len(images) == 0:
        raise InvalidWindowError("a window needs at least one image, got none")
    for i, im in enumerate(images):
        if not isinstance(im, np.ndarray) or im.ndim != 3 or im.shape[2] != 3 or im.dtype != np.uint8:
            raise InvalidWindowError(f"image {i} must be an HxWx3 uint8 RGB array")
    if len({im.shape for im in images}) != 1:
        raise InvalidWindowError("all images of a window must have the same size")
