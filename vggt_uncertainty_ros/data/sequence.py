"""``open_sequence``: one streaming reader over TUM folders, ROS 1 bags and ROS 2 bags.

Every reader is a context manager whose :meth:`SequenceReader.frames` yields
:class:`~vggt_uncertainty_ros.data.types.Frame` objects one at a time (images are decoded
lazily, never the whole sequence at once) and whose :attr:`SequenceReader.warnings` counts the
problems met on the way (``unassociated_gt``, ``unassociated_depth``, ``gt_gaps``,
``duplicate_stamps``, ``out_of_order_stamps``, ...). Frames are yielded in stream order: stamps
that repeat or go backwards are counted, never silently reordered or dropped.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import numpy as np
from PIL import Image

from vggt_uncertainty_ros.data.groundtruth import GroundTruth, GtMode, check_stamp_order
from vggt_uncertainty_ros.data.tum import associate, read_tum_list, read_tum_trajectory
from vggt_uncertainty_ros.data.types import Frame, WarningCounter
from vggt_uncertainty_ros.errors import DataError

__all__ = [
    "DEFAULT_DEPTH_TOPIC",
    "DEFAULT_IMAGE_TOPIC",
    "TUM_DEPTH_SCALE",
    "SequenceReader",
    "TumFolderReader",
    "load_tum_depth",
    "load_tum_rgb",
    "open_sequence",
]

_log = logging.getLogger(__name__)

_ReaderT = TypeVar("_ReaderT", bound="SequenceReader")

#: TUM's RGB topic (``sensor_msgs/Image``, rgb8).
DEFAULT_IMAGE_TOPIC = "/camera/rgb/image_color"
#: TUM's depth topic (``sensor_msgs/Image``, 32FC1, metres).
DEFAULT_DEPTH_TOPIC = "/camera/depth/image"
#: TUM depth PNGs store ``round(depth_m * 5000)``; 0 means no measurement.
TUM_DEPTH_SCALE = 5000.0


class SequenceReader(abc.ABC):
    """Base of all sequence readers (context manager, streaming).

    Attributes:
        path: The sequence (folder, ``.bag``, ROS 2 bag directory or ``.mcap``).
        warnings: Problem counts, filled while opening and while streaming.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.warnings = WarningCounter()
        self._open = False

    def __enter__(self: _ReaderT) -> _ReaderT:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def open(self) -> None:
        """Open the underlying files (called by ``with``)."""
        self._open = True

    def close(self) -> None:
        """Release the underlying files."""
        self._open = False

    def _check_open(self) -> None:
        if not self._open:
            raise DataError(f"{self.path}: reader used before open(); use 'with open_sequence(...) as seq'")

    @property
    @abc.abstractmethod
    def n_frames(self) -> int | None:
        """Number of RGB images in the sequence, when known without decoding."""

    @property
    def intrinsics(self) -> np.ndarray | None:
        """``[3, 3]`` camera matrix K of the RGB camera in pixels, when the source has it."""
        return None

    @property
    def ground_truth(self) -> GroundTruth | None:
        """The ground-truth samples (``.stamps_ns``, ``.T`` = ``T_world_cam`` of the RGB optical
        frame in metres, sorted by stamp) without decoding any image; ``None`` without ground truth.
        """
        self._check_open()
        return getattr(self, "_gt", None)

    @abc.abstractmethod
    def frames(self) -> Iterator[Frame]:
        """Stream the frames in stream order."""


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


def open_sequence(
    path: str | Path,
    gt_path: str | Path | None = None,
    *,
    image_topic: str = DEFAULT_IMAGE_TOPIC,
    depth_topic: str = DEFAULT_DEPTH_TOPIC,
    with_depth: bool = False,
    gt_mode: GtMode | str = GtMode.INTERPOLATE,
    max_dt_s: float = 0.02,
    world_frame: str = "/world",
    camera_frame: str | None = None,
) -> SequenceReader:
    """Open a sequence, detecting its kind from the path.

    * a folder with ``rgb.txt``: TUM RGB-D folder (ground truth from ``groundtruth.txt``);
    * a ``.bag`` file: ROS 1 bag; a folder with ``metadata.yaml``, a ``.mcap`` or ``.db3``
      file: ROS 2 bag. Ground truth comes from ``/tf`` (``world_frame`` -> ... ->
      ``camera_frame``, default the image's ``header.frame_id``).

    Args:
        path: The sequence.
        gt_path: A TUM trajectory file that overrides the built-in ground truth.
        image_topic: RGB topic of a bag.
        depth_topic: Depth topic of a bag (used when ``with_depth``).
        with_depth: Attach associated depth (metres, NaN = missing) to each frame.
        gt_mode: Ground-truth lookup, see :class:`GtMode`.
        max_dt_s: Association threshold, seconds.
        world_frame: Fixed frame of the ground truth in ``/tf`` (bags only).
        camera_frame: Camera frame whose pose is ground truth (bags only).

    Returns:
        An unopened :class:`SequenceReader`; use it in a ``with`` block.

    Raises:
        DataError: The path does not exist or its kind is not recognised.
    """
    p = Path(path)
    gt = Path(gt_path) if gt_path is not None else None
    if not p.exists():
        raise DataError(f"sequence {p} does not exist")
    if p.is_dir() and (p / "rgb.txt").is_file():
        return TumFolderReader(p, gt, with_depth=with_depth, gt_mode=gt_mode, max_dt_s=max_dt_s)
    is_ros1 = p.is_file() and p.suffix == ".bag"
    is_ros2 = (p.is_dir() and (p / "metadata.yaml").is_file()) or (
        p.is_file() and p.suffix in (".mcap", ".db3")
    )
    if is_ros1 or is_ros2:
        from vggt_uncertainty_ros.data.bags import BagReader

        return BagReader(
            p,
            gt,
            image_topic=image_topic,
            depth_topic=depth_topic,
            with_depth=with_depth,
            gt_mode=gt_mode,
            max_dt_s=max_dt_s,
            world_frame=world_frame,
            camera_frame=camera_frame,
        )
    raise DataError(
        f"{p}: not a recognised sequence (expected a TUM folder with rgb.txt, a ROS 1 .bag, "
        "a ROS 2 bag directory with metadata.yaml, or a .mcap/.db3 file)"
    )
