"""``vggt_uncertainty_node``: images in, calibrated ``PoseWithCovarianceStamped`` out.

Subscribes:
    ``image`` (``sensor_msgs/Image``; QoS from ``image_qos``), and ``odometry_topic``
    (``nav_msgs/Odometry``) when ``scale_source`` is ``odometry``, and ``camera_info``
    (``sensor_msgs/CameraInfo``, same QoS as the image) when ``use_camera_info`` is set: VGGT's
    focal lengths are compared with its ``K`` on ``/diagnostics``
    (:class:`~vggt_uncertainty_ros.online.intrinsics_check.FocalLengthMonitor`).
Publishes (reliable, depth 10):
    ``~/pose`` (``PoseWithCovarianceStamped``): ``base_frame`` in ``odom_frame``, covariance
    6x6 in ROS order ``[x, y, z, rotX, rotY, rotZ]`` in ``odom_frame``;
    ``~/relative_pose``: one per frame i > 0 of each window, pose of camera i in the anchor
    camera (window frame 0), ``header.stamp`` = frame i's stamp, ``header.frame_id`` =
    ``"<camera_frame>@<sec>.<nanosec>"`` of the anchor (:mod:`vggt_uncertainty_ros.online.measurements`);
    ``/diagnostics``; optionally ``~/odometry`` (``nav_msgs/Odometry``) and ``/tf``.

Callbacks run on a single-threaded executor and only decode, window and queue; the model
runs on :class:`~vggt_uncertainty_ros.online.worker.InferenceWorker`'s thread. SIGINT and SIGTERM
stop the executor, then the worker, and the process exits 0.
"""

from __future__ import annotations

import logging
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
from sensor_msgs.msg import CameraInfo, Image

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
from vggt_uncertainty_ros.online.worker import InferenceWorker, classify_error
from vggt_uncertainty_ros.ros import diagnostics as diag
from vggt_uncertainty_ros.ros.conversions import (
    camera_info_intrinsics,
    image_msg_to_rgb,
    odometry_msg,
    odometry_to_matrix,
    pose_with_covariance_msg,
    stamp_to_ns,
    transform_msg,
)
from vggt_uncertainty_ros.ros.params import NodeParams, declare_parameters, make_on_set_callback

try:  # tf2_msgs is not among the pip wheels; TF output is optional
    from tf2_msgs.msg import TFMessage
except ImportError:  # pragma: no cover - depends on the installation
    TFMessage = None

_log = logging.getLogger(__name__)

NODE_NAME = "vggt_uncertainty_node"

#: QoS of every output: reliable, keep last 10 (robot_localization's default subscription).
OUTPUT_QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=10)
RELIABLE_IMAGE_QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=10)


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


