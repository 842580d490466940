"""ROS-free logic of the node: admitting frames into windows and chaining windows into a trajectory.

Two small classes, both free of rclpy so they are tested without ROS:

* :class:`FrameStream` admits images in arrival order and cuts them into windows with the
  shared :class:`~vggt_uncertainty_ros.data.WindowBuilder`. It drops duplicated stamps,
  resets on stamps going backwards (a bag loop) and restarts the window when the image size
  changes. Each outcome is reported as a :class:`StreamEvent` so the node can count it.
* :class:`TrajectoryTracker` turns one window's estimate (``T_0_i`` in VGGT units and the
  head's log-variances, order ``[rot, trans]``) into

  - relative-pose measurements: ``T_0_i`` with the translation multiplied by the window's
    scale, and its covariance in ROS order ``[x, y, z, rotX, rotY, rotZ]`` in the anchor
    camera frame (camera at frame 0's stamp), σ_trans multiplied by the same scale;
  - trajectory poses ``T_odom_base`` of the robot at each new frame, chaining windows
    through their overlapping frames with first-order covariance propagation
    (:func:`~vggt_uncertainty_ros.geometry.compose_with_covariance`); covariances in ROS
    order in the ``odom`` frame.

Conventions (docs/ARCHITECTURE.md): ``T_a_b`` maps points of frame ``b`` into frame ``a``;
cameras use OpenCV optical axes; stamps are integer nanoseconds.

The odometry frame's origin is the base pose at the first frame of a stream (after start-up
or a reset): ``T_odom_base(first) = I``. Translations are in VGGT's normalised units when the
scale source is ``none`` and in the odometry's metres when it is ``odometry``.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from vggt_uncertainty_ros.data.windows import WindowBuilder, WindowConfig
from vggt_uncertainty_ros.errors import ConfigError, NonFiniteOutputError
from vggt_uncertainty_ros.geometry import (
    compose_with_covariance,
    diag_to_cov,
    fit_scale,
    invert_transform,
    residual_cov_to_ros,
    scale_covariance,
    scale_translation,
)
from vggt_uncertainty_ros.geometry.residuals import ScaleConvention

_log = logging.getLogger(__name__)

_ZERO_COV = np.zeros((6, 6))


class ScaleSource(str, Enum):
    """Where the node's metric scale comes from."""

    NONE = "none"  #: VGGT's normalised units (s = 1)
    ODOMETRY = "odometry"  #: per-window least-squares fit against odometry translations


class StreamEvent(str, Enum):
    """What :meth:`FrameStream.push` did with a frame."""

    ACCEPTED = "accepted"  #: added to the current window
    DUPLICATE_STAMP = "duplicate_stamp"  #: dropped: same stamp as the previous frame
    STAMP_BACKWARDS = "stamp_backwards"  #: state reset (bag loop), frame starts a new stream
    SIZE_CHANGED = "size_changed"  #: window restarted, frame starts a new window


@dataclass(frozen=True)
class WindowJob:
    """A complete window ready for inference.

    Attributes:
        stamps_ns: image stamps of the window's frames, integer ns, frame 0 = anchor.
        images: HxWx3 uint8 RGB images, one per stamp.
        epoch: :attr:`TrajectoryTracker.epoch` when the window was cut; results of an older
            epoch are stale (a reset happened in between).
    """

    stamps_ns: tuple[int, ...]
    images: tuple[np.ndarray, ...]
    epoch: int


@dataclass(frozen=True)
class PushResult:
    """Outcome of :meth:`FrameStream.push`.

    Attributes:
        event: what happened to the frame.
        stamps_ns: stamps (ns) of the window the frame completed, else ``None``.
        images: the completed window's HxWx3 uint8 images, else ``None``.
    """

    event: StreamEvent
    stamps_ns: tuple[int, ...] | None = None
    images: tuple[np.ndarray, ...] | None = None


