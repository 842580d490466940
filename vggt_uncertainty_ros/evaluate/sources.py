"""Sources of window measurements: the model run offline, or the node's recorded messages.

Both sources yield :class:`WindowMeasurement` objects in anchor-stamp order, one per window,
holding only poses and covariances (never images), so a sequence is evaluated with
window-sized buffers:

* :class:`ModelSource` (``--run-model``) streams frames with ``data.open_sequence``, cuts them
  into windows exactly as the node admits them (the node's
  :class:`~vggt_uncertainty_ros.online.tracking.FrameStream` configured from the node's
  ``params.yaml``, with the node's parameter rules: duplicates and late frames dropped, an
  image-size change restarts the window) and runs
  :class:`~vggt_uncertainty_ros.online.estimator.WindowEstimator`.
* :func:`read_pose_messages` (``--poses-topic``) reads recorded
  ``geometry_msgs/PoseWithCovarianceStamped`` relative-pose messages of the node from a ROS 1 /
  ROS 2 bag through ``data.BagFile`` (the data layer's one bag reader), groups them into
  windows by the anchor stamp in ``header.frame_id`` (``measurements.parse_anchor_frame_id``)
  and converts their ROS covariance back to our residual convention
  (``geometry.ros_cov_to_residual_cov``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vggt_uncertainty_ros.data import (
    BagFile,
    WarningCounter,
    WindowConfig,
    load_window_config,
    open_sequence,
)
from vggt_uncertainty_ros.errors import (
    ConfigError,
    DataError,
    EvaluationError,
    ModelError,
    TopicNotFoundError,
)
from vggt_uncertainty_ros.evaluate.config import (
    DEFAULT_PARAMS_YAML,
    EvalConfig,
    ScaleMode,
)
from vggt_uncertainty_ros.evaluate.coverage import StampSpan
from vggt_uncertainty_ros.geometry import (
    diag_to_cov,
    pose_from_message_fields,
    ros_cov_to_residual_cov,
)
from vggt_uncertainty_ros.online.measurements import parse_anchor_frame_id
from vggt_uncertainty_ros.online.tracking import FrameStream, StreamEvent

if TYPE_CHECKING:
    from vggt_uncertainty_ros.online.estimator import WindowEstimator

__all__ = [
    "POSE_MSGTYPE",
    "DecodeStats",
    "ModelSource",
    "WindowMeasurement",
    "check_covariance",
    "read_pose_messages",
]

_log = logging.getLogger(__name__)

#: message type of the node's ``~/relative_pose`` output.
POSE_MSGTYPE = "geometry_msgs/msg/PoseWithCovarianceStamped"


@dataclass(frozen=True)
class WindowMeasurement:
    """One window's relative poses and covariances as the source gives them.

    Attributes:
        index: window index in source order (0-based).
        stamps_ns: ``[S]`` int64 image stamps; ``stamps_ns[0]`` is the anchor (frame 0).
        T_0_i: ``[S, 4, 4]`` pose of camera i in camera 0 (OpenCV axes), translation in the
            source's unit (VGGT units for the model and for the node's scale ``none``);
            ``T_0_i[0] = I``.
        cov: ``[S, 6, 6]`` covariance in our residual convention (``[rot rad², trans unit²]``,
            right perturbation in camera i), same unit as ``T_0_i``; row 0 is unused.
        valid: ``[S]`` bool, the measurement is usable (finite pose, finite positive-definite
            covariance); ``valid[0]`` is True.
        T_world_cam_gt: ``[S, 4, 4]`` ground-truth ``T_world_cam`` (metres) carried by the
            frames, NaN where none associated; None when the source carries no ground truth.
        log_var_raw: ``[S, 6]`` log σ² of the diagonal as produced (before any scale), used for
            clamp-hit statistics.
        sigma_trans_scales: False when σ_trans is already metric (a ``metric`` head) and must not
            be multiplied by the window's scale.
        parameterization: the head's output parameterization (``log_var`` or ``sqrt_info``),
            which decides the clamp bounds of clamp-hit statistics.
    """

    index: int
    stamps_ns: np.ndarray
    T_0_i: np.ndarray
    cov: np.ndarray
    valid: np.ndarray
    T_world_cam_gt: np.ndarray | None
    log_var_raw: np.ndarray
    sigma_trans_scales: bool = True
    parameterization: str = "log_var"


@dataclass
class DecodeStats:
    """Frame decoding throughput of a streamed sequence (excludes model time), and what it held.

    Attributes:
        frames: frames decoded.
        seconds: reader time, s.
        images: stamps of the image frames read (coverage).
        ground_truth: stamps of the frames that had ground truth (coverage).
    """

    frames: int = 0
    seconds: float = 0.0
    images: StampSpan = field(default_factory=StampSpan)
    ground_truth: StampSpan = field(default_factory=StampSpan)

    def observe(self, stamp_ns: int, has_ground_truth: bool) -> None:
        """Count one decoded frame."""
        self.frames += 1
        self.images.add(stamp_ns)
        if has_ground_truth:
            self.ground_truth.add(stamp_ns)

    @property
    def frames_per_s(self) -> float:
        """Decoded frames per second of reader time (0 when nothing was read)."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def check_covariance(cov: np.ndarray) -> str | None:
    """Why a 6×6 covariance is unusable (``"nan_covariance"``, ``"non_pd_covariance"``) or None."""
    if not np.all(np.isfinite(cov)):
        return "nan_covariance"
    sym = 0.5 * (cov + cov.T)
    if not np.allclose(cov, cov.T, rtol=1e-6, atol=1e-12 * max(1.0, float(np.abs(cov).max()))):
        return "non_pd_covariance"
    if float(np.linalg.eigvalsh(sym).min()) <= 0.0:
        return "non_pd_covariance"
    return None


