"""The node's parameters: declaration with descriptions, validation, and the on-set callback.

Every parameter is read once at start-up (documented in ``config/params.yaml``). The on-set
callback accepts a value only if it is valid; a change after start-up is refused with a
reason ("restart the node"), except ``use_sim_time`` which rclpy handles itself.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter

from vggt_uncertainty_ros.data.windows import WindowConfig
from vggt_uncertainty_ros.errors import ConfigError
from vggt_uncertainty_ros.geometry import make_transform, quat_to_rotmat
from vggt_uncertainty_ros.model.spec import BackboneSpec

_log = logging.getLogger(__name__)

SCALE_SOURCES = ("none", "odometry")
IMAGE_QOS = ("sensor_data", "reliable")
IMAGE_TRANSPORTS = ("raw", "compressed")


@dataclass(frozen=True)
class NodeParams:
    """Validated node parameters (see ``config/params.yaml`` for each one's meaning).

    ``camera_to_base`` is ``[x, y, z, qx, qy, qz, qw]``: the pose of ``camera_frame`` in
    ``base_frame`` (``T_base_camera``), metres and a unit XYZW quaternion.
    """

    window_size: int = 8
    window_stride: int = 4
    keyframe_every: int = 1
    keyframe_min_gap_s: float = 0.0
    backbone: BackboneSpec = field(default_factory=lambda: BackboneSpec(device="cuda"))
    head_checkpoint: str = ""
    constant_sigma_rot_rad: float = 0.05
    constant_sigma_trans: float = 0.1
    origin_sigma_rot_rad: float = 0.001
    origin_sigma_trans: float = 0.001
    camera_frame: str = "camera_optical"
    base_frame: str = "base_link"
    odom_frame: str = "vggt_odom"
    camera_to_base: tuple[float, ...] = (0.0, 0.0, 0.0, -0.5, 0.5, -0.5, 0.5)
    scale_source: str = "none"
    odometry_topic: str = "odom"
    use_camera_info: bool = False
    camera_info_focal_tolerance: float = 0.2
    image_transport: str = "raw"
    image_qos: str = "sensor_data"
    image_queue_depth: int = 10
    queue_depth: int = 2
    publish_odometry: bool = True
    publish_relative_pose: bool = False
    publish_tf: bool = False
    tf_child_frame: str = ""
    diagnostics_period_s: float = 1.0
    max_image_pixels: int = 3840 * 2160
    max_future_stamp_s: float = 10.0
    stamp_backwards_to_reset: int = 3
    gap_sigma_trans_per_s: float = 1.0
    gap_sigma_rot_rad_per_s: float = 0.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "camera_to_base", tuple(float(v) for v in self.camera_to_base))
        for name, value in ((f.name, getattr(self, f.name)) for f in fields(self)):
            if name != "backbone":
                check_value(name, value)
        self.window_config.require_chainable()  # the rule the evaluator shares

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> NodeParams:
        """Build from a params-file section (``backbone`` nested or as ``backbone.*`` keys).

        Raises:
            ConfigError: an unknown or invalid value.
        """
        values = dict(values)
        backbone = dict(values.pop("backbone", None) or {})
        backbone.update({k.removeprefix("backbone."): values.pop(k) for k in list(values) if k.startswith("backbone.")})
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(f"unknown parameter(s) {', '.join(unknown)}")
        return cls(backbone=BackboneSpec.from_mapping(backbone, defaults=cls().backbone), **values)

    @property
    def window_config(self) -> WindowConfig:
        """The shared windowing rule built from these parameters."""
        return WindowConfig(
            size=self.window_size,
            stride=self.window_stride,
            keyframe_every=self.keyframe_every,
            min_keyframe_gap_s=self.keyframe_min_gap_s,
        )

    @property
    def tf_child(self) -> str:
        """The child frame of the /tf output (``tf_child_frame``, or ``base_frame`` when empty)."""
        return self.tf_child_frame.strip() or self.base_frame

    @property
    def origin_cov(self) -> np.ndarray:
        """6x6 covariance of the base pose at the origin, ROS order ``[x, y, z, rotX, rotY, rotZ]``."""
        return np.diag([self.origin_sigma_trans**2] * 3 + [self.origin_sigma_rot_rad**2] * 3)

    @property
    def T_base_cam(self) -> np.ndarray:
        """4x4 pose of the camera (optical) frame in the base frame, metres."""
        xyz, quat = np.asarray(self.camera_to_base[:3]), np.asarray(self.camera_to_base[3:])
        return make_transform(quat_to_rotmat(quat / np.linalg.norm(quat)), xyz)


DESCRIPTIONS: dict[str, str] = {
    "window_size": "frames per VGGT window (the head was trained on 8), >= 2",
    "window_stride": "keyframes between consecutive windows' first frames, 1 <= stride < window_size",
    "keyframe_every": "use every k-th image as a keyframe, >= 1",
    "keyframe_min_gap_s": "minimum time between keyframes in seconds, >= 0",
    "backbone.name": "backbone family: vggt",
    "backbone.weights": "'tiny' (random test model), a local checkpoint path or a Hugging Face id",
    "backbone.device": "'cuda' (falls back to cpu with a warning), 'cuda:N', 'cpu' or 'auto'",
    "backbone.dtype": "autocast dtype: auto (bfloat16 on CUDA, float32 on CPU), float32, float16 or bfloat16",
    "backbone.preprocess_mode": "preprocessing: auto, crop or pad (vggt), balanced or max_size (vggt-omega)",
    "backbone.compile": "torch.compile the backbone's blocks on CUDA (1.7x faster after a first-window compile)",
    "backbone.token_cache": "reuse the patch tokens of frames shared by overlapping windows",
    "backbone.attention": "attention kernel: sdpa, or flash4 (flash-attn-4 on CUDA; falls back to sdpa)",
    "head_checkpoint": "uncertainty-head .safetensors; empty = constant sigmas",
    "constant_sigma_rot_rad": "rotation sigma (rad) used without a head, > 0",
    "constant_sigma_trans": "translation sigma (node scale units) used without a head, > 0",
    "origin_sigma_rot_rad": "rotation sigma (rad) of the base pose at the odom origin (a prior; keeps ~/pose SPD), > 0",
    "origin_sigma_trans": "translation sigma (node scale units) of the base pose at the odom origin, > 0",
    "camera_frame": "camera optical frame id (OpenCV axes)",
    "base_frame": "robot base frame id whose pose ~/pose reports",
    "odom_frame": "fixed frame of ~/pose (origin = base at the first image)",
    "camera_to_base": "pose of camera_frame in base_frame: [x, y, z, qx, qy, qz, qw], metres",
    "scale_source": "none (VGGT normalised units) or odometry (per-window fit against odometry)",
    "odometry_topic": "nav_msgs/Odometry topic used as the scale source",
    "use_camera_info": (
        "subscribe to camera_info: the geometric backbone uses its K; VGGT's focal lengths are compared with it"
    ),
    "camera_info_focal_tolerance": "largest accepted |f_vggt / f_camera_info - 1| before /diagnostics warns, > 0",
    "image_transport": "raw (sensor_msgs/Image on image) or compressed (CompressedImage on image/compressed)",
    "image_qos": "image subscription QoS: sensor_data (best effort) or reliable",
    "image_queue_depth": "history depth of the reliable image subscription (images DDS holds for the node), >= 1",
    "queue_depth": "windows waiting for inference; older ones are dropped beyond it, >= 1",
    "publish_odometry": "publish nav_msgs/Odometry (pose and body twist of base_frame) on ~/odometry",
    "publish_relative_pose": "publish the anchor-frame measurements on ~/relative_pose (pose-graph consumers)",
    "publish_tf": "broadcast odom_frame -> tf_child_frame on /tf (needs tf2_msgs; off: REP 105)",
    "tf_child_frame": "child frame of the /tf output; empty = base_frame",
    "diagnostics_period_s": "period of /diagnostics in seconds, > 0",
    "max_image_pixels": "largest accepted width x height; larger images are rejected (too_large) before decoding, >= 1",
    "max_future_stamp_s": "images stamped more than this many seconds ahead of the node clock are rejected, > 0",
    "stamp_backwards_to_reset": "consecutive images older than the last one that mean a loop and reset the state, >= 1",
    "gap_sigma_trans_per_s": "translation sigma growth per second across an unbridgeable gap (node units/s), > 0",
    "gap_sigma_rot_rad_per_s": "rotation sigma growth per second across an unbridgeable gap (rad/s), > 0",
}

_CHOICES: dict[str, tuple[str, ...]] = {
    "scale_source": SCALE_SOURCES,
    "image_qos": IMAGE_QOS,
    "image_transport": IMAGE_TRANSPORTS,
}
_MIN_INT = {
    "window_size": 2,
    "window_stride": 1,
    "keyframe_every": 1,
    "queue_depth": 1,
    "image_queue_depth": 1,
    "max_image_pixels": 1,
    "stamp_backwards_to_reset": 1,
}
_POSITIVE = (
    "max_future_stamp_s",
    "gap_sigma_trans_per_s",
    "gap_sigma_rot_rad_per_s",
    "constant_sigma_rot_rad",
    "constant_sigma_trans",
    "origin_sigma_rot_rad",
    "origin_sigma_trans",
    "diagnostics_period_s",
    "camera_info_focal_tolerance",
)
_NON_EMPTY = ("camera_frame", "base_frame", "odom_frame", "odometry_topic")


def check_value(name: str, value: Any) -> None:
    """Validate one parameter value on its own.

    Raises:
        ConfigError: naming the parameter and the bad value.
    """
    if name not in DESCRIPTIONS:
        raise ConfigError(f"unknown parameter {name!r}")
    if name.startswith("backbone."):
        BackboneSpec.from_mapping({name.removeprefix("backbone."): value}, defaults=NodeParams().backbone)
        return
    default = getattr(NodeParams, name, None) if name != "camera_to_base" else ()
    bad = f"parameter {name}={value!r}"
    if name in _MIN_INT:
        if isinstance(value, bool) or not isinstance(value, int) or value < _MIN_INT[name]:
            raise ConfigError(f"{bad}: expected an integer >= {_MIN_INT[name]}")
    elif name in _CHOICES:
        if value not in _CHOICES[name]:
            raise ConfigError(f"{bad}: expected one of {', '.join(_CHOICES[name])}")
    elif name == "camera_to_base":
        arr = np.asarray(value, dtype=np.float64)
        if arr.shape != (7,) or not np.isfinite(arr).all() or np.linalg.norm(arr[3:]) < 1e-6:
            raise ConfigError(f"{bad}: expected [x, y, z, qx, qy, qz, qw] with a non-zero quaternion")
    elif isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{bad}: expected true or false")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            raise ConfigError(f"{bad}: expected a finite number")
        if name in _POSITIVE and value <= 0:
            raise ConfigError(f"{bad}: expected > 0")
        if value < 0:
            raise ConfigError(f"{bad}: expected >= 0")
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{bad}: expected a string")
        if name in _NON_EMPTY and not value.strip():
            raise ConfigError(f"{bad}: must not be empty")


#: parameters rclpy itself declares or reads on every node (never reported as unknown)
RCLPY_PARAMETERS = ("use_sim_time", "start_type_description_service")
RCLPY_PREFIXES = ("qos_overrides.",)


def unknown_parameter_warnings(names: list[str] | set[str]) -> list[str]:
    """One message per name that is no node parameter, with the closest valid name if any.

    Names rclpy handles itself (``use_sim_time``, ``qos_overrides.*``, ...) are not reported.
    """
    known = sorted(DESCRIPTIONS)
    messages = []
    for name in sorted(names):
        if name in DESCRIPTIONS or name in RCLPY_PARAMETERS or name.startswith(RCLPY_PREFIXES):
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        messages.append(f"unknown parameter {name!r} ignored{hint}")
    return messages


def declare_parameters(node: Node) -> NodeParams:
    """Declare every node parameter (with its description) and return the validated values.

    ``node`` must be created with ``automatically_declare_parameters_from_overrides=True``:
    every parameter given for it (params file section, ``-p``) is then visible, so names that
    are no node parameter (a typo such as ``window_sise``) are logged as warnings with the
    closest valid name, and undeclared again.

    Raises:
        ConfigError: if a value (from the command line or a params file) is invalid.
    """
    given = set(node.list_parameters([], 0).names)  # depth 0: recursive
    for message in unknown_parameter_warnings(given):
        node.get_logger().warning(message)
    values: dict[str, Any] = {}
    for name, default in parameter_defaults().items():
        if isinstance(default, tuple):
            default = [float(v) for v in default]
        if name in given:  # declared from the overrides without a description: declare it properly
            node.undeclare_parameter(name)
        # dynamic typing: a YAML ``0`` for a float parameter is coerced here, not refused by rclpy
        descriptor = ParameterDescriptor(name=name, description=DESCRIPTIONS[name], dynamic_typing=True)
        values[name] = coerce(name, node.declare_parameter(name, default, descriptor).value)
    for name in given - set(values):
        if name not in RCLPY_PARAMETERS and not name.startswith(RCLPY_PREFIXES):
            node.undeclare_parameter(name)
    return NodeParams.from_mapping(values)


def parameter_defaults() -> dict[str, Any]:
    """Every ROS parameter name (``backbone.*`` flattened, as rclpy names them) and its default."""
    defaults = NodeParams()
    flat = {f.name: getattr(defaults, f.name) for f in fields(NodeParams) if f.name != "backbone"}
    flat.update({f"backbone.{k}": v for k, v in defaults.backbone.to_dict().items()})
    return flat


def coerce(name: str, value: Any) -> Any:
    """Integers given for float parameters become floats; other values are returned as they are."""
    default = getattr(NodeParams, name, None)
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def refuse_changes(params: list[Parameter]) -> SetParametersResult:
    """On-set callback of the running node: every parameter is read once at start-up.

    An invalid value is refused with the validation error; a valid one with "restart the node".
    ``use_sim_time`` (handled by rclpy) and parameters the node does not own pass.
    """
    for param in params:
        if param.name == "use_sim_time" or param.name not in DESCRIPTIONS:
            continue
        try:
            check_value(param.name, coerce(param.name, param.value))
        except ConfigError as err:
            return SetParametersResult(successful=False, reason=str(err))
        return SetParametersResult(
            successful=False,
            reason=f"parameter {param.name} is read at start-up; edit the params file and restart the node",
        )
    return SetParametersResult(successful=True)