class FrameStream:
    """Admits frames in arrival order and cuts them into windows.

    Not thread-safe: call from one thread (the executor's callback thread).

    Args:
        config: the shared windowing rule (size, stride, keyframe rule).
    """

    def __init__(self, config: WindowConfig) -> None:
        self._config = config
        self._builder = WindowBuilder(config)
        self._last_stamp_ns: int | None = None
        self._shape: tuple[int, ...] | None = None

    def reset(self) -> None:
        """Forget everything: the next frame starts a new stream."""
        self._builder.reset()
        self._last_stamp_ns = None
        self._shape = None

    def push(self, image: np.ndarray, stamp_ns: int) -> PushResult:
        """Admit one frame.

        Args:
            image: HxWx3 uint8 RGB image.
            stamp_ns: its stamp, integer ns.

        Returns:
            The event (see :class:`StreamEvent`) and the completed window, if any.
        """
        event = StreamEvent.ACCEPTED
        if self._last_stamp_ns is not None:
            if stamp_ns == self._last_stamp_ns:
                return PushResult(StreamEvent.DUPLICATE_STAMP)
            if stamp_ns < self._last_stamp_ns:
                _log.warning(
                    "image stamp went backwards (%d ns -> %d ns): resetting state (bag loop?)",
                    self._last_stamp_ns,
                    stamp_ns,
                )
                self.reset()
                event = StreamEvent.STAMP_BACKWARDS
        if self._shape is not None and image.shape != self._shape:
            _log.warning("image size changed %s -> %s: restarting the window", self._shape, image.shape)
            self._builder.reset()
            event = StreamEvent.SIZE_CHANGED
        self._shape = image.shape
        self._last_stamp_ns = stamp_ns
        window = self._builder.push(image, stamp_ns)
        if window is None:
            return PushResult(event)
        stamps, images = _window_contents(window)
        return PushResult(event, stamps, images)


def _window_contents(window: Any) -> tuple[tuple[int, ...], tuple[np.ndarray, ...]]:
    """Stamps (ns) and items of a :class:`~vggt_uncertainty_ros.data.Window`."""
    stamps = tuple(int(s) for s in window.stamps_ns)
    items = tuple(window.items)
    return stamps, items


@dataclass(frozen=True)
class RelativeMeasurement:
    """Pose of window frame i in the anchor camera frame (window frame 0).

    Attributes:
        anchor_stamp_ns: stamp of the window's frame 0 (the frame the pose is expressed in), ns.
        stamp_ns: stamp of frame i, ns.
        T_0_i: 4x4 pose of camera i in camera 0 (OpenCV axes), translation in the node's scale
            (VGGT units for scale ``none``, metres for ``odometry``).
        cov_ros: 6x6 covariance, ROS order ``[x, y, z, rotX, rotY, rotZ]``, expressed in the
            anchor camera frame; rad², unit² of the translation.
    """

    anchor_stamp_ns: int
    stamp_ns: int
    T_0_i: np.ndarray
    cov_ros: np.ndarray


@dataclass(frozen=True)
class TrajectoryPose:
    """Pose of the robot base in the odometry frame at an image stamp.

    Attributes:
        stamp_ns: image stamp, ns.
        T_odom_base: 4x4 pose of ``base_frame`` in ``odom_frame`` (translation in the node's scale).
        cov_ros: 6x6 covariance, ROS order ``[x, y, z, rotX, rotY, rotZ]``, in ``odom_frame``.
    """

    stamp_ns: int
    T_odom_base: np.ndarray
    cov_ros: np.ndarray


@dataclass
class WindowOutput:
    """Everything one window contributes: measurements, new trajectory poses and the scale used."""

    relative: list[RelativeMeasurement]
    poses: list[TrajectoryPose]
    scale: float
    scale_fitted: bool
    bridged: bool


@dataclass
class TrackerCounters:
    """Counters the node reports in /diagnostics."""

    windows: int = 0
    stale_windows: int = 0
    trajectory_breaks: int = 0
    scale_fallbacks: int = 0
    windows_without_scale: int = 0
    odometry_rejected: int = 0
    resets: int = 0


def check_finite(T_0_i: np.ndarray, log_var: np.ndarray) -> None:
    """Raise :class:`NonFiniteOutputError` if a window's poses or log-variances are not finite."""
    if not (np.isfinite(T_0_i).all() and np.isfinite(log_var).all()):
        raise NonFiniteOutputError("model output contains NaN or Inf; window skipped")