class VggtUncertaintyNode(Node):
    """The ROS 2 node (see the module docstring for topics; ``config/params.yaml`` for parameters).

    Args:
        estimator: an already built estimator (tests); by default built from the parameters.

    Raises:
        ConfigError: invalid parameters or an incompatible head.
        CheckpointError: an unreadable head checkpoint or one trained on another backbone.
    """

    def __init__(self, estimator: WindowEstimator | None = None, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self.params = declare_parameters(self)
        self.add_on_set_parameters_callback(make_on_set_callback(lambda: True))
        p = self.params
        self._estimator = estimator if estimator is not None else build_estimator(p)
        self._tracker = TrajectoryTracker(
            p.T_base_cam,
            p.scale_source,
            self._estimator.scale_convention,
            max_known=max(64, 4 * p.window_size),  # the next window's anchor must still be known
            gap_model=GapMotionModel(p.gap_sigma_trans_per_s, p.gap_sigma_rot_rad_per_s),
        )
        self._stream = FrameStream(p.window_config, backwards_to_reset=p.stamp_backwards_to_reset)
        self._chainer = WindowChainer(p.window_config.overlap)
        self._last_breaks = 0
        self._counters = diag.InputCounters()
        self._last_problems = 0
        self._focal = FocalLengthMonitor(p.camera_info_focal_tolerance) if p.use_camera_info else None

        self._pose_pub = self.create_publisher(PoseWithCovarianceStamped, "~/pose", OUTPUT_QOS)
        self._relative_pub = self.create_publisher(PoseWithCovarianceStamped, "~/relative_pose", OUTPUT_QOS)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", OUTPUT_QOS)
        self._odom_pub = self.create_publisher(Odometry, "~/odometry", OUTPUT_QOS) if p.publish_odometry else None
        self._tf_pub = None
        if p.publish_tf:
            if TFMessage is None:
                self.get_logger().warning("publish_tf is set but tf2_msgs is not installed: no TF output")
            else:
                self._tf_pub = self.create_publisher(TFMessage, "/tf", OUTPUT_QOS)

        image_qos = qos_profile_sensor_data if p.image_qos == "sensor_data" else RELIABLE_IMAGE_QOS
        self._image_sub = self.create_subscription(Image, "image", self._on_image, image_qos)
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
            f"scale {p.scale_source}, image QoS {p.image_qos}"
        )

    # -- executor callbacks (short, never wait for the model) ------------------------------

    def _on_image(self, msg: Image) -> None:
        self._counters.receive()
        now_ns = self.get_clock().now().nanoseconds
        stamp_problem = check_stamp(
            msg.header.stamp.sec, msg.header.stamp.nanosec, now_ns, self.params.max_future_stamp_s
        )
        if stamp_problem is not None:
            self._counters.reject(diag.REJECT_STAMP)
            self.get_logger().warning(
                f"image rejected ({diag.REJECT_STAMP}): {stamp_problem}", throttle_duration_sec=5.0
            )
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
            self._counters.reject(reason)
            self.get_logger().warning(f"image rejected ({reason}): {detail}", throttle_duration_sec=5.0)
            return
        if self._focal is not None:
            self._focal.observe_image_size(msg.width, msg.height)
        # keep only what preprocessing will use: windows waiting for the model then hold
        # 518-pixel-wide frames, never full-resolution ones (same model input, exactly);
        # VGGT's crop/pad only (other backbones get the frame as it came)
        mode = self.params.backbone.resolved_preprocess_mode
        if mode in ("crop", "pad"):
            image = shrink_for_model(image, mode)
        result = self._stream.push(image, stamp_to_ns(msg.header.stamp), now_ns)
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
            source_hw = (int(msg.height), int(msg.width))
            self._worker.submit(WindowJob(result.stamps_ns, result.images, self._tracker.epoch, source_hw))

    @staticmethod
    def _check_image(msg: Image, max_pixels: int) -> str | None:
        if msg.encoding not in SUPPORTED_ENCODINGS or msg.encoding == "32FC1":
            return diag.REJECT_ENCODING
        if msg.height * msg.width > max_pixels:
            return diag.REJECT_TOO_LARGE
        if msg.height and msg.width and max(msg.height, msg.width) > diag.MAX_ASPECT_RATIO * min(msg.height, msg.width):
            return diag.REJECT_ASPECT  # resizing it to 518 px wide would allocate without bound
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
        output = self._tracker.process(job.stamps_ns, estimate.T_0_i, estimate.log_var, job.epoch)
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
        for m in output.relative:
            frame_id = format_anchor_frame_id(p.camera_frame, m.anchor_stamp_ns)
            self._relative_pub.publish(pose_with_covariance_msg(m.T_0_i, m.cov_ros, frame_id, m.stamp_ns))
        for pose in output.poses:
            self._pose_pub.publish(
                pose_with_covariance_msg(pose.T_odom_base, pose.cov_ros, p.odom_frame, pose.stamp_ns)
            )
            if self._odom_pub is not None:
                self._odom_pub.publish(
                    odometry_msg(pose.T_odom_base, pose.cov_ros, p.odom_frame, p.base_frame, pose.stamp_ns)
                )
        if self._tf_pub is not None and output.poses:
            last = output.poses[-1]
            self._tf_pub.publish(
                TFMessage(transforms=[transform_msg(last.T_odom_base, p.odom_frame, p.base_frame, last.stamp_ns)])
            )

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
        problems = int(values["images_rejected"]) + int(values["windows_failed"]) + int(values["windows_dropped"])
        warnings = []
        if problems > self._last_problems:
            warnings.append("inputs rejected, windows dropped or failed since last report")
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

    def close(self) -> None:
        """Stop the worker and release the node's resources."""
        self._worker.stop()
        self.destroy_node()


def main(args: list[str] | None = None) -> int:
    """Entry point of ``vggt_uncertainty_node``; returns the exit status (0 on SIGINT/SIGTERM).

    Args:
        args: command line (``--ros-args ...``); ``sys.argv`` when None.
    """
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] [%(name)s]: %(message)s")
    pin_mmap_threshold()  # per-window temporaries go back to the OS: a flat resident set
    rclpy.init(args=args)
    try:
        node = VggtUncertaintyNode()
    except (VggtUncertaintyError, ValueError) as err:
        _log.error("vggt_uncertainty_node cannot start: %s", err)
        rclpy.try_shutdown()
        return 1
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    started = time.monotonic()
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        _log.info("shutting down after %.1f s", time.monotonic() - started)
        executor.shutdown(timeout_sec=1.0)
        node.close()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
