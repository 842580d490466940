"""Uncertainty head: the MLP, its losses and its checkpoints.

See docs/ARCHITECTURE.md for the residual convention: every 6-vector here is ordered
``[rot (3), trans (3)]`` and the head always returns ``log σ²`` of those components.
"""

from vggt_uncertainty_ros.head.checkpoint import (
    HeadMetadata,
    ScaleConvention,
    check_head_backbone,
    load_head,
    read_head_metadata,
    save_head,
)
from vggt_uncertainty_ros.head.head import (
    DEFAULT_INIT_SIGMA,
    LOG_VAR_BOUNDS,
    N_OUTPUTS,
    ROT,
    SQRT_INFO_EPS,
    SQRT_INFO_MAX,
    TRANS,
    InputFeature,
    Parameterization,
    UncertaintyHead,
    initial_log_var,
    log_var_to_sqrt_info,
    scale_translation_log_var,
    sqrt_info_to_log_var,
)
from vggt_uncertainty_ros.head.losses import (
    MOTION_WEIGHT_BOUNDS,
    LossConfig,
    LossOutput,
    beta_weights,
    gaussian_nll_log_var,
    gaussian_nll_sqrt_info,
    motion_weights,
    pose_uncertainty_loss,
    sqrt_info_prior,
    window_frame_mask,
)

__all__ = [
    "DEFAULT_INIT_SIGMA",
    "LOG_VAR_BOUNDS",
    "MOTION_WEIGHT_BOUNDS",
    "N_OUTPUTS",
    "ROT",
    "SQRT_INFO_EPS",
    "SQRT_INFO_MAX",
    "TRANS",
    "HeadMetadata",
    "check_head_backbone",
    "InputFeature",
    "LossConfig",
    "LossOutput",
    "Parameterization",
    "ScaleConvention",
    "UncertaintyHead",
    "beta_weights",
    "gaussian_nll_log_var",
    "gaussian_nll_sqrt_info",
    "initial_log_var",
    "load_head",
    "log_var_to_sqrt_info",
    "motion_weights",
    "pose_uncertainty_loss",
    "read_head_metadata",
    "save_head",
    "scale_translation_log_var",
    "sqrt_info_prior",
    "sqrt_info_to_log_var",
    "window_frame_mask",
]
