"""ROS-free check of VGGT's focal lengths against a calibrated camera (``camera_info``).

VGGT estimates a pinhole ``K`` per frame (:attr:`~vggt_uncertainty_ros.online.estimator.WindowEstimate.intrinsics`,
pixels of the input image). When the camera driver also publishes its calibration, the ratio
``f_vggt / f_calibrated`` tells a robotics user whether VGGT "sees" the camera as it really is:
a median ratio far from 1 means a wrong ``camera_info``, a zoomed/cropped stream, or images
outside what VGGT handles well, and the poses deserve less trust than their covariance says.

* :func:`effective_intrinsics` turns ``camera_info`` fields into the ``K`` of the image that
  is actually published, applying ROI then binning as REP 104 defines them.
* :class:`FocalLengthMonitor` keeps the latest usable calibration (thread-safe: the node
  feeds calibrations from its executor and windows from its worker thread), counts rejected
  calibrations, and compares each window's estimate with it.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter
from dataclasses import dataclass

import numpy as np

from vggt_uncertainty_ros.errors import DataError

_log = logging.getLogger(__name__)

#: camera_info rejection reasons
REJECT_SIZE = "size_mismatch"  #: calibrated for another resolution than the images
REJECT_UNCALIBRATED = "uncalibrated"  #: K all zeros, non-finite or non-positive focal lengths


class CameraInfoError(DataError):
    """A ``camera_info`` calibration cannot be used (uncalibrated K, bad binning or ROI)."""


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole calibration of the images as published.

    Attributes:
        K: 3x3 float64 camera matrix in pixels of a ``width`` x ``height`` image.
        width: image width in pixels.
        height: image height in pixels.
    """

    K: np.ndarray
    width: int
    height: int


