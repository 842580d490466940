"""One window through the frozen backbone and the uncertainty head.

:class:`WindowEstimator` is the shared inference path of the evaluator and the ROS node:
it preprocesses a window of RGB images exactly like VGGT, runs the backbone (bf16 autocast
on CUDA, through the backbone's ``amp_dtype``), turns the predicted extrinsics into
window-relative poses ``T_0_i`` and predicts per-frame log-variances with the head, or uses
a constant diagonal σ when there is no head.

Conventions (docs/ARCHITECTURE.md): ``T_0_i`` maps points of camera ``i`` into camera 0
(OpenCV axes), translation in VGGT's normalised units; ``log_var`` is log σ² of the right
perturbation residual in the order ``[rot (3) rad², trans (3) VGGT-units²]`` (for a head
whose scale convention is ``vggt``; a ``metric`` head gives metres²).
"""

from __future__ import annotations

import logging
import math
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from vggt_uncertainty_ros.errors import (
    CheckpointError,
    InvalidWindowError,
    NonFiniteOutputError,
)
from vggt_uncertainty_ros.geometry import relative_from_extrinsics
from vggt_uncertainty_ros.head import (
    HeadMetadata,
    InputFeature,
    UncertaintyHead,
    load_head,
)
from vggt_uncertainty_ros.head.output import head_output_log_var, recalibration_of
from vggt_uncertainty_ros.model import (
    TokenCache,
    backbone_identity,
    intrinsics_to_original,
    load_backbone,
    preprocess_images_with_transforms,
)
from vggt_uncertainty_ros.model.device import resolve_device, resolve_dtype
from vggt_uncertainty_ros.model.layers import select_attention
from vggt_uncertainty_ros.model.spec import BackboneSpec

if TYPE_CHECKING:
    from torch import nn

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WindowEstimate:
    """Result of :meth:`WindowEstimator.estimate` for one window of ``S`` frames.

    Attributes:
        T_0_i: [S, 4, 4] float64 pose of camera i in camera 0 (OpenCV axes), translation in
            VGGT units; ``T_0_i[0]`` is the identity.
        log_var: [S, 6] float64 log σ², order (rot rad², trans unit²), unit = VGGT units for a
            ``vggt`` head or the constant σ, metres for a ``metric`` head. Row 0 (the
            reference frame) is predicted like the others but carries no meaning.
        pose_enc: [S, 9] float64 VGGT pose encoding (T 3, quat XYZW 4, fov_h, fov_w rad).
        intrinsics: [S, 3, 3] float64 pinhole K in pixels of the *input* images.
        features: [S, D] float32 head input feature.
        stamps_ns: [S] int64 stamps passed to :meth:`~WindowEstimator.estimate`, or None.
    """

    T_0_i: np.ndarray
    log_var: np.ndarray
    pose_enc: np.ndarray
    intrinsics: np.ndarray
    features: np.ndarray
    stamps_ns: np.ndarray | None = None

    @property
    def sigma(self) -> np.ndarray:
        """[S, 6] standard deviations ``exp(½ log σ²)`` (rad, unit)."""
        return np.exp(0.5 * self.log_var)


def constant_log_var(sigma: float | Sequence[float]) -> np.ndarray:
    """log σ² [6] from σ = (rot rad, trans unit), a scalar or 6 values."""
    vals = [float(sigma)] if isinstance(sigma, (int, float)) else [float(s) for s in sigma]
    if len(vals) == 2:
        vals = [vals[0]] * 3 + [vals[1]] * 3
    elif len(vals) == 1:
        vals = vals * 6
    if len(vals) != 6 or not all(math.isfinite(v) and v > 0 for v in vals):
        raise ValueError(f"constant sigma must be positive (rot rad, trans unit) values, got {sigma!r}")
    return 2.0 * np.log(np.asarray(vals, dtype=np.float64))


