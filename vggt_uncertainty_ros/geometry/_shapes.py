"""Input conversion and shape checks shared by the geometry modules (numpy, float64)."""

from __future__ import annotations

from typing import Any

import numpy as np

from vggt_uncertainty_ros.errors import GeometryError


def as_float64(x: Any, dims: tuple[int, ...], name: str) -> np.ndarray:
    """``x`` as a float64 array whose trailing dimensions equal ``dims``.

    Args:
        x: array-like input.
        dims: required trailing shape, e.g. ``(4, 4)``.
        name: argument name used in the message.

    Raises:
        GeometryError: the input is not numeric or its trailing shape differs.
    """
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise GeometryError(f"{name} must be numeric, got {type(x).__name__}: {err}") from err
    shape = arr.shape
    if len(shape) < len(dims) or shape[len(shape) - len(dims) :] != dims:
        want = "[..., " + ", ".join(str(d) for d in dims) + "]"
        raise GeometryError(f"{name} must have shape {want}, got {list(shape)}")
    return arr
