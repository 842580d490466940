"""A plain folder of images named by their stamp (``<seconds>.png``/``.jpg``, TUM's file naming).

For instance the ``rgb/`` folder of a TUM sequence, or frames dumped by another tool. Stamps
come from the file names (decimal seconds, exact to the nanosecond); frames stream in stamp
order. Ground truth, when wanted, comes from a TUM trajectory file (``gt_path``, default
``groundtruth.txt`` in the folder). There is no depth and no camera matrix.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vggt_uncertainty_ros.data.groundtruth import GroundTruth, GtMode, check_stamp_order
from vggt_uncertainty_ros.data.readers.base import SequenceReader
from vggt_uncertainty_ros.data.readers.tum_folder import load_tum_rgb
from vggt_uncertainty_ros.data.tum import parse_stamp, read_tum_trajectory
from vggt_uncertainty_ros.data.types import Frame
from vggt_uncertainty_ros.errors import DataError

__all__ = ["IMAGE_SUFFIXES", "ImageFolderReader", "image_files"]

_log = logging.getLogger(__name__)

#: file suffixes read as images (case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def image_files(path: Path) -> list[Path]:
    """The image files directly in ``path`` (see :data:`IMAGE_SUFFIXES`), sorted by name."""
    return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


class ImageFolderReader(SequenceReader):
    """Stream the images of a folder in stamp order (see the module docstring).

    Args:
        path: The folder.
        gt_path: TUM trajectory file; default ``path / "groundtruth.txt"`` when it exists.
        gt_mode: Ground-truth lookup, see :class:`~vggt_uncertainty_ros.data.groundtruth.GtMode`.
        max_dt_s: Ground-truth association threshold, seconds.

    Raises:
        DataError: From :meth:`open`: no images, or a file name that is not a stamp.
    """

    def __init__(
        self,
        path: Path,
        gt_path: Path | None = None,
        *,
        gt_mode: GtMode | str = GtMode.INTERPOLATE,
        max_dt_s: float = 0.02,
    ) -> None:
        super().__init__(path)
        self.gt_path = gt_path if gt_path is not None else path / "groundtruth.txt"
        self.gt_mode = GtMode(gt_mode)
        self.max_dt_s = max_dt_s
        self._files: list[Path] = []
        self._stamps = np.zeros(0, np.int64)
        self._gt: GroundTruth | None = None

    def open(self) -> None:
        files = image_files(self.path)
        if not files:
            raise DataError(f"{self.path}: no images ({', '.join(IMAGE_SUFFIXES)})")
        stamps = []
        for f in files:
            try:
                stamps.append(parse_stamp(f.stem))
            except ValueError:
                raise DataError(
                    f"{f}: images of a folder without rgb.txt must be named by their stamp in seconds "
                    "(e.g. 1305031102.175304.png); write an rgb.txt (TUM layout) for other names"
                ) from None
        order = np.argsort(np.asarray(stamps, dtype=np.int64), kind="stable")
        self._stamps = np.asarray(stamps, dtype=np.int64)[order]
        self._files = [files[int(k)] for k in order]
        check_stamp_order(self._stamps, self.warnings, str(self.path))  # counts repeated stamps
        if self.gt_path.is_file():
            gt_stamps, T = read_tum_trajectory(self.gt_path)
            self._gt = GroundTruth(
                gt_stamps, T, self.warnings, mode=self.gt_mode, max_dt_s=self.max_dt_s, source=str(self.gt_path)
            )
        else:
            _log.info("%s: no ground truth file %s; frames carry no pose", self.path, self.gt_path)
        super().open()

    @property
    def n_frames(self) -> int | None:
        return len(self._files) if self._open else None

    def frames(self) -> Iterator[Frame]:
        self._check_open()
        for index, (stamp, path) in enumerate(zip(self._stamps.tolist(), self._files)):
            T = self._gt.lookup(stamp) if self._gt is not None else None
            yield Frame(stamp_ns=stamp, image=load_tum_rgb(path), depth=None, T_world_cam=T, index=index)
