"""Tiny numpy/torch dispatch layer used by the geometry functions marked *t*.

The geometry package imports no torch at module level (docs/ARCHITECTURE.md). Functions
that accept torch tensors detect them by type name and use :class:`TorchOps`, which imports
torch lazily; everything else goes through :class:`NumpyOps` in float64. Both classes expose
the same small set of array operations, so the formulas in ``so3``/``se3``/``pose_encoding``
are written once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vggt_uncertainty_ros.errors import GeometryError

Array = Any
"""A ``numpy.ndarray`` or a ``torch.Tensor`` (kept loose so torch stays an optional import)."""


def is_torch(x: object) -> bool:
    """True when ``x`` is a torch tensor (checked without importing torch)."""
    return type(x).__module__.split(".", 1)[0] == "torch"


class NumpyOps:
    """Array operations on float64 numpy arrays."""

    is_torch = False

    @staticmethod
    def asarray(x: Array) -> np.ndarray:
        """Convert to a float64 array."""
        return np.asarray(x, dtype=np.float64)

    @staticmethod
    def stack(seq: Sequence[Array], axis: int) -> np.ndarray:
        return np.stack(seq, axis=axis)

    @staticmethod
    def concat(seq: Sequence[Array], axis: int) -> np.ndarray:
        return np.concatenate(seq, axis=axis)

    @staticmethod
    def sqrt(x: Array) -> np.ndarray:
        return np.sqrt(x)

    @staticmethod
    def sin(x: Array) -> np.ndarray:
        return np.sin(x)

    @staticmethod
    def cos(x: Array) -> np.ndarray:
        return np.cos(x)

    @staticmethod
    def tan(x: Array) -> np.ndarray:
        return np.tan(x)

    @staticmethod
    def atan(x: Array) -> np.ndarray:
        return np.arctan(x)

    @staticmethod
    def atan2(y: Array, x: Array) -> np.ndarray:
        return np.arctan2(y, x)

    @staticmethod
    def where(cond: Array, a: Array, b: Array) -> np.ndarray:
        return np.where(cond, a, b)

    @staticmethod
    def clip_min(x: Array, lo: float) -> np.ndarray:
        return np.maximum(x, lo)

    @staticmethod
    def clip(x: Array, lo: float, hi: float) -> np.ndarray:
        return np.clip(x, lo, hi)

    @staticmethod
    def sum(x: Array, axis: int, keepdims: bool = False) -> np.ndarray:
        return np.sum(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def argmax(x: Array, axis: int) -> np.ndarray:
        return np.argmax(x, axis=axis)

    @staticmethod
    def take_last(x: Array, idx: Array) -> np.ndarray:
        """``x[..., idx[...]]`` along the last axis (``idx`` has one dim less than ``x``)."""
        return np.take_along_axis(x, idx[..., None], axis=-1)[..., 0]

    @staticmethod
    def eye(n: int, like: Array) -> np.ndarray:
        return np.eye(n, dtype=np.float64)

    @staticmethod
    def zeros(shape: tuple[int, ...], like: Array) -> np.ndarray:
        return np.zeros(shape, dtype=np.float64)

    @staticmethod
    def full_like(x: Array, value: float) -> np.ndarray:
        return np.full_like(x, value, dtype=np.float64)

    @staticmethod
    def swap_last(x: Array) -> np.ndarray:
        return np.swapaxes(x, -1, -2)

    @staticmethod
    def broadcast_to(x: Array, shape: tuple[int, ...]) -> np.ndarray:
        return np.broadcast_to(x, shape)


class TorchOps:
    """The same operations on torch tensors (dtype and device of the input are kept)."""

    is_torch = True

    def __init__(self) -> None:
        import torch

        self._t = torch

    def asarray(self, x: Array) -> Array:
        """Keep floating tensors as they are; other inputs become float64 tensors."""
        if not isinstance(x, self._t.Tensor):
            return self._t.as_tensor(np.asarray(x, dtype=np.float64))
        return x if x.is_floating_point() else x.to(self._t.float64)

    def stack(self, seq: Sequence[Array], axis: int) -> Array:
        return self._t.stack(list(seq), dim=axis)

    def concat(self, seq: Sequence[Array], axis: int) -> Array:
        return self._t.cat(list(seq), dim=axis)

    def sqrt(self, x: Array) -> Array:
        return self._t.sqrt(x)

    def sin(self, x: Array) -> Array:
        return self._t.sin(x)

    def cos(self, x: Array) -> Array:
        return self._t.cos(x)

    def tan(self, x: Array) -> Array:
        return self._t.tan(x)

    def atan(self, x: Array) -> Array:
        return self._t.atan(x)

    def atan2(self, y: Array, x: Array) -> Array:
        return self._t.atan2(y, x)

    def where(self, cond: Array, a: Array, b: Array) -> Array:
        return self._t.where(cond, a, b)

    def clip_min(self, x: Array, lo: float) -> Array:
        return self._t.clamp(x, min=lo)

    def clip(self, x: Array, lo: float, hi: float) -> Array:
        return self._t.clamp(x, min=lo, max=hi)

    def sum(self, x: Array, axis: int, keepdims: bool = False) -> Array:
        return self._t.sum(x, dim=axis, keepdim=keepdims)

    def argmax(self, x: Array, axis: int) -> Array:
        return self._t.argmax(x, dim=axis)

    def take_last(self, x: Array, idx: Array) -> Array:
        return self._t.gather(x, -1, idx[..., None])[..., 0]

    def eye(self, n: int, like: Array) -> Array:
        return self._t.eye(n, dtype=like.dtype, device=like.device)

    def zeros(self, shape: tuple[int, ...], like: Array) -> Array:
        return self._t.zeros(shape, dtype=like.dtype, device=like.device)

    def full_like(self, x: Array, value: float) -> Array:
        return self._t.full_like(x, value)

    def swap_last(self, x: Array) -> Array:
        return x.transpose(-1, -2)

    def broadcast_to(self, x: Array, shape: tuple[int, ...]) -> Array:
        return x.expand(shape)


_NUMPY = NumpyOps()
_TORCH: list[TorchOps] = []  # created on first use so that torch is imported lazily


def ops_for(*arrays: object) -> NumpyOps | TorchOps:
    """The operation set for the given inputs: torch if any of them is a tensor."""
    if any(is_torch(a) for a in arrays):
        if not _TORCH:
            _TORCH.append(TorchOps())
        return _TORCH[0]
    return _NUMPY


def check_last_dims(x: Array, dims: tuple[int, ...], name: str) -> None:
    """Raise :class:`GeometryError` unless ``x``'s trailing dimensions equal ``dims``.

    Args:
        x: array or tensor to check.
        dims: required trailing shape, e.g. ``(4, 4)``.
        name: argument name used in the message.
    """
    shape = tuple(x.shape)
    if len(shape) < len(dims) or shape[len(shape) - len(dims) :] != dims:
        want = "[..., " + ", ".join(str(d) for d in dims) + "]"
        raise GeometryError(f"{name} must have shape {want}, got {list(shape)}")
