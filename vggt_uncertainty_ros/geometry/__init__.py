"""Geometry core: SO(3)/SE(3), VGGT pose encoding, residuals, covariance conversions.

numpy only (float64; torch versions the model needs live in :mod:`vggt_uncertainty_ros.model`).
Conventions:

* ``T_a_b`` maps points of frame ``b`` into frame ``a``; camera frames use OpenCV axes.
* Quaternions are XYZW, standardised to ``w ≥ 0`` when returned.
* Tangent vectors and residuals are ``[rot (3), trans (3)]`` with right perturbation
  ``T = T̄ @ Exp(r)`` (= GTSAM ``Pose3``); ROS covariances are ``[x, y, z, rotX, rotY, rotZ]``
  in the header frame (see :mod:`~vggt_uncertainty_ros.geometry.covariance`).
"""

from vggt_uncertainty_ros.geometry.covariance import (
    compose_with_covariance,
    cov_to_ros_msg_list,
    diag_to_cov,
    residual_cov_to_gtsam,
    residual_cov_to_ros,
    ros_cov_to_residual_cov,
    ros_msg_list_to_cov,
)
from vggt_uncertainty_ros.geometry.pose_encoding import (
    extri_intri_to_pose_encoding,
    pose_encoding_to_extri_intri,
)
from vggt_uncertainty_ros.geometry.residuals import (
    MIN_MOTION_M,
    MIN_RELATIVE_MOTION,
    SCALE_CLAMP,
    SCALE_REASONS,
    ScaleConvention,
    ScaleFit,
    fit_scale,
    pose_residual,
    relative_from_extrinsics,
    scale_covariance,
    scale_translation,
    window_motion,
    window_relative,
)
from vggt_uncertainty_ros.geometry.se3 import (
    invert_transform,
    make_transform,
    pose_from_message_fields,
    pose_from_tum,
    pose_to_tum,
    se3_exp,
    se3_log,
)
from vggt_uncertainty_ros.geometry.so3 import (
    hat,
    quat_log,
    quat_to_rotmat,
    rotmat_to_quat,
    so3_exp,
    so3_log,
    standardize_quat,
)

__all__ = [
    "MIN_MOTION_M",
    "MIN_RELATIVE_MOTION",
    "SCALE_CLAMP",
    "SCALE_REASONS",
    "ScaleConvention",
    "ScaleFit",
    "compose_with_covariance",
    "cov_to_ros_msg_list",
    "diag_to_cov",
    "extri_intri_to_pose_encoding",
    "fit_scale",
    "hat",
    "invert_transform",
    "make_transform",
    "pose_encoding_to_extri_intri",
    "pose_from_message_fields",
    "pose_from_tum",
    "pose_residual",
    "pose_to_tum",
    "quat_log",
    "quat_to_rotmat",
    "relative_from_extrinsics",
    "residual_cov_to_gtsam",
    "residual_cov_to_ros",
    "scale_covariance",
    "scale_translation",
    "ros_cov_to_residual_cov",
    "ros_msg_list_to_cov",
    "rotmat_to_quat",
    "se3_exp",
    "se3_log",
    "so3_exp",
    "so3_log",
    "standardize_quat",
    "window_motion",
    "window_relative",
]
