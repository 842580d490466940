"""The ``vggt_uncertainty_node`` node: images in, calibrated poses with covariance out.

Subscribes:
    ``image`` (``sensor_msgs/Image``) with ``image_transport: raw``, or ``image/compressed``
    (``sensor_msgs/CompressedImage``, JPEG/PNG; the name image_transport gives it, built from
    the resolved ``image`` name so a remap of ``image`` carries over) with ``compressed``;
    QoS from ``image_qos``. ``odometry_topic`` (``nav_msgs/Odometry``) when ``scale_source`` is
    ``odometry``, and ``camera_info`` (``sensor_msgs/CameraInfo``, same QoS as the image) when
    ``use_camera_info`` is set: VGGT's focal lengths are compared with its ``K`` on
    ``/diagnostics`` (:class:`~vggt_uncertainty_ros.online.intrinsics_check.FocalLengthMonitor`).
Publishes (reliable, depth 10; a reliable publisher also serves best-effort subscribers such
as robot_localization's, which use ``SensorDataQoS``):
    ``~/pose`` (``PoseWithCovarianceStamped``): ``base_frame`` in ``odom_frame``, covariance
    6x6 in ROS order ``[x, y, z, rotX, rotY, rotZ]`` in ``odom_frame``; the origin pose carries
    the ``origin_sigma_*`` floor, so every covariance is positive definite;
    ``~/odometry`` (``nav_msgs/Odometry``, ``publish_odometry``, default on): the same pose and
    the body twist of ``base_frame`` in ``base_frame`` from the previous keyframe
    (:mod:`vggt_uncertainty_ros.online.velocity`), both with covariance; none for the origin
    frame, which has no previous keyframe;
    ``~/relative_pose`` (opt-in, ``publish_relative_pose``): one per frame i > 0 of each
    window, pose of camera i in the anchor camera (window frame 0), ``header.stamp`` = frame
    i's stamp, ``header.frame_id`` = ``"<camera_frame>@<sec>.<nanosec>"`` of the anchor (no TF
    frame: :mod:`vggt_uncertainty_ros.online.measurements`);
    ``/tf`` (opt-in, ``publish_tf``): ``odom_frame`` -> ``tf_child_frame`` (default
    ``base_frame``) at the newest pose; ``/diagnostics``.

Callbacks run on a single-threaded executor and only decode, window and queue; the model
runs on :class:`~vggt_uncertainty_ros.online.worker.InferenceWorker`'s thread. The process entry
point is :mod:`vggt_uncertainty_ros.ros.node` (signal handling first, then this module): SIGINT
and SIGTERM stop the executor, then the worker, and the process exits 0.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

import numpy as np
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseWithCovarianceStamped
from nav_msgs.msg import Odometry
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions
from rclpy.subscription import MessageInfo
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from vggt_uncertainty_ros.data.image_codec import SUPPORTED_ENCODINGS
from vggt_uncertainty_ros.errors import ConfigError, ImageEncodingError, VggtUncertaintyError
from vggt_uncertainty_ros.model.preprocess import shrink_for_model
from vggt_uncertainty_ros.online import estimator as online_estimator
from vggt_uncertainty_ros.online.allocator import pin_mmap_threshold
from vggt_uncertainty_ros.online.estimator import WindowEstimator
from vggt_uncertainty_ros.online.intrinsics_check import CameraInfoError, FocalLengthMonitor
from vggt_uncertainty_ros.online.measurements import format_anchor_frame_id
from vggt_uncertainty_ros.online.tracking import (
    FrameStream,
    GapMotionModel,
    StreamEvent,
    TrajectoryTracker,
    WindowChainer,
    WindowJob,
    WindowOutput,
    check_stamp,
)
from vggt_uncertainty_ros.online.velocity import window_twists
from vggt_uncertainty_ros.online.worker import InferenceWorker, classify_error
from vggt_uncertainty_ros.ros import diagnostics as diag
from vggt_uncertainty_ros.ros.conversions import (
    camera_info_intrinsics,
    compressed_image_to_rgb,
    image_msg_to_rgb,
    odometry_msg,
    odometry_to_matrix,
    pose_with_covariance_msg,
    publisher_sequence,
    stamp_to_ns,
    transform_msg,
)
from vggt_uncertainty_ros.ros.params import NodeParams, declare_parameters, refuse_changes
from vggt_uncertainty_ros.ros.shutdown import ShutdownGuard

try:  # tf2_msgs is not among the pip wheels; TF output is optional
    from tf2_msgs.msg import TFMessage
except ImportError:  # pragma: no cover - depends on the installation
    TFMessage = None

_log = logging.getLogger(__name__)

NODE_NAME = "vggt_uncertainty_node"
#: longest the main loop waits in the executor before it checks for a shutdown request, s
SPIN_SLICE_S = 0.1

#: QoS of every output: reliable, keep last 10. robot_localization's ekf subscribes with
#: SensorDataQoS (best effort), which a reliable publisher serves as well.
OUTPUT_QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=10)


def reliable_image_qos(depth: int) -> QoSProfile:
    """QoS of the image (and camera_info) subscription with ``image_qos: reliable``: keep last ``depth``."""
    return QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=depth)


def build_estimator(params: NodeParams) -> WindowEstimator:
    """Load the backbone and the head (or constant σ) the parameters name, with start-up checks.

    CUDA falls back to the CPU with a warning. The head must have been trained on the
    configured backbone, and a ``metric`` head needs a metric scale source.

    Raises:
        CheckpointError: the head checkpoint is unreadable or was trained on another backbone.
        ConfigError: a ``metric`` head with ``scale_source: none``, or a bad device.
    """
    from vggt_uncertainty_ros.head import read_head_metadata

    if params.head_checkpoint:
        meta = read_head_metadata(params.head_checkpoint)
        if meta.scale_convention == "metric" and params.scale_source == "none":
            raise ConfigError(
                f"head checkpoint {params.head_checkpoint} has scale_convention 'metric' (σ_trans in metres) "
                "but scale_source is 'none' (VGGT units): set scale_source 'odometry' or use a 'vggt' head"
            )
    return online_estimator.build_estimator(
        params.backbone,
        params.head_checkpoint or None,
        constant_sigma=(params.constant_sigma_rot_rad, params.constant_sigma_trans),
        strict_backbone=True,
        fallback_to_cpu=True,
        token_cache_frames=2 * params.window_size,
    )


def _check_size(height: int, width: int, max_pixels: int) -> str | None:
    """Rejection reason for an image too large or too elongated to preprocess, else None."""
    if height * width > max_pixels:
        return diag.REJECT_TOO_LARGE
    if height and width and max(height, width) > diag.MAX_ASPECT_RATIO * min(height, width):
        return diag.REJECT_ASPECT  # resizing it to 518 px wide would allocate without bound
    return None


class VggtUncertaintyNode(Node):
    """The ROS 2 node (see the module docstring for topics; ``config/params.yaml`` for parameters).

    Args:
        estimator: an already built estimator (tests); by default built from the parameters.

    Raises:
        ConfigError: invalid parameters or an incompatible head.
        CheckpointError: an unreadable head checkpoint or one trained on another backbone.
    """

    def __init__(self, estimator: WindowEstimator | None = None, **kwargs: Any) -> None:
        # every given parameter becomes visible, so unknown ones can be reported (declare_parameters)
        kwargs.setdefault("automatically_declare_parameters_from_overrides", True)
        super().__init__(NODE_NAME, **kwargs)
        self.params = declare_parameters(self)
        self.add_on_set_parameters_callback(refuse_changes)
        p = self.params
        self._estimator = estimator if estimator is not None else build_estimator(p)
        factors = getattr(self._estimator, "recalibration", {})
        if factors:
            _log.info(
                "head recalibration applied: variance x%.3g rotation, x%.3g translation",
                factors["rot"],
                factors["trans"],
            )
        self._tracker = TrajectoryTracker(
            p.T_base_cam,
            p.scale_source,
            self._estimator.scale_convention,
            max_known=max(64, 4 * p.window_size),  # the next window's anchor must still be known
            origin_cov=p.origin_cov,
            gap_model=GapMotionModel(p.gap_sigma_trans_per_s, p.gap_sigma_rot_rad_per_s),
        )
        self._stream = FrameStream(p.window_config, backwards_to_reset=p.stamp_backwards_to_reset)
        self._chainer = WindowChainer(p.window_config.overlap)
        self._last_breaks = 0
        self._counters = diag.InputCounters()
        self._last_problems = 0
        self._focal = FocalLengthMonitor(p.camera_info_focal_tolerance) if p.use_camera_info else None
        self._camera_matrix_logged = False

        self._pose_pub = self.create_publisher(PoseWithCovarianceStamped, "~/pose", OUTPUT_QOS)
        self._relative_pub = None
        if p.publish_relative_pose:
            self._relative_pub = self.create_publisher(PoseWithCovarianceStamped, "~/relative_pose", OUTPUT_QOS)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", OUTPUT_QOS)
        self._odom_pub = self.create_publisher(Odometry, "~/odometry", OUTPUT_QOS) if p.publish_odometry else None
        self._tf_pub = None
        if p.publish_tf:
            if TFMessage is None:
                self.get_logger().warning("publish_tf is set but tf2_msgs is not installed: no TF output")
            else:
                self._tf_pub = self.create_publisher(TFMessage, "/tf", OUTPUT_QOS)

        image_qos = qos_profile_sensor_data if p.image_qos == "sensor_data" else reliable_image_qos(p.image_queue_depth)
        if p.image_transport == "compressed":
            # image_transport's naming: the resolved base topic (remaps applied) + "/compressed"
            topic = self.resolve_topic_name("image") + "/compressed"
            self._image_sub = self.create_subscription(CompressedImage, topic, self._on_compressed, image_qos)
        else:
            topic = "image"
            self._image_sub = self.create_subscription(Image, topic, self._on_image, image_qos)
        self._odom_sub = None
        if p.scale_source == "odometry":
            self._odom_sub = self.create_subscription(Odometry, p.odometry_topic, self._on_odometry, 50)
        self._camera_info_sub = None
        if self._focal is not None:
            self._camera_info_sub = self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, image_qos)

        self._worker: InferenceWorker[WindowJob, WindowOutput | None] = InferenceWorker(
            self._infer, self._publish, maxsize=p.queue_depth, on_error=self._on_model_error
        )
        self._worker.start()
        self._diag_timer = self.create_timer(p.diagnostics_period_s, self._publish_diagnostics)
        self.get_logger().info(
            f"ready: window {p.window_size}/stride {p.window_stride}, "
            f"backbone {p.backbone.name} {p.backbone.weights!r}, "
            f"head {p.head_checkpoint or '<constant sigma>'!r}, device {self._estimator.device}, "
            f"scale {p.scale_source}, images {p.image_transport} on {self._image_sub.topic_name} ({p.image_qos})"
        )

    # -- executor callbacks (short, never wait for the model) ------------------------------

    def _on_image(self, msg: Image, info: MessageInfo) -> None:
        self._counters.receive()
        self._count_transport_loss(info)
        now_ns = self._stamp_ok(msg.header.stamp)
        if now_ns is None:
            return
        reason = self._check_image(msg, self.params.max_image_pixels)
        if reason is None:
            try:
                image = image_msg_to_rgb(msg)
            except ImageEncodingError as err:
                reason, detail = diag.REJECT_DECODE, str(err)
        else:
            detail = f"encoding {msg.encoding!r}, {msg.height}x{msg.width}, step {msg.step}, {len(msg.data)} bytes"
        if reason is not None:
            self._reject(reason, detail)
            return
        self._admit(image, stamp_to_ns(msg.header.stamp), now_ns)

    def _on_compressed(self, msg: CompressedImage, info: MessageInfo) -> None:
        self._counters.receive()
        self._count_transport_loss(info)
        now_ns = self._stamp_ok(msg.header.stamp)
        if now_ns is None:
            return
        if not msg.data:
            self._reject(diag.REJECT_SIZE, f"empty CompressedImage (format {msg.format!r})")
            return
        try:
            image = compressed_image_to_rgb(msg)
        except ImageEncodingError as err:
            depth = "depth" in msg.format.lower()
            self._reject(diag.REJECT_ENCODING if depth else diag.REJECT_DECODE, str(err))
            return
        reason = _check_size(image.shape[0], image.shape[1], self.params.max_image_pixels)
        if reason is not None:
            self._reject(reason, f"compressed image decodes to {image.shape[0]}x{image.shape[1]}")
            return
        self._admit(image, stamp_to_ns(msg.header.stamp), now_ns)

    def _count_transport_loss(self, info: MessageInfo) -> None:
        """Count images lost between the publisher and this callback (sequence-number gaps).

        With a KEEP_LAST subscription DDS evicts the oldest waiting image when the executor
        falls more than the history depth behind; the node never sees those, only the gap in
        the publisher's sequence numbers the next image reveals.
        """
        gap = self._counters.observe_sequence(*publisher_sequence(info))
        if gap > 0:
            self.get_logger().warning(
                f"{gap} image(s) lost in transport before the node took them ({self._counters.transport.lost} in all): "
                "the callbacks fell more than the subscription's depth behind the stream (or, best effort, "
                "samples were dropped on the way); see images_lost on /diagnostics",
                throttle_duration_sec=5.0,
            )

    def _stamp_ok(self, stamp: Any) -> int | None:
        """The node clock's now (ns) if the header stamp is usable; else reject, count and None."""
        now_ns = self.get_clock().now().nanoseconds
        problem = check_stamp(stamp.sec, stamp.nanosec, now_ns, self.params.max_future_stamp_s)
        if problem is not None:
            self._reject(diag.REJECT_STAMP, problem)
            return None
        return now_ns

    def _reject(self, reason: str, detail: str) -> None:
        self._counters.reject(reason)
        self.get_logger().warning(f"image rejected ({reason}): {detail}", throttle_duration_sec=5.0)

    def _admit(self, image: np.ndarray, stamp_ns: int, now_ns: int) -> None:
        """Window one decoded ``[H,W,3]`` uint8 RGB image (raw or compressed input alike)."""
        source_hw = (int(image.shape[0]), int(image.shape[1]))
        if self._focal is not None:
            self._focal.observe_image_size(source_hw[1], source_hw[0])
        # keep only what preprocessing will use: windows waiting for the model then hold
        # 518-pixel-wide frames, never full-resolution ones (same model input, exactly)
        # VGGT's crop/pad only (other backbones get the frame as it came)
        mode = self.params.backbone.resolved_preprocess_mode
        if mode in ("crop", "pad"):
            image = shrink_for_model(image, mode)
        result = self._stream.push(image, stamp_ns, now_ns)
        if result.event is StreamEvent.DUPLICATE_STAMP:
            self._counters.drop(diag.DROP_DUPLICATE)
            return
        if result.event is StreamEvent.OUT_OF_ORDER:
            self._counters.drop(diag.DROP_OUT_OF_ORDER)
            return
        if result.event.resets:
            self._tracker.reset()
            self._chainer.reset()
            self.get_logger().warning(f"{result.event.value}: state reset, new trajectory")
        if result.event is not StreamEvent.ACCEPTED:
            self._counters.event(result.event.value)
        if result.stamps_ns is not None and result.images is not None:
            self._worker.submit(WindowJob(result.stamps_ns, result.images, self._tracker.epoch, source_hw))

    @staticmethod
    def _check_image(msg: Image, max_pixels: int) -> str | None:
        if msg.encoding not in SUPPORTED_ENCODINGS or msg.encoding == "32FC1":
            return diag.REJECT_ENCODING
        reason = _check_size(msg.height, msg.width, max_pixels)
        if reason is not None:
            return reason
        if len(msg.data) != msg.height * msg.step or msg.height == 0 or msg.width == 0:
            return diag.REJECT_SIZE
        return None

    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            info = camera_info_intrinsics(msg)
        except CameraInfoError as err:
            self.get_logger().warning(f"camera_info not used: {err}", throttle_duration_sec=10.0)
            self._focal.add_camera_info(None)
            return
        if not self._focal.add_camera_info(info):
            self.get_logger().warning(
                f"camera_info is for {info.width}x{info.height} images, not the images received: not used",
                throttle_duration_sec=10.0,
            )
            return
        # a backbone that takes a calibration (geometric) uses it; frames reach it unshrunk
        if self._estimator.use_camera_matrix(info.K) and not self._camera_matrix_logged:
            self._camera_matrix_logged = True
            self.get_logger().info(f"backbone uses camera_info K (fx {info.K[0, 0]:.1f}, fy {info.K[1, 1]:.1f})")

    def _on_odometry(self, msg: Odometry) -> None:
        self._tracker.add_odometry(stamp_to_ns(msg.header.stamp), odometry_to_matrix(msg))

    # -- worker thread ----------------------------------------------------------------------

    def _infer(self, job: WindowJob) -> WindowOutput | None:
        # windows between this one and the last processed one may have been dropped: re-anchor
        # it on frames the last one used so ~/pose stays chained (WindowChainer)
        rebased = self._chainer.rebase(job)
        if rebased is None:
            return None
        job = rebased
        # stamps identify frames: windows that share a frame share its DINOv2 tokens
        estimate = self._estimator.estimate(list(job.images), job.stamps_ns, frame_ids=list(job.stamps_ns))
        output = self._tracker.process(job.stamps_ns, estimate.T_0_i, estimate.log_var, job.epoch, valid=estimate.valid)
        if output is not None:
            self._chainer.done(job)
        if self._focal is not None:  # a diagnostic only: it must never cost the window its poses
            height, width = job.images[0].shape[:2]
            intrinsics = estimate.intrinsics
            if job.source_hw is not None and job.source_hw != (height, width):  # shrunk on arrival
                intrinsics = np.array(intrinsics, dtype=np.float64)
                intrinsics[..., 0, :] *= job.source_hw[1] / width
                intrinsics[..., 1, :] *= job.source_hw[0] / height
                height, width = job.source_hw
            try:
                self._focal.compare(intrinsics, width, height)
            except Exception as err:  # noqa: BLE001 - reported, not fatal
                self.get_logger().warning(f"focal-length check failed: {err}", throttle_duration_sec=10.0)
        return output

    def _on_model_error(self, job: WindowJob, exc: BaseException) -> None:
        if classify_error(exc) == "cuda_oom" and torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _publish(self, job: WindowJob, output: WindowOutput | None) -> None:
        if output is None:  # stale: a reset happened while the window was in flight
            return
        p = self.params
        if self._relative_pub is not None:
            for m in output.relative:
                frame_id = format_anchor_frame_id(p.camera_frame, m.anchor_stamp_ns)
                self._relative_pub.publish(pose_with_covariance_msg(m.T_0_i, m.cov_ros, frame_id, m.stamp_ns))
        twists = self._window_twists(output) if self._odom_pub is not None else {}
        for pose in output.poses:
            self._pose_pub.publish(
                pose_with_covariance_msg(pose.T_odom_base, pose.cov_ros, p.odom_frame, pose.stamp_ns)
            )
            twist = twists.get(pose.stamp_ns)
            if self._odom_pub is not None and twist is not None:
                self._odom_pub.publish(
                    odometry_msg(
                        pose.T_odom_base,
                        pose.cov_ros,
                        p.odom_frame,
                        p.base_frame,
                        pose.stamp_ns,
                        twist=twist.twist,
                        twist_cov=twist.cov,
                    )
                )
        if self._tf_pub is not None and output.poses:
            last = output.poses[-1]
            self._tf_pub.publish(
                TFMessage(transforms=[transform_msg(last.T_odom_base, p.odom_frame, p.tf_child, last.stamp_ns)])
            )

    def _window_twists(self, output: WindowOutput) -> dict:
        """Body twist at each of the window's frames i >= 1 (from frame i-1), keyed by stamp (ns)."""
        if not output.relative:
            return {}
        stamps = [output.relative[0].anchor_stamp_ns] + [m.stamp_ns for m in output.relative]
        poses = [np.eye(4)] + [m.T_0_i for m in output.relative]
        covs = [np.zeros((6, 6))] + [m.cov_ros for m in output.relative]
        return window_twists(stamps, poses, covs, self.params.T_base_cam)

    # -- diagnostics ------------------------------------------------------------------------

    def diagnostic_values(self) -> dict[str, float | int | str]:
        """Flat counters and figures reported on ``/diagnostics``."""
        w = self._worker.stats()
        t = self._tracker.counters
        values: dict[str, float | int | str] = dict(self._counters.snapshot())
        values.update(
            {
                "inference_latency_s": w.last_latency_s,
                "inference_latency_mean_s": w.mean_latency_s,
                "windows_per_s": w.jobs_per_s,
                "windows_submitted": w.submitted,
                "windows_processed": w.processed,
                "windows_dropped": w.dropped,
                "windows_failed": w.failed,
                "windows_stale": t.stale_windows,
                "queue_depth": w.queue_depth,
                "queue_capacity": self.params.queue_depth,
                "trajectory_breaks": t.trajectory_breaks,
                "trajectory_gaps": t.trajectory_breaks,
                "windows_rebased": self._chainer.windows_rebased,
                "frames_skipped": self._chainer.frames_skipped,
                "scale_fallbacks": t.scale_fallbacks,
                "frames_invalid": t.frames_invalid,
                "frames_translation_unobserved": self._estimator.frames_translation_unobserved,
                "windows_without_scale": t.windows_without_scale,
                "odometry_rejected": t.odometry_rejected,
                "resets": t.resets,
                "device": str(self._estimator.device),
            }
        )
        values.update({f"windows_failed/{k}": v for k, v in w.failures.items()})
        if self._focal is not None:
            values.update(self._focal.snapshot())
        return values

    def _publish_diagnostics(self) -> None:
        values = self.diagnostic_values()
        problems = sum(int(values[k]) for k in ("images_lost", "images_rejected", "windows_failed", "windows_dropped"))
        warnings = []
        if problems > self._last_problems:
            warnings.append("inputs lost or rejected, windows dropped or failed since last report")
        breaks = int(values["trajectory_gaps"])
        if breaks > self._last_breaks:
            warnings.append(
                f"{breaks - self._last_breaks} trajectory gap(s) bridged by the motion model since last report "
                "(covariance inflated)"
            )
        self._last_breaks = breaks
        if self._focal is not None and self._focal.deviates():
            warnings.append(
                f"VGGT focal length deviates from camera_info by more than {self._focal.tolerance:.0%} "
                f"(fx ratio {values['focal_ratio_fx']:.3g}, fy ratio {values['focal_ratio_fy']:.3g})"
            )
        level = DiagnosticStatus.WARN if warnings else DiagnosticStatus.OK
        message = "; ".join(warnings) or "ok"
        self._last_problems = problems
        stamp_ns = self.get_clock().now().nanoseconds
        self._diag_pub.publish(
            diag.build_diagnostics(values, stamp_ns, str(self._estimator.device), level=level, message=message)
        )

    def close(self) -> bool:
        """Stop the worker and release the node's resources.

        Returns:
            True if the worker thread ended (False: an inference is still running).
        """
        done = self._worker.stop()
        self.destroy_node()
        return done


