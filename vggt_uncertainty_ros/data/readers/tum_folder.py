"""TUM RGB-D folders: ``rgb.txt`` (+ ``depth.txt``, ``groundtruth.txt``) and their PNGs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from vggt_uncertainty_ros.data.groundtruth import GroundTruth, GtMode, check_stamp_order
from vggt_uncertainty_ros.data.layout import TUM_DEPTH_SCALE
from vggt_uncertainty_ros.data.readers.base import SequenceReader
from vggt_uncertainty_ros.data.tum import associate, read_tum_list, read_tum_trajectory
from vggt_uncertainty_ros.data.types import Frame
from vggt_uncertainty_ros.errors import DataError

__all__ = ["TumFolderReader", "load_tum_depth", "load_tum_rgb"]

_log = logging.getLogger(__name__)


def load_tum_rgb(path: Path) -> np.ndarray:
    """Read a TUM colour PNG as ``[H, W, 3]`` uint8 RGB.

    Raises:
        DataError: The file cannot be read or decoded.
    """
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB") if img.mode != "RGB" else img)
    except OSError as err:
        raise DataError(f"cannot read image {path}: {err}") from err


def load_tum_depth(path: Path, scale: float = TUM_DEPTH_SCALE) -> np.ndarray:
    """Read a TUM 16-bit depth PNG as ``[H, W]`` float32 metres (0 -> NaN).

    Raises:
        DataError: The file cannot be read or is not a 16-bit single-channel image.
    """
    try:
        with Image.open(path) as img:
            raw = np.asarray(img)
    except OSError as err:
        raise DataError(f"cannot read depth image {path}: {err}") from err
    if raw.ndim != 2 or raw.dtype.kind not in "ui":
        raise DataError(f"{path}: expected a 16-bit single-channel depth PNG, got {raw.dtype} {raw.shape}")
    depth = raw.astype(np.float32) / np.float32(scale)
    depth[raw == 0] = np.nan
    return depth


class TumFolderReader(SequenceReader):
    """A TUM RGB-D folder: ``rgb.txt`` (+ ``depth.txt``, ``groundtruth.txt``) and the PNGs.

    Depth images associate to RGB images with TUM's one-to-one rule (``max_dt_s``); ground
    truth per :class:`~vggt_uncertainty_ros.data.groundtruth.GtMode`.
    """

    def __init__(
        self,
        path: Path,
        gt_path: Path | None = None,
        *,
        with_depth: bool = False,
        gt_mode: GtMode | str = GtMode.INTERPOLATE,
        max_dt_s: float = 0.02,
    ) -> None:
        super().__init__(path)
        self.gt_path = gt_path if gt_path is not None else path / "groundtruth.txt"
        self.with_depth = with_depth
        self.gt_mode = GtMode(gt_mode)
        self.max_dt_s = max_dt_s
        self._rgb_stamps = np.zeros(0, np.int64)
        self._rgb_names: list[str] = []
        self._depth_for: dict[int, str] = {}
        self._gt: GroundTruth | None = None

    def open(self) -> None:
        rgb_txt = self.path / "rgb.txt"
        if not rgb_txt.is_file():
            raise DataError(f"{self.path}: not a TUM folder (no rgb.txt)")
        self._rgb_stamps, self._rgb_names = read_tum_list(rgb_txt)
        check_stamp_order(self._rgb_stamps, self.warnings, str(rgb_txt))
        if self.with_depth:
            depth_txt = self.path / "depth.txt"
            if not depth_txt.is_file():
                raise DataError(f"{self.path}: depth requested but there is no depth.txt")
            depth_stamps, depth_names = read_tum_list(depth_txt)
            ia, ib = associate(self._rgb_stamps, depth_stamps, self.max_dt_s)
            self._depth_for = {int(i): depth_names[int(j)] for i, j in zip(ia, ib)}
        if self.gt_path.is_file():
            stamps, T = read_tum_trajectory(self.gt_path)
            self._gt = GroundTruth(
                stamps, T, self.warnings, mode=self.gt_mode, max_dt_s=self.max_dt_s, source=str(self.gt_path)
            )
        else:
            _log.info("%s: no ground truth file %s; frames carry no pose", self.path, self.gt_path)
        super().open()

    @property
    def n_frames(self) -> int | None:
        return len(self._rgb_names) if self._open else None

    @property
    def stamps_ns(self) -> np.ndarray:
        """``[N]`` int64 RGB stamps in file order."""
        self._check_open()
        return self._rgb_stamps

    def frames(self) -> Iterator[Frame]:
        self._check_open()
        for index, (stamp, name) in enumerate(zip(self._rgb_stamps.tolist(), self._rgb_names)):
            image = load_tum_rgb(self.path / name)
            depth = None
            if self.with_depth:
                depth_name = self._depth_for.get(index)
                if depth_name is None:
                    self.warnings.add("unassociated_depth", f"{self.path}: no depth for rgb {name}")
                else:
                    depth = load_tum_depth(self.path / depth_name)
            T = self._gt.lookup(stamp) if self._gt is not None else None
            yield Frame(stamp_ns=stamp, image=image, depth=depth, T_world_cam=T, index=index)
