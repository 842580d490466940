"""ROS-free logic of the node: admitting frames into windows and chaining windows into a trajectory.

Two small classes, both free of rclpy so they are tested without ROS:

* :class:`FrameStream` admits images in arrival order and cuts them into windows with the
  shared :class:`~vggt_uncertainty_ros.data.WindowBuilder`. It drops duplicated stamps and
  single out-of-order frames, resets only when stamps persistently go backwards (a bag loop)
  or the clock is reset, and restarts the window when the image size changes. Each outcome is
  reported as a :class:`StreamEvent` so the node can count it. :func:`check_stamp` rejects
  stamps that cannot be right (``nanosec >= 1e9``, negative, far in the future).
* :class:`TrajectoryTracker` turns one window's estimate (``T_0_i`` in VGGT units and the
  head's log-variances, order ``[rot, trans]``) into

  - relative-pose measurements: ``T_0_i`` with the translation multiplied by the window's
    scale, and its covariance in ROS order ``[x, y, z, rotX, rotY, rotZ]`` in the anchor
    camera frame (camera at frame 0's stamp), σ_trans multiplied by the same scale;
  - trajectory poses ``T_odom_base`` of the robot at each new frame, chaining windows
    through their overlapping frames with first-order covariance propagation
    (:func:`~vggt_uncertainty_ros.geometry.compose_with_covariance`); covariances in ROS
    order in the ``odom`` frame.

* :class:`WindowChainer` keeps windows chained when the model runs slower than windows
  arrive: the worker's latest-wins queue drops windows, so the next processed window may share
  no frame with the last processed one. The chainer then re-anchors it on frames the last
  processed window used (see :meth:`WindowChainer.rebase`), so ``~/pose`` is chained through a
  measured relative pose, not glued on. Only where that is impossible (the image size changed,
  the last window failed) is a gap bridged, with the covariance inflated by the motion model
  :class:`GapMotionModel`.

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
    OUT_OF_ORDER = "out_of_order"  #: dropped: older than the last accepted frame (not yet a loop)
    STAMP_BACKWARDS = "stamp_backwards"  #: state reset (bag loop), frame starts a new stream
    CLOCK_RESET = "clock_reset"  #: state reset (the node's clock went back), frame starts a new stream
    SIZE_CHANGED = "size_changed"  #: window restarted, frame starts a new window

    @property
    def resets(self) -> bool:
        """Whether the event starts a new trajectory."""
        return self in (StreamEvent.STAMP_BACKWARDS, StreamEvent.CLOCK_RESET)


#: Reason a stamp is rejected by :func:`check_stamp` (``images_rejected/invalid_stamp``).
INVALID_STAMP = "invalid_stamp"
_NS_PER_S = 1_000_000_000


def check_stamp(sec: int, nanosec: int, now_ns: int | None = None, max_future_s: float = 10.0) -> str | None:
    """Why an image stamp cannot be used, or ``None`` if it can.

    Args:
        sec, nanosec: the ``builtin_interfaces/Time`` fields.
        now_ns: the node clock, ns; ``None`` or 0 (simulated time not received yet) skips the
            future check.
        max_future_s: largest accepted lead of the stamp over ``now_ns``, seconds.

    Returns:
        A message for the log, or ``None``. Rejected: ``nanosec`` outside ``[0, 1e9)``, a
        negative ``sec``, a stamp more than ``max_future_s`` ahead of the clock.
    """
    if not 0 <= nanosec < _NS_PER_S:
        return f"nanosec {nanosec} outside [0, 1e9)"
    if sec < 0:
        return f"negative sec {sec}"
    stamp_ns = sec * _NS_PER_S + nanosec
    if now_ns and stamp_ns - now_ns > max_future_s * _NS_PER_S:
        return f"stamp {stamp_ns * 1e-9:.3f} s is {(stamp_ns - now_ns) * 1e-9:.1f} s ahead of the node clock"
    return None


@dataclass(frozen=True)
class WindowJob:
    """A complete window ready for inference.

    Attributes:
        stamps_ns: image stamps of the window's frames, integer ns, frame 0 = anchor.
        images: HxWx3 uint8 RGB images, one per stamp.
        epoch: :attr:`TrajectoryTracker.epoch` when the window was cut; results of an older
            epoch are stale (a reset happened in between).
        source_hw: ``(height, width)`` of the images as received, when ``images`` were
            shrunk to the model's input size on arrival (None: as received).
    """

    stamps_ns: tuple[int, ...]
    images: tuple[np.ndarray, ...]
    epoch: int
    source_hw: tuple[int, int] | None = None


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

    A frame older than the last accepted one is dropped (``OUT_OF_ORDER``): one late frame
    must not reset the trajectory. Only when ``backwards_to_reset`` consecutive frames are all
    older than the last accepted one (and increase among themselves: a stream that restarted,
    as in a bag loop) does the stream reset (``STAMP_BACKWARDS``, the last of them starts the
    new stream). A node clock that goes back by more than ``clock_jump_s`` (simulated time
    restarted) resets at once (``CLOCK_RESET``).

    Not thread-safe: call from one thread (the executor's callback thread).

    Args:
        config: the shared windowing rule (size, stride, keyframe rule).
        backwards_to_reset: consecutive backwards frames that mean a loop, >= 1.
        clock_jump_s: how far the node clock may go back before it counts as a reset, s.
    """

    def __init__(self, config: WindowConfig, *, backwards_to_reset: int = 3, clock_jump_s: float = 1.0) -> None:
        if backwards_to_reset < 1:
            raise ConfigError(f"backwards_to_reset must be >= 1, got {backwards_to_reset}")
        self._config = config
        self._builder: WindowBuilder[Any] = WindowBuilder(config)
        self._backwards_to_reset = backwards_to_reset
        self._clock_jump_ns = int(clock_jump_s * _NS_PER_S)
        self._last_stamp_ns: int | None = None
        self._shape: tuple[int, ...] | None = None
        self._backwards: list[int] = []
        self._last_now_ns: int | None = None

    def reset(self) -> None:
        """Forget everything: the next frame starts a new stream."""
        self._builder.reset()
        self._last_stamp_ns = None
        self._shape = None
        self._backwards = []

    def push(
        self, image: Any, stamp_ns: int, now_ns: int | None = None, *, shape: tuple[int, ...] | None = None
    ) -> PushResult:
        """Admit one frame.

        Args:
            image: HxWx3 uint8 RGB image (or any item, e.g. the evaluator's ``Frame``, with
                ``shape`` given).
            stamp_ns: its stamp, integer ns (checked by :func:`check_stamp` before).
            now_ns: the node clock when the frame arrived, ns (``None``/0: not known).
            shape: the image's shape when ``image`` is not the array itself.

        Returns:
            The event (see :class:`StreamEvent`) and the completed window, if any.
        """
        event = StreamEvent.ACCEPTED
        if now_ns:
            if self._last_now_ns is not None and now_ns < self._last_now_ns - self._clock_jump_ns:
                _log.warning("node clock went back (%d ns -> %d ns): resetting state", self._last_now_ns, now_ns)
                self.reset()
                event = StreamEvent.CLOCK_RESET
            self._last_now_ns = now_ns
        if self._last_stamp_ns is not None:
            if stamp_ns == self._last_stamp_ns:
                return PushResult(StreamEvent.DUPLICATE_STAMP)
            if stamp_ns < self._last_stamp_ns:
                if self._backwards and stamp_ns <= self._backwards[-1]:
                    self._backwards = []  # not one restarted stream: start counting again
                self._backwards.append(stamp_ns)
                if len(self._backwards) < self._backwards_to_reset:
                    return PushResult(StreamEvent.OUT_OF_ORDER)
                _log.warning(
                    "image stamps went backwards %d times in a row (%d ns -> %d ns): resetting state (bag loop?)",
                    len(self._backwards),
                    self._last_stamp_ns,
                    stamp_ns,
                )
                self.reset()
                event = StreamEvent.STAMP_BACKWARDS
            else:
                self._backwards = []
        shape = tuple(image.shape) if shape is None else tuple(shape)
        if self._shape is not None and shape != self._shape:
            _log.warning("image size changed %s -> %s: restarting the window", self._shape, shape)
            self._builder.reset()
            event = StreamEvent.SIZE_CHANGED
        self._shape = shape
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