def effective_intrinsics(
    K: np.ndarray,
    width: int,
    height: int,
    binning: tuple[int, int] = (0, 0),
    roi: tuple[int, int, int, int] = (0, 0, 0, 0),
) -> CameraIntrinsics:
    """The calibration of the published image from ``camera_info`` fields (REP 104).

    The driver crops the full-resolution image to the ROI, then bins it; ``K`` refers to the
    full resolution. ``binning`` 0 or 1 means none; an ROI of zero width/height means the
    full image.

    Args:
        K: 3x3 (or 9 row-major values) camera matrix of the full-resolution image, pixels.
        width: full-resolution width, pixels.
        height: full-resolution height, pixels.
        binning: ``(binning_x, binning_y)``.
        roi: ``(x_offset, y_offset, width, height)``, full-resolution pixels.

    Raises:
        CameraInfoError: ``K`` is not finite or its focal lengths are not positive (an
            uncalibrated camera publishes zeros), or the size/ROI is empty.
    """
    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    if not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise CameraInfoError(f"camera_info K has no usable focal lengths (fx={K[0, 0]}, fy={K[1, 1]})")
    bx, by = (max(1, int(b)) for b in binning)
    x0, y0, roi_w, roi_h = (int(v) for v in roi)
    if roi_w > 0 and roi_h > 0:
        width, height = roi_w, roi_h
    else:
        x0 = y0 = 0
    if width <= 0 or height <= 0:
        raise CameraInfoError(f"camera_info size {width}x{height} is empty")
    out = K.copy()
    out[0, 2] -= x0
    out[1, 2] -= y0
    out[0, :] /= bx
    out[1, :] /= by
    return CameraIntrinsics(out, width // bx, height // by)


def focal_ratios(estimated: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """Median over frames of ``fx_est / fx_ref`` and ``fy_est / fy_ref``.

    Args:
        estimated: ``[S, 3, 3]`` estimated K, pixels of the same image size as ``reference``.
        reference: 3x3 calibrated K, pixels.

    Returns:
        ``(fx_ratio, fy_ratio)``, dimensionless (1 = VGGT agrees with the calibration).
    """
    estimated = np.asarray(estimated, dtype=np.float64).reshape(-1, 3, 3)
    return (
        float(np.median(estimated[:, 0, 0]) / reference[0, 0]),
        float(np.median(estimated[:, 1, 1]) / reference[1, 1]),
    )


class FocalLengthMonitor:
    """Compares each window's estimated focal lengths with the latest usable ``camera_info``.

    Args:
        tolerance: largest accepted relative deviation ``|ratio - 1|`` (0.2 = 20 %), > 0.
    """

    def __init__(self, tolerance: float) -> None:
        if not tolerance > 0:
            raise ValueError(f"tolerance must be > 0, got {tolerance!r}")
        self.tolerance = float(tolerance)
        self._lock = threading.Lock()
        self._reference: CameraIntrinsics | None = None
        self._image_size: tuple[int, int] | None = None  # (width, height)
        self._received = 0
        self._rejected: Counter[str] = Counter({REJECT_SIZE: 0, REJECT_UNCALIBRATED: 0})
        self._compared = 0
        self._out_of_tolerance = 0
        self._ratios = (math.nan, math.nan)

    def observe_image_size(self, width: int, height: int) -> None:
        """Record the size of the images being used (calibrations are checked against it)."""
        with self._lock:
            self._image_size = (int(width), int(height))

    def add_camera_info(self, info: CameraIntrinsics | None, reason: str | None = None) -> bool:
        """Take one ``camera_info`` message; returns whether it became the reference.

        Args:
            info: its effective calibration, or None if it could not be converted.
            reason: why ``info`` is None (a ``REJECT_*`` name); ``uncalibrated`` by default.
        """
        with self._lock:
            self._received += 1
            if info is None:
                self._rejected[reason or REJECT_UNCALIBRATED] += 1
                return False
            if self._image_size is not None and (info.width, info.height) != self._image_size:
                self._rejected[REJECT_SIZE] += 1
                return False
            self._reference = info
            return True

    def compare(self, intrinsics: np.ndarray, width: int, height: int) -> tuple[float, float] | None:
        """Compare one window's estimate with the reference of the same image size.

        Args:
            intrinsics: ``[S, 3, 3]`` estimated K in pixels of the ``width`` x ``height`` input.
            width: input image width, pixels.
            height: input image height, pixels.

        Returns:
            ``(fx_ratio, fy_ratio)`` (estimated / calibrated), or None when no calibration of
            that size is known or the ratios are not finite.
        """
        with self._lock:
            ref = self._reference
        if ref is None or (ref.width, ref.height) != (int(width), int(height)):
            return None
        ratios = focal_ratios(intrinsics, ref.K)
        if not all(math.isfinite(r) for r in ratios):
            _log.warning("non-finite focal length ratio %s: window not compared", ratios)
            return None
        with self._lock:
            self._ratios = ratios
            self._compared += 1
            if not self._within(ratios):
                self._out_of_tolerance += 1
        return ratios

    def _within(self, ratios: tuple[float, float]) -> bool:
        return all(abs(r - 1.0) <= self.tolerance for r in ratios)

    def deviates(self) -> bool:
        """Whether the latest compared window is outside the tolerance."""
        with self._lock:
            return self._compared > 0 and not self._within(self._ratios)

    def snapshot(self) -> dict[str, float | int]:
        """Flat key -> value view for ``/diagnostics`` (ratios are NaN before the first comparison)."""
        with self._lock:
            out: dict[str, float | int] = {
                "camera_info_received": self._received,
                "camera_info_rejected": sum(self._rejected.values()),
                "focal_ratio_fx": self._ratios[0],
                "focal_ratio_fy": self._ratios[1],
                "focal_ratio_tolerance": self.tolerance,
                "focal_windows_compared": self._compared,
                "focal_windows_out_of_tolerance": self._out_of_tolerance,
            }
            out.update({f"camera_info_rejected/{k}": v for k, v in self._rejected.items()})
            return out