class ModelSource:
    """Backbone + head (or constant σ) run offline over a streamed sequence.

    Args:
        cfg: evaluator configuration (data, gt, backbone, head, params, σ, device, ...).
        warnings: counter shared with the evaluator.

    Attributes:
        window_config: the node's windowing rule read from ``params.yaml``.
        decode: frame decoding throughput, filled while iterating.
    """

    def __init__(self, cfg: EvalConfig, warnings: WarningCounter) -> None:
        self.cfg = cfg
        self.warnings = warnings
        params = cfg.params if cfg.params is not None else DEFAULT_PARAMS_YAML
        if cfg.params is not None or params.exists():
            self.window_config = load_window_config(params)
            _log.info("windowing from %s: %s", params, self.window_config)
        else:
            self.window_config = WindowConfig()
            _log.warning("no params.yaml at %s; default windowing %s", params, self.window_config)
        self.decode = DecodeStats()

    def _estimator(self) -> WindowEstimator:
        from vggt_uncertainty_ros.online.estimator import build_estimator

        try:
            return build_estimator(
                self.cfg.backbone,
                self.cfg.head,
                constant_sigma=(self.cfg.sigma_rot_rad, self.cfg.sigma_trans),
                token_cache_frames=2 * self.window_config.size,
            )
        except ValueError as err:
            raise ModelError(f"cannot build the estimator: {err}") from err

    def windows(self) -> Iterator[WindowMeasurement]:
        """Stream the sequence and yield one measurement per window (images are not kept).

        Raises:
            DataError: the sequence cannot be opened.
            ModelError: the backbone or head cannot be loaded.
        """
        from vggt_uncertainty_ros.online.estimator import NonFiniteOutputError

        estimator = self._estimator()
        scales = estimator.scale_convention != "metric"
        if not scales and self.cfg.scale_mode is ScaleMode.NONE:
            raise ConfigError(
                f"head {self.cfg.head} has scale convention 'metric'; it needs a metric scale "
                "(use --scale-mode per-window-gt), as the node refuses it with scale source 'none'"
            )
        meta = estimator.head_metadata
        parameterization = str(meta.parameterization) if meta is not None else "log_var"
        kwargs: dict[str, object] = {"max_dt_s": self.cfg.max_dt_s}
        if self.cfg.image_topic:
            kwargs["image_topic"] = self.cfg.image_topic
        # the node's frame admission: duplicates and late frames dropped, a bag loop resets,
        # an image-size change restarts the window (it does not abort the sequence)
        stream = FrameStream(self.window_config)
        n_out = 0
        with open_sequence(self.cfg.data, self.cfg.gt, **kwargs) as reader:
            frames = reader.frames()
            try:
                while self.cfg.max_frames is None or self.decode.frames < self.cfg.max_frames:
                    t0 = time.perf_counter()
                    frame = next(frames, None)
                    self.decode.seconds += time.perf_counter() - t0
                    if frame is None:
                        break
                    self.decode.observe(frame.stamp_ns, frame.T_world_cam is not None)
                    pushed = stream.push(frame, frame.stamp_ns, shape=np.shape(frame.image))
                    if pushed.event is not StreamEvent.ACCEPTED:
                        self.warnings.add(pushed.event.value, f"frame at {frame.stamp_ns} ns: {pushed.event.value}")
                    if pushed.stamps_ns is None or pushed.images is None:
                        continue
                    window_frames = pushed.images
                    window_stamps = list(pushed.stamps_ns)
                    images = [f.image for f in window_frames]
                    try:
                        est = estimator.estimate(images, window_stamps, frame_ids=window_stamps)
                    except NonFiniteOutputError as err:
                        self.warnings.add("nonfinite_model_output", f"window at {window_stamps[0]} ns: {err}")
                        continue
                    if est.valid is not None and not est.valid.all():
                        self.warnings.add(
                            "frames_invalid", f"window at {window_stamps[0]} ns", count=int((~est.valid).sum())
                        )
                    gt = np.full((len(window_frames), 4, 4), np.nan)
                    for k, f in enumerate(window_frames):
                        if f.T_world_cam is not None:
                            gt[k] = f.T_world_cam
                    yield WindowMeasurement(
                        index=n_out,
                        stamps_ns=np.asarray(window_stamps, dtype=np.int64),
                        T_0_i=est.T_0_i,
                        cov=np.asarray(diag_to_cov(np.exp(est.log_var))),
                        # frames the backbone has no estimate for are not scored (as the node
                        # does not publish them); they are counted
                        valid=np.ones(len(window_frames), dtype=bool) if est.valid is None else est.valid,
                        T_world_cam_gt=gt,
                        log_var_raw=est.log_var,
                        sigma_trans_scales=scales,
                        parameterization=parameterization,
                    )
                    n_out += 1
            finally:
                frames.close()
                self.warnings.update(reader.warnings)
        _log.info(
            "decoded %d frames in %.2f s of reader time: %.0f frames/s",
            self.decode.frames,
            self.decode.seconds,
            self.decode.frames_per_s,
        )


