"""Our VGGT-Ω (facebookresearch/vggt-omega): model, preprocessing, pose decoding, checkpoints."""

from vggt_uncertainty_ros.model.omega.checkpoint import load_omega, load_omega_state_dict
from vggt_uncertainty_ros.model.omega.config import OMEGA_PRESETS, OmegaConfig, get_omega_config
from vggt_uncertainty_ros.model.omega.model import OmegaOutput, VGGTOmega
from vggt_uncertainty_ros.model.omega.pose import encoding_to_camera
from vggt_uncertainty_ros.model.omega.preprocess import (
    OMEGA_MODES,
    load_and_preprocess_images,
    load_and_preprocess_images_with_transforms,
)

__all__ = [
    "OMEGA_MODES",
    "OMEGA_PRESETS",
    "OmegaConfig",
    "OmegaOutput",
    "VGGTOmega",
    "encoding_to_camera",
    "get_omega_config",
    "load_and_preprocess_images",
    "load_and_preprocess_images_with_transforms",
    "load_omega",
    "load_omega_state_dict",
]