class TrajectoryTracker:
    """Chains window estimates into relative measurements and an odometry-frame trajectory.

    Thread-safe: :meth:`process` runs on the inference worker, :meth:`add_odometry` and
    :meth:`reset` on the executor thread.

    Args:
        T_base_cam: 4x4 static pose of the camera (optical frame) in the base frame, metres.
        scale_source: ``none`` (VGGT units) or ``odometry`` (fit against odometry translations).
        scale_convention: units of the head's translation log-variance (``vggt`` or ``metric``).
        max_known: how many recent frame poses to keep for chaining (bounded memory).
        odometry_buffer: how many odometry messages to keep for the scale fit.
        odometry_max_gap_s: largest distance of a frame stamp outside the odometry buffer's
            stamps, or between the two odometry messages it is interpolated from.

    Raises:
        ConfigError: for a ``metric`` head with scale source ``none``, or a bad extrinsic.
    """

    def __init__(
        self,
        T_base_cam: np.ndarray,
        scale_source: ScaleSource | str = ScaleSource.NONE,
        scale_convention: ScaleConvention | str = ScaleConvention.VGGT,
        *,
        max_known: int = 64,
        odometry_buffer: int = 2000,
        odometry_max_gap_s: float = 0.25,
    ) -> None:
        self.scale_source = ScaleSource(scale_source)
        self.scale_convention = ScaleConvention(scale_convention)
        if self.scale_source is ScaleSource.NONE and self.scale_convention is ScaleConvention.METRIC:
            raise ConfigError(
                "a head with scale_convention 'metric' needs a metric scale: set scale_source "
                "'odometry' or use a head trained with scale_convention 'vggt'"
            )
        T_base_cam = np.asarray(T_base_cam, dtype=np.float64)
        if T_base_cam.shape != (4, 4) or not np.isfinite(T_base_cam).all():
            raise ConfigError(f"camera-to-base extrinsic must be a finite 4x4 transform, got {T_base_cam!r}")
        self._T_base_cam = T_base_cam
        self._T_cam_base = invert_transform(T_base_cam)
        self._max_known = max_known
        self._odom_max_gap_ns = int(odometry_max_gap_s * 1e9)
        self._lock = threading.Lock()
        self._known: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._last_stamp_ns: int | None = None
        self._odom: deque[tuple[int, np.ndarray]] = deque(maxlen=odometry_buffer)
        self._last_scale = 1.0
        self.epoch = 0
        self.counters = TrackerCounters()

    def reset(self) -> None:
        """Start a new trajectory (new odometry origin); pending windows become stale."""
        with self._lock:
            self._known.clear()
            self._last_stamp_ns = None
            self._odom.clear()
            self._last_scale = 1.0
            self.epoch += 1
            self.counters.resets += 1

    def add_odometry(self, stamp_ns: int, T_odom_base: np.ndarray) -> None:
        """Buffer one odometry pose (4x4 base in the odometry's frame, metres) for the scale fit.

        Out-of-order messages (stamp not after the last buffered one) are ignored; a pose that
        is not a finite 4x4 matrix is dropped and counted (``odometry_rejected``).
        """
        T_odom_base = np.asarray(T_odom_base, dtype=np.float64)
        with self._lock:
            if T_odom_base.shape != (4, 4) or not np.isfinite(T_odom_base).all():
                self.counters.odometry_rejected += 1
                return
            if self._odom and stamp_ns <= self._odom[-1][0]:
                return
            self._odom.append((int(stamp_ns), T_odom_base))

    def process(
        self, stamps_ns: tuple[int, ...] | list[int], T_0_i: np.ndarray, log_var: np.ndarray, epoch: int
    ) -> WindowOutput | None:
        """Turn one window's estimate into measurements and trajectory poses.

        Args:
            stamps_ns: the window's image stamps, ns, frame 0 first.
            T_0_i: ``[S,4,4]`` poses of camera i in camera 0, VGGT units.
            log_var: ``[S,6]`` head log-variances, order ``[rot, trans]`` (rad², unit² of the
                head's scale convention), right perturbation in camera i.
            epoch: the :attr:`epoch` of this tracker when the window was cut.

        Returns:
            The window's output, or ``None`` if the window is stale (a reset happened since) or
            if a ``metric`` head's window has no odometry scale (``windows_without_scale``):
            its σ is in metres, so it cannot be published in VGGT units.

        Raises:
            NonFiniteOutputError: if ``T_0_i`` or ``log_var`` contain NaN/Inf.
        """
        T_0_i = np.asarray(T_0_i, dtype=np.float64)
        log_var = np.asarray(log_var, dtype=np.float64)
        check_finite(T_0_i, log_var)
        stamps = [int(s) for s in stamps_ns]
        with self._lock:
            if epoch != self.epoch:
                self.counters.stale_windows += 1
                return None
            scale, fitted = self._scale(stamps, T_0_i)
            if not fitted and self.scale_convention is ScaleConvention.METRIC:
                self.counters.windows_without_scale += 1
                return None
            relative = self._relative(stamps, T_0_i, log_var, scale)
            poses, bridged = self._chain(relative)
            self.counters.windows += 1
            return WindowOutput(relative, poses, scale, fitted, bridged)

    # -- internals (lock held) ------------------------------------------------------------

    def _relative(
        self, stamps: list[int], T_0_i: np.ndarray, log_var: np.ndarray, scale: float
    ) -> list[RelativeMeasurement]:
        T_scaled = scale_translation(T_0_i, scale)
        cov = diag_to_cov(np.exp(log_var))
        if self.scale_convention is ScaleConvention.VGGT:  # σ_trans is in VGGT units: scale it too
            cov = scale_covariance(cov, scale)
        cov_ros = residual_cov_to_ros(T_scaled, cov)
        cov_ros = 0.5 * (cov_ros + np.swapaxes(cov_ros, -1, -2))
        return [RelativeMeasurement(stamps[0], stamps[i], T_scaled[i], cov_ros[i]) for i in range(1, len(stamps))]

    def _chain(self, relative: list[RelativeMeasurement]) -> tuple[list[TrajectoryPose], bool]:
        poses: list[TrajectoryPose] = []
        bridged = False
        anchor = relative[0].anchor_stamp_ns if relative else None
        if anchor is None:
            return poses, bridged
        if anchor in self._known:
            T_odom_cam0, cov0 = self._known[anchor]
        elif not self._known:
            T_odom_cam0, cov0 = self._T_base_cam, _ZERO_COV
            self._remember(anchor, T_odom_cam0, cov0)
            poses.append(self._base_pose(anchor, T_odom_cam0, cov0))
        else:
            # No overlap with what is known (a dropped window or a restarted one): continue
            # from the latest pose, assuming no motion across the gap.
            T_odom_cam0, cov0 = self._known[next(reversed(self._known))]
            self._remember(anchor, T_odom_cam0, cov0)
            self.counters.trajectory_breaks += 1
            bridged = True
            _log.warning("window anchored at %d ns does not overlap the trajectory: bridged", anchor)
        for m in relative:
            if self._last_stamp_ns is not None and m.stamp_ns <= self._last_stamp_ns:
                continue
            T_odom_cam, cov = compose_with_covariance(T_odom_cam0, cov0, m.T_0_i, m.cov_ros)
            self._remember(m.stamp_ns, T_odom_cam, cov)
            poses.append(self._base_pose(m.stamp_ns, T_odom_cam, cov))
        return poses, bridged

    def _base_pose(self, stamp_ns: int, T_odom_cam: np.ndarray, cov_cam: np.ndarray) -> TrajectoryPose:
        T_odom_base, cov_base = compose_with_covariance(T_odom_cam, cov_cam, self._T_cam_base, _ZERO_COV)
        if self._last_stamp_ns is None or stamp_ns > self._last_stamp_ns:
            self._last_stamp_ns = stamp_ns
        return TrajectoryPose(stamp_ns, np.asarray(T_odom_base), np.asarray(cov_base))

    def _remember(self, stamp_ns: int, T_odom_cam: np.ndarray, cov: np.ndarray) -> None:
        self._known[stamp_ns] = (np.asarray(T_odom_cam), np.asarray(cov))
        self._known.move_to_end(stamp_ns)
        while len(self._known) > self._max_known:
            self._known.popitem(last=False)

    def _scale(self, stamps: list[int], T_0_i: np.ndarray) -> tuple[float, bool]:
        if self.scale_source is ScaleSource.NONE:
            return 1.0, False
        T_odom_base = self._odometry_at(stamps)
        if T_odom_base is None:
            self.counters.scale_fallbacks += 1
            return self._last_scale, False
        T_odom_cam = T_odom_base @ self._T_base_cam
        T_gt = invert_transform(T_odom_cam[0]) @ T_odom_cam
        fit = fit_scale(T_gt[:, :3, 3], T_0_i[:, :3, 3])
        if not bool(fit.ok) or not np.isfinite(fit.scale):  # low motion / out of range: no fit, counted
            self.counters.scale_fallbacks += 1
            return self._last_scale, False
        self._last_scale = float(fit.scale)
        return self._last_scale, True

    def _odometry_at(self, stamps: list[int]) -> np.ndarray | None:
        """Odometry base poses ``[S,4,4]`` interpolated at ``stamps``, or None if not covered."""
        if len(self._odom) < 2:
            return None
        odom_stamps = np.array([s for s, _ in self._odom], dtype=np.int64)
        query = np.asarray(stamps, dtype=np.int64)
        if query[0] < odom_stamps[0] - self._odom_max_gap_ns or query[-1] > odom_stamps[-1] + self._odom_max_gap_ns:
            return None
        query = np.clip(query, odom_stamps[0], odom_stamps[-1])
        idx = np.clip(np.searchsorted(odom_stamps, query), 1, len(odom_stamps) - 1)
        if (odom_stamps[idx] - odom_stamps[idx - 1] > self._odom_max_gap_ns).any():
            return None
        poses = np.stack([T for _, T in self._odom])
        t0 = (odom_stamps - odom_stamps[0]).astype(np.float64) * 1e-9
        tq = (query - odom_stamps[0]).astype(np.float64) * 1e-9
        rot = Slerp(t0, Rotation.from_matrix(poses[:, :3, :3]))(tq)
        out = np.tile(np.eye(4), (len(stamps), 1, 1))
        out[:, :3, :3] = rot.as_matrix()
        for axis in range(3):
            out[:, axis, 3] = np.interp(tq, t0, poses[:, axis, 3])
        return out