def run(args: list[str] | None, guard: ShutdownGuard) -> int:
    """Start rclpy and the node, spin until a shutdown signal, then clean up in order.

    Called by :func:`vggt_uncertainty_ros.ros.node.main` once ``guard`` handles SIGINT/SIGTERM.
    The executor spins in short slices so a signal (which only sets ``guard.requested``) is
    noticed within :data:`SPIN_SLICE_S`.

    Returns:
        0 after a shutdown signal (or the context shutting down), 1 when the node cannot start.
    """
    pin_mmap_threshold()  # per-window temporaries go back to the OS: a flat resident set
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)  # keep guard's handlers
    try:
        node = VggtUncertaintyNode()
    except (VggtUncertaintyError, ValueError) as err:
        _log.error("vggt_uncertainty_node cannot start: %s", err)
        rclpy.try_shutdown()
        return 1
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    started = time.monotonic()
    guard.running()
    try:
        while not guard.requested and rclpy.ok():
            executor.spin_once(timeout_sec=SPIN_SLICE_S)
    except ExternalShutdownException:
        pass
    finally:
        guard.stopping()
        _log.info("shutting down after %.1f s", time.monotonic() - started)
        worker_done = node.close()
        executor.shutdown(timeout_sec=1.0)
        rclpy.try_shutdown()
        guard.cancel()
    if not worker_done:  # an inference still runs on its (daemon) thread: do not finalise under it
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0