@dataclass
class _Pending:
    stamps: list[int]
    poses: list[np.ndarray]
    covs: list[np.ndarray]
    valid: list[bool]


def _pose_from_msg(msg: object) -> np.ndarray:
    """``T_0_i`` of a relative-pose message; all-NaN (counted by the caller) if invalid."""
    pose = msg.pose.pose  # type: ignore[attr-defined]
    p, o = pose.position, pose.orientation
    return pose_from_message_fields((p.x, p.y, p.z), (o.x, o.y, o.z, o.w))


def read_pose_messages(path: Path, topic: str, warnings: WarningCounter) -> list[WindowMeasurement]:
    """Read the node's relative-pose messages from a bag and group them into windows.

    Each message is ``T_0_i`` of one frame i > 0 (``header.stamp`` = frame i's stamp) in the
    anchor camera frame named by ``header.frame_id`` (``"<camera_frame>@<sec>.<nanosec>"``),
    with a ROS covariance (``[x, y, z, rotX, rotY, rotZ]``, anchor frame). Counted in
    ``warnings`` and left out of the windows: ``missing_topic`` (the topic is not in the bag;
    no windows), ``bad_frame_id``, ``nan_pose``, ``duplicate_stamps`` (same anchor and stamp;
    the first is kept), and, kept but flagged invalid, ``nan_covariance`` and
    ``non_pd_covariance``. ``out_of_order_stamps`` counts messages whose stamp is not after
    the previous message of the same window (they are sorted).

    Args:
        path: ROS 1 ``.bag``, ROS 2 bag directory or ``.mcap``/``.db3`` file.
        topic: the relative-pose topic, e.g. ``/vggt_uncertainty_node/relative_pose``.
        warnings: counter for the problems above.

    Returns:
        Windows sorted by anchor stamp; translations and covariances in the node's scale.

    Raises:
        DataError: the bag cannot be read or the topic has another message type.
    """
    bag = Path(path)
    groups: dict[int, _Pending] = {}
    n_msgs = 0
    with BagFile(bag) as reader:
        msgtypes = reader.msgtypes(topic)
        if not msgtypes:
            warnings.add("missing_topic", f"{bag} has no topic {topic!r}; topics: {sorted(reader.topics)}")
            return []
        wrong = msgtypes - {POSE_MSGTYPE}
        if wrong:
            raise DataError(f"{bag}: topic {topic!r} carries {sorted(wrong)}, expected {POSE_MSGTYPE}")
        for _, msg in reader.read([topic]):
            n_msgs += 1
            _add_message(msg, groups, warnings)
    _log.info("read %d messages of %s in %d windows from %s", n_msgs, topic, len(groups), bag)
    return _windows_from_groups(groups)


