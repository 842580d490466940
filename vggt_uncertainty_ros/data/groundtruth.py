"""Ground-truth lookup at image stamps: association within ``max_dt`` plus interpolation."""

from __future__ import annotations

import logging
from enum import Enum

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from vggt_uncertainty_ros.data.types import WarningCounter
from vggt_uncertainty_ros.errors import DataError

__all__ = ["GroundTruth", "GtMode", "check_stamp_order"]

_log = logging.getLogger(__name__)


class GtMode(str, Enum):
    """How a ground-truth pose is obtained for an image stamp.

    ``INTERPOLATE``: SLERP/linear between the two samples bracketing the stamp when they are
    at most ``2 * max_dt`` apart, otherwise the nearest sample; ``NEAREST``: the nearest
    sample. Either way the nearest sample must be closer than ``max_dt`` (TUM's rule), else
    the frame has no ground truth and ``unassociated_gt`` is counted.
    """

    INTERPOLATE = "interpolate"
    NEAREST = "nearest"


def check_stamp_order(stamps_ns: np.ndarray, warnings: WarningCounter, source: str) -> None:
    """Count duplicated and out-of-order stamps (``duplicate_stamps``, ``out_of_order_stamps``)."""
    d = np.diff(np.asarray(stamps_ns, dtype=np.int64))
    warnings.add("duplicate_stamps", f"{source}: {int((d == 0).sum())} repeated stamps", int((d == 0).sum()))
    warnings.add("out_of_order_stamps", f"{source}: {int((d < 0).sum())} stamps go backwards", int((d < 0).sum()))


class GroundTruth:
    """A pose trajectory ``T_world_cam(t)`` queried at image stamps.

    Args:
        stamps_ns: ``[N]`` sample stamps, nanoseconds (any order; see below).
        T_world_cam: ``[N, 4, 4]`` poses of the camera optical frame in the world frame, metres.
        warnings: Counter that receives ``duplicate_stamps`` / ``out_of_order_stamps`` /
            ``gt_gaps`` (at construction) and ``unassociated_gt`` (per failed lookup).
        mode: :class:`GtMode`.
        max_dt_s: Association threshold, seconds (TUM: 0.02).
        source: File/topic name used in log messages.

    Out-of-order samples are counted and then sorted for lookup (reported, not silent);
    of duplicated stamps the first sample is kept. A gap is counted where consecutive samples
    are more than ``max(2 * max_dt, 5 * median spacing)`` apart.
    """

    def __init__(
        self,
        stamps_ns: np.ndarray,
        T_world_cam: np.ndarray,
        warnings: WarningCounter,
        *,
        mode: GtMode | str = GtMode.INTERPOLATE,
        max_dt_s: float = 0.02,
        source: str = "ground truth",
    ) -> None:
        stamps = np.asarray(stamps_ns, dtype=np.int64).reshape(-1)
        T = np.asarray(T_world_cam, dtype=np.float64).reshape(-1, 4, 4)
        if len(stamps) != len(T):
            raise DataError(f"{source}: {len(stamps)} stamps but {len(T)} poses")
        self.mode = GtMode(mode)
        self.max_dt_ns = round(max_dt_s * 1e9)
        self.warnings = warnings
        self.source = source
        check_stamp_order(stamps, warnings, source)
        order = np.argsort(stamps, kind="stable")
        stamps, T = stamps[order], T[order]
        keep = np.ones(len(stamps), bool)
        keep[1:] = np.diff(stamps) != 0
        self.stamps_ns, self.T = stamps[keep], T[keep]
        self._rot = Rotation.from_matrix(self.T[:, :3, :3]) if len(self.T) else None
        if len(self.stamps_ns) > 2:
            d = np.diff(self.stamps_ns)
            limit = max(2 * self.max_dt_ns, 5 * float(np.median(d)))
            n_gaps = int((d > limit).sum())
            warnings.add("gt_gaps", f"{source}: {n_gaps} gaps longer than {limit / 1e9:.3f} s", n_gaps)

    def __len__(self) -> int:
        return len(self.stamps_ns)

    def lookup(self, stamp_ns: int) -> np.ndarray | None:
        """``T_world_cam`` at ``stamp_ns`` (``[4, 4]`` float64, metres) or ``None`` (counted)."""
        n = len(self.stamps_ns)
        if n == 0:
            self.warnings.add("unassociated_gt", f"{self.source}: empty, no pose for {stamp_ns} ns")
            return None
        stamp_ns = int(stamp_ns)
        hi = int(np.searchsorted(self.stamps_ns, stamp_ns, side="left"))
        if hi < n and self.stamps_ns[hi] == stamp_ns:
            return self.T[hi].copy()
        lo = hi - 1
        d_lo = stamp_ns - int(self.stamps_ns[lo]) if lo >= 0 else None
        d_hi = int(self.stamps_ns[hi]) - stamp_ns if hi < n else None
        nearest = min(d for d in (d_lo, d_hi) if d is not None)
        if nearest >= self.max_dt_ns:
            self.warnings.add(
                "unassociated_gt",
                f"{self.source}: no sample within {self.max_dt_ns / 1e9:.3f} s of {stamp_ns} ns",
            )
            return None
        if (
            self.mode is GtMode.INTERPOLATE
            and d_lo is not None
            and d_hi is not None
            and d_lo + d_hi <= 2 * self.max_dt_ns
        ):
            return self._interpolate(lo, hi, d_lo / (d_lo + d_hi))
        idx = lo if (d_hi is None or (d_lo is not None and d_lo <= d_hi)) else hi
        return self.T[idx].copy()

    def _interpolate(self, lo: int, hi: int, alpha: float) -> np.ndarray:
        assert self._rot is not None
        slerp = Slerp([0.0, 1.0], self._rot[[lo, hi]])
        out = np.eye(4)
        out[:3, :3] = slerp([alpha]).as_matrix()[0]
        out[:3, 3] = (1.0 - alpha) * self.T[lo, :3, 3] + alpha * self.T[hi, :3, 3]
        return out