class WindowChainer:
    """Re-anchors each window on frames the last processed window used.

    The worker calls :meth:`rebase` just before inference and :meth:`done` after a window's
    poses were chained. A window whose anchor (frame 0) belongs to the last processed window
    is returned unchanged. Otherwise (windows in between were dropped) the window becomes
    ``n_old`` frames of the last processed window followed by the ``size - n_old`` newest
    frames of the job, with ``n_old = max(overlap, size - n_new)`` (``n_new`` frames of the
    job are newer than the last processed frame; ``overlap = size - stride``). Its anchor is
    then a frame whose pose is known, and the frames between get no pose (the job's frames
    left out are counted in :attr:`frames_skipped`; frames of windows the queue dropped are
    counted there as dropped windows). The window keeps its size (one model input shape).

    A window cannot be re-anchored when no window was processed yet in this epoch, when the
    last one belongs to an older epoch (a reset), or when the image size changed; it is then
    returned unchanged and the tracker bridges the gap (:class:`GapMotionModel`).

    Thread-safe (the worker thread calls it; :meth:`reset` may come from another thread).

    Args:
        overlap: frames kept from the last processed window, ``>= 1`` (``size - stride``).
    """

    def __init__(self, overlap: int) -> None:
        if overlap < 1:
            raise ConfigError(f"windows must overlap to be chained, got an overlap of {overlap}")
        self._overlap = overlap
        self._lock = threading.Lock()
        self._last: WindowJob | None = None
        self.windows_rebased = 0
        self.frames_skipped = 0

    def reset(self) -> None:
        """Forget the last processed window."""
        with self._lock:
            self._last = None

    def rebase(self, job: WindowJob) -> WindowJob | None:
        """The window to run instead of ``job`` (``job`` itself when it is already chained).

        Returns:
            The (possibly re-anchored) window, or ``None`` when ``job`` has no frame newer
            than the last processed window (nothing to add; counted nowhere, it is redundant).
        """
        with self._lock:
            last = self._last
            if last is None or last.epoch != job.epoch or not job.stamps_ns:
                return job
            if job.stamps_ns[0] in last.stamps_ns:
                return job
            if job.images[0].shape != last.images[0].shape:
                return job
            newest = last.stamps_ns[-1]
            new_idx = [i for i, s in enumerate(job.stamps_ns) if s > newest]
            size = len(job.stamps_ns)
            n_old = min(len(last.stamps_ns), max(self._overlap, size - len(new_idx)))
            n_new = size - n_old
            if n_new <= 0:
                return None
            skipped = len(new_idx) - n_new
            old_stamps, old_images = last.stamps_ns[-n_old:], last.images[-n_old:]
            take = new_idx[-n_new:]
            self.windows_rebased += 1
            self.frames_skipped += skipped
            return WindowJob(
                old_stamps + tuple(job.stamps_ns[i] for i in take),
                old_images + tuple(job.images[i] for i in take),
                job.epoch,
                job.source_hw,
            )

    def done(self, job: WindowJob) -> None:
        """Record ``job`` (as returned by :meth:`rebase`) as the last processed window."""
        with self._lock:
            self._last = job


