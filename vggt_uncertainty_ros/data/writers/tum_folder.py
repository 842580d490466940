"""Streaming writer of TUM RGB-D folders (``rgb/``, ``depth/``, lists, ``groundtruth.txt``)."""

from __future__ import annotations

import logging
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import numpy as np
from PIL import Image

from vggt_uncertainty_ros.data.layout import TUM_DEPTH_SCALE
from vggt_uncertainty_ros.data.tum import (
    format_stamp,
    write_tum_list,
    write_tum_trajectory,
)
from vggt_uncertainty_ros.errors import DataError

__all__ = ["TumFolderWriter", "depth_to_tum_png"]

_log = logging.getLogger(__name__)

_W = TypeVar("_W", bound="TumFolderWriter")


def depth_to_tum_png(depth_m: np.ndarray, scale: float = TUM_DEPTH_SCALE) -> np.ndarray:
    """``[H, W]`` metres -> uint16 ``round(depth * scale)``; NaN, <= 0 and out-of-range -> 0."""
    scaled = np.rint(np.asarray(depth_m, dtype=np.float64) * scale)
    valid = np.isfinite(scaled) & (scaled > 0) & (scaled <= np.iinfo(np.uint16).max)
    return np.where(valid, scaled, 0).astype(np.uint16)


class TumFolderWriter:
    """Write a TUM RGB-D folder frame by frame (context manager).

    Images go to ``rgb/<stamp>.png`` (8-bit RGB) and ``depth/<stamp>.png`` (16-bit,
    ``depth_m * 5000``, 0 = missing); the lists and ``groundtruth.txt`` (``T_world_cam`` of the
    RGB optical frame, metres, XYZW) are written on :meth:`close`.

    Args:
        path: Output folder (created; must not contain ``rgb.txt`` yet).
        png_compress_level: zlib level for PNGs (1 = fast; PNG is lossless at any level).
    """

    def __init__(self, path: str | Path, png_compress_level: int = 1) -> None:
        self.path = Path(path)
        if (self.path / "rgb.txt").exists():
            raise DataError(f"{self.path} already holds a TUM sequence (rgb.txt exists); not overwriting")
        (self.path / "rgb").mkdir(parents=True, exist_ok=True)
        (self.path / "depth").mkdir(parents=True, exist_ok=True)
        self.level = png_compress_level
        self._rgb: tuple[list[int], list[str]] = ([], [])
        self._depth: tuple[list[int], list[str]] = ([], [])
        self._gt_stamps: list[int] = []
        self._gt_poses: list[np.ndarray] = []

    def __enter__(self: _W) -> _W:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def write_rgb(self, stamp_ns: int, rgb: np.ndarray) -> None:
        """Write one ``[H, W, 3]`` uint8 RGB image."""
        name = f"rgb/{format_stamp(stamp_ns)}.png"
        Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(self.path / name, compress_level=self.level)
        self._rgb[0].append(int(stamp_ns))
        self._rgb[1].append(name)

    def write_depth(self, stamp_ns: int, depth_m: np.ndarray) -> None:
        """Write one ``[H, W]`` float depth map in metres (TUM's 5000 scale, 0 = missing)."""
        name = f"depth/{format_stamp(stamp_ns)}.png"
        Image.fromarray(depth_to_tum_png(depth_m)).save(self.path / name, compress_level=self.level)
        self._depth[0].append(int(stamp_ns))
        self._depth[1].append(name)

    def write_pose(self, stamp_ns: int, T_world_cam: np.ndarray) -> None:
        """Record one ground-truth pose (RGB optical frame in world, metres)."""
        self._gt_stamps.append(int(stamp_ns))
        self._gt_poses.append(np.asarray(T_world_cam, dtype=np.float64))

    def close(self) -> None:
        """Write ``rgb.txt``, ``depth.txt`` and ``groundtruth.txt``."""
        write_tum_list(self.path / "rgb.txt", self._rgb[0], self._rgb[1], title="color images")
        write_tum_list(self.path / "depth.txt", self._depth[0], self._depth[1], title="depth maps")
        if self._gt_stamps:
            write_tum_trajectory(
                self.path / "groundtruth.txt", self._gt_stamps, np.stack(self._gt_poses), stamp_decimals=4
            )
