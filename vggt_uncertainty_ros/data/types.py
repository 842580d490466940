"""Plain data types shared by the readers: :class:`Frame` and :class:`WarningCounter`."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

import numpy as np

_log = logging.getLogger(__name__)


@dataclass(slots=True)
class Frame:
    """One camera frame of a sequence.

    Attributes:
        stamp_ns: Image stamp, integer nanoseconds since the Unix epoch.
        image: ``[H, W, 3]`` uint8 RGB image (may be a read-only view of the decoded buffer).
        depth: ``[H, W]`` float32 metric depth along the optical axis (z), metres; NaN where
            missing. ``None`` when depth was not requested or could not be associated.
        T_world_cam: ``[4, 4]`` float64 pose of the RGB optical frame (OpenCV axes) in the
            motion-capture world frame, metres (``p_world = T_world_cam @ p_cam``); ``None``
            when no ground truth associates with ``stamp_ns``.
        index: Position of the frame in the stream (0-based, counting every emitted frame).
    """

    stamp_ns: int
    image: np.ndarray
    depth: np.ndarray | None
    T_world_cam: np.ndarray | None
    index: int


class WarningCounter(Counter[str]):
    """Counts data problems by kind (e.g. ``"duplicate_stamps"``) instead of failing.

    Readers call :meth:`add`; consumers put :meth:`as_dict` into their reports. The first
    ``log_first`` occurrences of each kind are logged at WARNING level, later ones at DEBUG.
    """

    log_first: int = 3

    def add(self, kind: str, detail: str = "", count: int = 1) -> None:
        """Count ``count`` problems of ``kind`` and log ``detail``.

        Args:
            kind: Snake-case name of the problem, used as the report key.
            detail: Human-readable context (file, stamp, ...) for the log line.
            count: How many problems this call reports.
        """
        if count <= 0:
            return
        before = self[kind]
        self[kind] += count
        level = logging.WARNING if before < self.log_first else logging.DEBUG
        _log.log(level, "%s (%d so far)%s", kind, self[kind], f": {detail}" if detail else "")

    def as_dict(self) -> dict[str, int]:
        """Plain ``{kind: count}`` dict, sorted by kind, for JSON reports."""
        return {k: int(v) for k, v in sorted(self.items())}