@dataclass(frozen=True)
class GapMotionModel:
    """Motion model that bridges an unavoidable gap in the trajectory.

    Across a gap of ``dt`` seconds nothing is measured. The pose is held at the last known
    one (best guess: no motion) and its covariance grows as for a body whose speed is bounded
    by ``sigma_trans_per_s`` and angular rate by ``sigma_rot_rad_per_s`` (one sigma): the
    unknown displacement is ``N(0, (v dt)^2 I3)`` in translation and ``N(0, (w dt)^2 I3)`` in
    rotation, added to the last pose's covariance in ROS order ``[x, y, z, rotX, rotY, rotZ]``
    in the odometry frame. Both blocks are isotropic, so the frame they are expressed in does
    not matter. Growth is linear in ``dt`` (a constant unknown velocity), which is larger than
    a random walk's ``sqrt(dt)`` for gaps over a second: conservative.

    Attributes:
        sigma_trans_per_s: translation one-sigma per second of gap, in the node's translation
            units (VGGT units for scale ``none``, metres for ``odometry``), > 0.
        sigma_rot_rad_per_s: rotation one-sigma per second of gap, rad/s, > 0.
    """

    sigma_trans_per_s: float = 1.0
    sigma_rot_rad_per_s: float = 0.5

    def __post_init__(self) -> None:
        for name in ("sigma_trans_per_s", "sigma_rot_rad_per_s"):
            value = getattr(self, name)
            if not np.isfinite(value) or value <= 0:
                raise ConfigError(f"gap motion model: {name} must be finite and > 0, got {value!r}")

    def covariance(self, dt_s: float) -> np.ndarray:
        """6x6 covariance (ROS order) added across a gap of ``dt_s`` seconds (``|dt_s|`` is used)."""
        dt = abs(float(dt_s))
        var_t, var_r = (self.sigma_trans_per_s * dt) ** 2, (self.sigma_rot_rad_per_s * dt) ** 2
        return np.diag([var_t] * 3 + [var_r] * 3)


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
    #: windows that shared no known frame: bridged with :class:`GapMotionModel` (unbridgeable
    #: by re-anchoring). Also reported as ``trajectory_gaps``.
    trajectory_breaks: int = 0
    scale_fallbacks: int = 0
    windows_without_scale: int = 0
    odometry_rejected: int = 0
    resets: int = 0
    #: frames the backbone flagged as not estimated (e.g. too few matches): not published
    frames_invalid: int = 0


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
        origin_cov: 6x6 covariance (ROS order, ``odom`` frame) of the base pose at the origin:
            a prior that keeps the first pose's covariance positive definite; it propagates
            into every chained pose. Zeros when None.
        gap_model: how the covariance grows across a gap that could not be avoided.

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
        origin_cov: np.ndarray | None = None,
        gap_model: GapMotionModel | None = None,
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
        origin = _ZERO_COV if origin_cov is None else np.asarray(origin_cov, dtype=np.float64)
        self._origin_cam = compose_with_covariance(np.eye(4), origin, T_base_cam, _ZERO_COV)
        self._max_known = max_known
        self.gap_model = gap_model or GapMotionModel()
        self._odom_max_gap_ns = int(odometry_max_gap_s * 1e9)
        self._lock = threading.Lock()
        self._known: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._last_stamp_ns: int | None = None
        self._odom: deque[tuple[int, np.ndarray]] = deque(maxlen=odometry_buffer)
        self._last_scale = 1.0
        self.epoch = 0
        self.counters = TrackerCounters()

    @property
    def n_known(self) -> int:
        """How many frame poses are kept for chaining (at most ``max_known``)."""
        with self._lock:
            return len(self._known)

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
        self,
        stamps_ns: tuple[int, ...] | list[int],
        T_0_i: np.ndarray,
        log_var: np.ndarray,
        epoch: int,
        valid: np.ndarray | None = None,
    ) -> WindowOutput | None:
        """Turn one window's estimate into measurements and trajectory poses.

        Args:
            stamps_ns: the window's image stamps, ns, frame 0 first.
            T_0_i: ``[S,4,4]`` poses of camera i in camera 0, VGGT units.
            log_var: ``[S,6]`` head log-variances, order ``[rot, trans]`` (rad², unit² of the
                head's scale convention), right perturbation in camera i.
            epoch: the :attr:`epoch` of this tracker when the window was cut.
            valid: ``[S]`` bool, False for frames the backbone has no estimate for (their pose
                may be NaN): they are left out of the window and counted (``frames_invalid``),
                never published. Frame 0 is the reference and must be valid. None: all valid.

        Returns:
            The window's output, or ``None`` if the window is stale (a reset happened since) or
            if a ``metric`` head's window has no odometry scale (``windows_without_scale``):
            its σ is in metres, so it cannot be published in VGGT units.

        Raises:
            NonFiniteOutputError: if ``T_0_i`` or ``log_var`` contain NaN/Inf.
        """
        T_0_i = np.asarray(T_0_i, dtype=np.float64)
        log_var = np.asarray(log_var, dtype=np.float64)
        stamps = [int(s) for s in stamps_ns]
        if valid is not None:
            keep = np.asarray(valid, dtype=bool)
            if not keep[0]:
                raise NonFiniteOutputError("the window's reference frame has no estimate; window skipped")
            if not keep.all():
                with self._lock:
                    self.counters.frames_invalid += int((~keep).sum())
                T_0_i, log_var = T_0_i[keep], log_var[keep]
                stamps = [s for s, k in zip(stamps, keep) if k]
        check_finite(T_0_i, log_var)
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
            T_odom_cam0, cov0 = self._origin_cam
            self._remember(anchor, T_odom_cam0, cov0)
            poses.append(self._base_pose(anchor, T_odom_cam0, cov0))
        else:
            # No overlap with what is known (the image size changed, or the windows between
            # failed): continue from the latest pose, its covariance grown by the gap model.
            last_stamp = next(reversed(self._known))
            T_odom_cam0, cov_last = self._known[last_stamp]
            dt_s = (anchor - last_stamp) * 1e-9
            cov0 = cov_last + self.gap_model.covariance(dt_s)
            self._remember(anchor, T_odom_cam0, cov0)
            self.counters.trajectory_breaks += 1
            bridged = True
            _log.warning(
                "window anchored at %d ns does not overlap the trajectory: bridged across %.3f s "
                "with inflated covariance",
                anchor,
                dt_s,
            )
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
