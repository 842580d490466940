"""Our VGGT (aggregator + camera head with official key names), its preprocessing,
checkpoint loading and the DINOv2 token cache.

Public API:

* :class:`VGGT` -- ``VGGT()`` full size, ``VGGT(config="tiny")`` small; its forward returns
  a :class:`VGGTOutput` (attributes, or keys as ``out["pose_enc"]``);
* :class:`VGGTOmega` -- VGGT-Ω (``model.omega``), ``VGGTOmega(config="tiny")`` small;
* :func:`load_backbone` -- ``"tiny"``, a local ``model.safetensors``/``model.pt`` or a
  Hugging Face id such as ``"facebook/VGGT-1B"``;
* :func:`backbone_identity` -- stable weight fingerprint;
* :func:`preprocess_images` -- official crop/pad preprocessing, :func:`intrinsics_to_original`;
* :class:`TokenCache` -- per-frame DINOv2 token cache for sliding windows.
"""

from vggt_uncertainty_ros.model.checkpoint import load_backbone, load_vggt_state_dict
from vggt_uncertainty_ros.model.config import PRESETS, VGGTConfig, get_config
from vggt_uncertainty_ros.model.identity import backbone_identity
from vggt_uncertainty_ros.model.omega import VGGTOmega
from vggt_uncertainty_ros.model.preprocess import (
    ImageTransform,
    intrinsics_to_original,
    preprocess_images,
    preprocess_images_with_transforms,
    shrink_for_model,
)
from vggt_uncertainty_ros.model.token_cache import TokenCache
from vggt_uncertainty_ros.model.vggt import VGGT, VGGTOutput

__all__ = [
    "PRESETS",
    "VGGT",
    "ImageTransform",
    "TokenCache",
    "VGGTConfig",
    "VGGTOutput",
    "VGGTOmega",
    "backbone_identity",
    "get_config",
    "intrinsics_to_original",
    "load_backbone",
    "load_vggt_state_dict",
    "preprocess_images",
    "preprocess_images_with_transforms",
    "shrink_for_model",
]
