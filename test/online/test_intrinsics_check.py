"""Tests of the ROS-free camera_info check: REP 104 ROI/binning, focal ratios, the monitor."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vggt_uncertainty_ros.online.intrinsics_check import (
    REJECT_SIZE,
    REJECT_UNCALIBRATED,
    CameraInfoError,
    CameraIntrinsics,
    FocalLengthMonitor,
    effective_intrinsics,
    focal_ratios,
)


def _K(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def test_full_image_keeps_k_and_size():
    info = effective_intrinsics(_K(500, 510, 320, 240).ravel(), 640, 480)
    np.testing.assert_array_equal(info.K, _K(500, 510, 320, 240))
    assert (info.width, info.height) == (640, 480)


def test_roi_then_binning_maps_pixels_of_the_published_image():
    K = _K(600, 620, 330, 250)
    info = effective_intrinsics(K, 640, 480, binning=(2, 4), roi=(100, 40, 400, 320))
    assert (info.width, info.height) == (200, 80)
    # a 3D point projects to the same place in the full image and (shifted, binned) in the output
    X = np.array([0.3, -0.2, 2.0])
    u_full = K @ X / X[2]
    u_out = info.K @ X / X[2]
    np.testing.assert_allclose(u_out[:2], [(u_full[0] - 100) / 2, (u_full[1] - 40) / 4])


@pytest.mark.parametrize("K", [np.zeros((3, 3)), _K(np.nan, 500, 1, 1), _K(500, -1, 1, 1)])
def test_uncalibrated_k_is_refused(K):
    with pytest.raises(CameraInfoError, match="no usable focal lengths"):
        effective_intrinsics(K, 640, 480)


def test_focal_ratios_are_medians_over_frames():
    est = np.stack([_K(f, 2 * f, 0, 0) for f in (400.0, 440.0, 10_000.0)])  # one outlier frame
    fx, fy = focal_ratios(est, _K(400, 800, 0, 0))
    assert fx == pytest.approx(1.1) and fy == pytest.approx(1.1)


def test_monitor_compares_same_size_windows_and_flags_deviation():
    monitor = FocalLengthMonitor(tolerance=0.2)
    assert monitor.compare(np.stack([_K(500, 500, 0, 0)] * 3), 64, 48) is None, "no calibration yet"
    snap = monitor.snapshot()
    assert math.isnan(snap["focal_ratio_fx"]) and snap["focal_windows_compared"] == 0
    assert monitor.add_camera_info(CameraIntrinsics(_K(400, 400, 32, 24), 64, 48))
    assert monitor.compare(np.stack([_K(460, 420, 0, 0)] * 3), 64, 48) == pytest.approx((1.15, 1.05))
    assert not monitor.deviates()
    assert monitor.compare(np.stack([_K(520, 400, 0, 0)] * 3), 64, 48) == pytest.approx((1.3, 1.0))
    assert monitor.deviates()
    assert monitor.compare(np.stack([_K(520, 400, 0, 0)] * 3), 128, 96) is None, "other image size"
    snap = monitor.snapshot()
    assert snap["focal_ratio_fx"] == pytest.approx(1.3) and snap["focal_ratio_fy"] == pytest.approx(1.0)
    assert snap["focal_windows_compared"] == 2 and snap["focal_windows_out_of_tolerance"] == 1


def test_monitor_counts_rejected_camera_info():
    monitor = FocalLengthMonitor(tolerance=0.2)
    monitor.observe_image_size(64, 48)
    assert not monitor.add_camera_info(CameraIntrinsics(_K(400, 400, 0, 0), 640, 480))
    assert not monitor.add_camera_info(None)
    assert monitor.add_camera_info(CameraIntrinsics(_K(400, 400, 0, 0), 64, 48))
    snap = monitor.snapshot()
    assert snap["camera_info_received"] == 3 and snap["camera_info_rejected"] == 2
    assert snap[f"camera_info_rejected/{REJECT_SIZE}"] == 1
    assert snap[f"camera_info_rejected/{REJECT_UNCALIBRATED}"] == 1


def test_monitor_refuses_a_non_positive_tolerance():
    with pytest.raises(ValueError, match="tolerance"):
        FocalLengthMonitor(0.0)
