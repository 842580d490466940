"""The base of every sequence reader: a streaming context manager of :class:`Frame` objects.

Every reader's :meth:`SequenceReader.frames` yields
:class:`~vggt_uncertainty_ros.data.types.Frame` objects one at a time (images are decoded
lazily, never the whole sequence at once) and its :attr:`SequenceReader.warnings` counts the
problems met on the way (``unassociated_gt``, ``unassociated_depth``, ``gt_gaps``,
``duplicate_stamps``, ``out_of_order_stamps``, ...). Frames are yielded in stream order: stamps
that repeat or go backwards are counted, never silently reordered or dropped. Files that
cannot be read raise :class:`~vggt_uncertainty_ros.errors.DataError` naming the file.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import numpy as np

from vggt_uncertainty_ros.data.groundtruth import GroundTruth
from vggt_uncertainty_ros.data.types import Frame, WarningCounter
from vggt_uncertainty_ros.errors import DataError

__all__ = ["SequenceReader"]

_ReaderT = TypeVar("_ReaderT", bound="SequenceReader")


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