class WindowEstimator:
    """Backbone + head (or constant σ) on one window of images.

    Args:
        backbone: a ``vggt_uncertainty_ros.model.VGGT`` (frozen; moved to ``device``, eval).
        head: the uncertainty head, or None to use ``constant_sigma``.
        device: torch device (see :func:`resolve_device`; the caller decides the fallback).
        dtype: autocast dtype of the backbone's aggregator (default bf16 on CUDA, float32 on
            CPU), set as the backbone's ``amp_dtype``; the head always runs in float32.
        preprocess_mode: ``"crop"`` or ``"pad"`` (VGGT preprocessing).
        constant_sigma: σ used when ``head`` is None: (rot rad, trans VGGT units).
        input_feature: backbone output the head reads; default from ``head_metadata`` or
            ``camera_features``.
        head_metadata: metadata of a loaded head (kept for consumers, e.g. scale convention).
        token_cache: optional ``model.TokenCache``; with ``frame_ids`` given to
            :meth:`estimate`, frames shared by overlapping windows skip DINOv2, and their
            preprocessing too.

    Raises:
        ValueError: neither a head nor a constant σ, or a head whose input size does not
            match the backbone's feature size.
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: UncertaintyHead | None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype | None = None,
        preprocess_mode: str = "crop",
        *,
        constant_sigma: float | Sequence[float] | None = None,
        input_feature: InputFeature | str | None = None,
        head_metadata: HeadMetadata | None = None,
        token_cache: Any | None = None,
    ) -> None:
        self.device = resolve_device(device)
        self.dtype = dtype or resolve_dtype("auto", self.device)
        if preprocess_mode not in ("crop", "pad"):
            raise NotImplementedError(f"unknown preprocess mode {preprocess_mode!r}; expected 'crop' or 'pad'")
        self.preprocess_mode = preprocess_mode
        self.token_cache = token_cache
        # with the token cache: frame id -> (preprocessed [3, H, W] image, ImageTransform) of
        # the last window's frames
        self._preprocessed: OrderedDict[tuple, tuple[torch.Tensor, Any]] = OrderedDict()
        self.backbone = backbone.to(self.device).eval()
        if hasattr(backbone, "amp_dtype"):  # a VGGT; test doubles may have no such setting
            backbone.amp_dtype = self._amp_dtype
        self.head = head.to(self.device).eval() if head is not None else None
        self.head_metadata = head_metadata
        if input_feature is None:
            input_feature = head_metadata.input_feature if head_metadata else InputFeature.CAMERA_FEATURES
        self.input_feature = InputFeature(input_feature).value
        self._constant_log_var: np.ndarray | None = None
        if head is None:
            if constant_sigma is None:
                raise ValueError("WindowEstimator needs a head or a constant_sigma (rot rad, trans unit)")
            self._constant_log_var = constant_log_var(constant_sigma)
        else:
            feature_dim = getattr(backbone, "feature_dim", None)
            if feature_dim is not None and int(feature_dim) != head.in_dim:
                raise ValueError(f"head expects {head.in_dim}-d features but the backbone gives {feature_dim}")

    @property
    def n_preprocessed_frames(self) -> int:
        """Preprocessed frames kept for the next window (the last window's, with the token cache)."""
        return len(self._preprocessed)

    @property
    def scale_convention(self) -> str:
        """Unit of the *published* σ_trans: ``vggt`` (backbone units) or ``metric``.

        A constant σ is in backbone units; a ``relative`` head is converted to backbone units
        by :func:`~vggt_uncertainty_ros.head.output.head_output_log_var`, so it reads ``vggt``.
        """
        conv = self.head_metadata.scale_convention if self.head_metadata else "vggt"
        return "vggt" if conv == "relative" else conv

    @property
    def recalibration(self) -> dict[str, float]:
        """Variance factors applied to the head's output (``{}`` when none)."""
        rec = recalibration_of(self.head_metadata)
        return dict(rec.factors) if rec is not None else {}

    @property
    def _amp_dtype(self) -> torch.dtype | None:
        return None if self.dtype == torch.float32 else self.dtype

    @staticmethod
    def _check_images(images: Sequence[np.ndarray]) -> None:
        if len(images) == 0:
            raise InvalidWindowError("a window needs at least one image, got none")
        shapes = {np.shape(im) for im in images}
        if len(shapes) != 1:
            raise InvalidWindowError(f"all images of a window must have the same size, got {sorted(shapes)}")
        for i, im in enumerate(images):
            if not isinstance(im, np.ndarray) or im.ndim != 3 or im.shape[2] != 3 or im.dtype != np.uint8:
                raise InvalidWindowError(
                    f"image {i} must be an HxWx3 uint8 RGB array, got "
                    f"{type(im).__name__} {getattr(im, 'shape', None)} {getattr(im, 'dtype', None)}"
                )

    def _preprocess_shared(self, images: Sequence[np.ndarray], frame_ids: list[Any]) -> tuple[torch.Tensor, list]:
        """Preprocess only the frames the previous window did not have (it alone is kept)."""
        keys = [(fid, np.shape(images[i])) for i, fid in enumerate(frame_ids)]
        missing = [i for i, k in enumerate(keys) if k not in self._preprocessed]
        if missing:
            fresh, fresh_transforms = preprocess_images_with_transforms(
                [images[i] for i in missing], mode=self.preprocess_mode
            )
            for j, i in enumerate(missing):
                self._preprocessed[keys[i]] = (fresh[j], fresh_transforms[j])
        current = {k: self._preprocessed[k] for k in keys}
        self._preprocessed = OrderedDict(current)  # the next window can only share these frames
        return torch.stack([v[0] for v in current.values()]), [v[1] for v in current.values()]

    @torch.inference_mode()
    def estimate(
        self,
        images: Sequence[np.ndarray],
        stamps_ns: Sequence[int] | None = None,
        frame_ids: Sequence[Any] | None = None,
    ) -> WindowEstimate:
        """Estimate relative poses and their uncertainty for one window.

        Args:
            images: S RGB images, HxWx3 uint8, all the same size; frame 0 is the reference.
            stamps_ns: optional S stamps (int ns), passed through unchanged.
            frame_ids: optional S hashable frame ids for the token cache (e.g. the stamps).

        Returns:
            The :class:`WindowEstimate`.

        Raises:
            InvalidWindowError: bad images or stamps.
            NonFiniteOutputError: NaN/Inf in the backbone or head outputs.
        """
        self._check_images(images)
        stamps = None
        if stamps_ns is not None:
            stamps = np.asarray(stamps_ns, dtype=np.int64)
            if stamps.shape != (len(images),):
                raise InvalidWindowError(f"expected {len(images)} stamps, got shape {stamps.shape}")
        kwargs: dict[str, Any] = {}
        if self.token_cache is not None and frame_ids is not None:
            if len(frame_ids) != len(images):
                raise InvalidWindowError(f"expected {len(images)} frame ids, got {len(frame_ids)}")
            kwargs = {"frame_ids": list(frame_ids), "token_cache": self.token_cache}
            batch, transforms = self._preprocess_shared(images, list(frame_ids))
        else:
            batch, transforms = preprocess_images_with_transforms(list(images), mode=self.preprocess_mode)
        out = self.backbone(batch.to(self.device)[None], **kwargs)
        pose_enc = out["pose_enc"][0].float()
        features = out[self.input_feature][0].float()
        extrinsics = out["extrinsics"][0].double().cpu().numpy()
        intrinsics_net = out["intrinsics"][0].double().cpu().numpy()
        self._check_finite("pose_enc", pose_enc)
        self._check_finite(self.input_feature, features)
        self._check_finite("extrinsics", extrinsics)
        if self.head is not None:
            log_var = self.head(features).double().cpu().numpy()
        else:
            assert self._constant_log_var is not None
            log_var = np.repeat(self._constant_log_var[None], len(images), axis=0)
        self._check_finite("log_var", log_var)
        T_0_i = np.array(relative_from_extrinsics(extrinsics), dtype=np.float64)
        T_0_i[0] = np.eye(4)  # exact by definition; float32 extrinsics leave ~1e-8 noise
        self._check_finite("T_0_i", T_0_i)
        if self.head is not None:  # scale convention (relative) and stored recalibration factors
            log_var = head_output_log_var(log_var, T_0_i, self.head_metadata)
        return WindowEstimate(
            T_0_i=T_0_i,
            log_var=log_var,
            pose_enc=pose_enc.double().cpu().numpy(),
            intrinsics=intrinsics_to_original(intrinsics_net, transforms[0]),
            features=features.cpu().numpy(),
            stamps_ns=stamps,
        )

    @staticmethod
    def _check_finite(name: str, value: torch.Tensor | np.ndarray) -> None:
        finite = torch.isfinite(value).all() if isinstance(value, torch.Tensor) else np.isfinite(value).all()
        if not bool(finite):
            raise NonFiniteOutputError(f"non-finite values in {name}; skipping this window")


def build_estimator(
    spec: BackboneSpec,
    head_path: str | os.PathLike[str] | None = None,
    *,
    constant_sigma: float | Sequence[float] | None = None,
    strict_backbone: bool = False,
    fallback_to_cpu: bool = False,
    token_cache_frames: int = 16,
) -> WindowEstimator:
    """Load the backbone ``spec`` names and an optional head.

    A head checkpoint's ``input_feature`` and scale convention are honoured.

    Args:
        spec: the backbone settings (weights, device, dtype, preprocessing, compile, token cache).
        head_path: uncertainty-head checkpoint; None uses ``constant_sigma``.
        constant_sigma: σ used without a head (rotation rad, translation backbone units).
        strict_backbone: a head trained on another backbone identity is an error (the node)
            rather than a warning (offline experiments).
        fallback_to_cpu: an unavailable CUDA runs on the CPU with a warning (the node).
        token_cache_frames: frames whose patch tokens the cache keeps when ``spec.token_cache``
            (twice the window size covers overlapping windows).

    Raises:
        CheckpointError: the head checkpoint cannot be read, or (``strict_backbone``) was
            trained on another backbone.
        ConfigError: a bad device.
        ValueError: neither a head nor ``constant_sigma``, or mismatched feature sizes.
    """
    dev = resolve_device(spec.device, fallback_to_cpu=fallback_to_cpu)
    amp = resolve_dtype(spec.dtype, dev)
    head = meta = None
    if head_path is not None:
        head, meta = load_head(head_path, device=dev)
    backbone = load_backbone(spec.weights, dev, amp)
    select_attention(backbone, spec.attention, dev, amp)
    if spec.compile:
        if dev.type == "cuda":
            backbone.compile_blocks()
        else:
            _log.info("compile is only used on CUDA: running the backbone eagerly on %s", dev)
    if meta is not None:
        identity = backbone_identity(backbone)
        if meta.backbone != identity:
            text = (
                f"head checkpoint {head_path} was trained on backbone {meta.backbone or '<unknown>'!r}, "
                f"but backbone {spec.weights!r} has identity {identity!r}"
            )
            if strict_backbone:
                raise CheckpointError(text + "; use the matching backbone or head")
            _log.warning("%s", text)
    return WindowEstimator(
        backbone,
        head,
        dev,
        amp,
        spec.preprocess_mode,
        constant_sigma=constant_sigma,
        head_metadata=meta,
        token_cache=TokenCache(max_frames=token_cache_frames) if spec.token_cache and token_cache_frames > 0 else None,
    )


__all__ = [
    "InvalidWindowError",
    "NonFiniteOutputError",
    "WindowEstimate",
    "WindowEstimator",
    "build_estimator",
    "constant_log_var",
]