def _add_message(msg: object, groups: dict[int, _Pending], warnings: WarningCounter) -> None:
    header = msg.header  # type: ignore[attr-defined]
    stamp = int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
    try:
        _, anchor = parse_anchor_frame_id(header.frame_id)
    except DataError as err:
        warnings.add("bad_frame_id", str(err))
        return
    T = _pose_from_msg(msg)
    if not np.all(np.isfinite(T)):
        warnings.add("nan_pose", f"message at {stamp} ns (anchor {anchor} ns) has a non-finite pose")
        return
    cov_ros = np.asarray(msg.pose.covariance, dtype=np.float64).reshape(6, 6)  # type: ignore[attr-defined]
    problem = check_covariance(cov_ros)
    cov = np.full((6, 6), np.nan)
    if problem is not None:
        warnings.add(problem, f"message at {stamp} ns (anchor {anchor} ns)")
    else:
        cov = ros_cov_to_residual_cov(T, cov_ros)
    group = groups.setdefault(anchor, _Pending([], [], [], []))
    if stamp in group.stamps:
        warnings.add("duplicate_stamps", f"second message for frame {stamp} ns of window {anchor} ns ignored")
        return
    if stamp <= anchor:
        warnings.add("out_of_order_stamps", f"message stamp {stamp} ns not after its anchor {anchor} ns")
        return
    if group.stamps and stamp < group.stamps[-1]:
        warnings.add("out_of_order_stamps", f"message stamp {stamp} ns before the previous one of window {anchor} ns")
    group.stamps.append(stamp)
    group.poses.append(T)
    group.covs.append(cov)
    group.valid.append(problem is None)


def _windows_from_groups(groups: dict[int, _Pending]) -> list[WindowMeasurement]:
    out = []
    for index, anchor in enumerate(sorted(groups)):
        g = groups[anchor]
        order = np.argsort(np.asarray(g.stamps, dtype=np.int64), kind="stable")
        stamps = np.concatenate([[anchor], np.asarray(g.stamps, dtype=np.int64)[order]]).astype(np.int64)
        T = np.concatenate([np.eye(4)[None], np.asarray(g.poses)[order]])
        cov = np.concatenate([np.zeros((1, 6, 6)), np.asarray(g.covs)[order]])
        valid = np.concatenate([[True], np.asarray(g.valid, dtype=bool)[order]])
        diag = np.diagonal(cov, axis1=-2, axis2=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_var = np.where(diag > 0, np.log(np.where(diag > 0, diag, 1.0)), np.nan)
        out.append(
            WindowMeasurement(
                index=index,
                stamps_ns=stamps,
                T_0_i=T,
                cov=cov,
                valid=valid,
                T_world_cam_gt=None,
                log_var_raw=log_var,
            )
        )
    return out


def load_ground_truth_frames(cfg: EvalConfig, warnings: WarningCounter) -> tuple[np.ndarray, np.ndarray, DecodeStats]:
    """Ground truth of a sequence read through ``data.open_sequence`` (frames' ``T_world_cam``).

    Used by ``poses-topic`` without ``--gt``: the data's own ground truth (``/tf`` of a bag or a
    TUM folder's ``groundtruth.txt``) at its image stamps. A bag without the image topic is
    counted as ``missing_topic``.

    Returns:
        ``(stamps_ns[N], T_world_cam[N, 4, 4], decode statistics)`` of the frames that have
        ground truth (metres).

    Raises:
        EvaluationError: no ground truth could be read.
    """
    kwargs: dict[str, object] = {"max_dt_s": cfg.max_dt_s}
    if cfg.image_topic:
        kwargs["image_topic"] = cfg.image_topic
    stamps: list[int] = []
    poses: list[np.ndarray] = []
    decode = DecodeStats()
    try:
        with open_sequence(cfg.data, None, **kwargs) as reader:
            frames = reader.frames()
            try:
                while True:
                    t0 = time.perf_counter()
                    frame = next(frames, None)
                    decode.seconds += time.perf_counter() - t0
                    if frame is None:
                        break
                    decode.observe(frame.stamp_ns, frame.T_world_cam is not None)
                    if frame.T_world_cam is not None:
                        stamps.append(frame.stamp_ns)
                        poses.append(frame.T_world_cam)
            finally:
                frames.close()
                warnings.update(reader.warnings)
    except TopicNotFoundError as err:
        warnings.add("missing_topic", str(err))
    if not stamps:
        raise EvaluationError(f"no ground truth in {cfg.data} (give a TUM groundtruth.txt with --gt)")
    return np.asarray(stamps, dtype=np.int64), np.asarray(poses), decode
