"""One window through the frozen backbone and the uncertainty head.

:class:`WindowEstimator` is the shared inference path of the evaluator and the ROS node:
``backbone.predict`` (any :class:`~vggt_uncertainty_ros.model.backbone.Backbone`: VGGT,
VGGT-Ω, ...; preprocessing, autocast and window-relative poses happen there) followed by the
head, which predicts per-frame log-variances from the backbone's features, or a constant
diagonal σ when there is no head.

Conventions (docs/ARCHITECTURE.md): ``T_0_i`` maps points of camera ``i`` into camera 0
(OpenCV axes), translation in VGGT's normalised units; ``log_var`` is log σ² of the right
perturbation residual in the order ``[rot (3) rad², trans (3) VGGT-units²]`` (for a head
whose scale convention is ``vggt``; a ``metric`` head gives metres²).

Frames whose translation the backbone could not observe (``aux["translation_valid"]`` False,
e.g. the geometric backbone without parallax: translation 0) were never in the head's
translation training, so its σ_trans there means nothing (bench-unseen: d² 2.2–140 per
sequence on those frames). Their published translation σ is the window's own motion
(:func:`~vggt_uncertainty_ros.geometry.window_motion`, per axis): "0, give or take one
window motion" (on the same frames: d² 1.8, coverage 95 % 0.95); one backbone unit when no
frame of the window has an observed translation. Counted in
:attr:`WindowEstimator.frames_translation_unobserved`.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
import torch

from vggt_uncertainty_ros.errors import (
    CheckpointError,
    InvalidWindowError,
    ModelError,
    NonFiniteOutputError,
)
from vggt_uncertainty_ros.geometry import MIN_RELATIVE_MOTION, window_motion
from vggt_uncertainty_ros.head import (
    HeadMetadata,
    InputFeature,
    UncertaintyHead,
    check_head_backbone,
    load_head,
)
from vggt_uncertainty_ros.head.output import head_output_log_var, recalibration_of
from vggt_uncertainty_ros.model import TokenCache, preprocess_images_with_transforms
from vggt_uncertainty_ros.model.backbone import (
    Backbone,
    NetworkBackbone,
    build_backbone,
    check_finite,
    check_images,
)
from vggt_uncertainty_ros.model.device import resolve_device, resolve_dtype
from vggt_uncertainty_ros.model.spec import BackboneSpec

if TYPE_CHECKING:
    from torch import nn

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WindowEstimate:
    """Result of :meth:`WindowEstimator.estimate` for one window of ``S`` frames.

    Attributes:
        T_0_i: [S, 4, 4] float64 pose of camera i in camera 0 (OpenCV axes), translation in
            backbone units (VGGT's normalised units for VGGT and VGGT-Ω); ``T_0_i[0]`` is the identity.
        log_var: [S, 6] float64 log σ², order (rot rad², trans unit²), unit = VGGT units for a
            ``vggt`` head or the constant σ, metres for a ``metric`` head. Row 0 (the
            reference frame) is predicted like the others but carries no meaning.
        pose_enc: [S, 9] float64 pose encoding of a VGGT-family backbone (T 3, quat XYZW 4,
            fov_h, fov_w rad), or None for a backbone without one.
        intrinsics: [S, 3, 3] float64 pinhole K in pixels of the *input* images.
        features: [S, D] float32 head input feature.
        stamps_ns: [S] int64 stamps passed to :meth:`~WindowEstimator.estimate`, or None.
        valid: [S] bool, False for frames the backbone has no estimate for (do not publish
            them); None means all valid.
        translation_observed: [S] bool, False for frames whose translation the backbone could
            not observe (their translation σ is the window's motion, module docstring); None
            when the backbone does not say.
    """

    T_0_i: np.ndarray
    log_var: np.ndarray
    pose_enc: np.ndarray | None
    intrinsics: np.ndarray
    features: np.ndarray
    stamps_ns: np.ndarray | None = None
    valid: np.ndarray | None = None
    translation_observed: np.ndarray | None = None

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
        backbone: a :class:`~vggt_uncertainty_ros.model.backbone.Backbone` (see
            :func:`~vggt_uncertainty_ros.model.backbone.build_backbone`), or a bare VGGT-style
            ``nn.Module`` (tests), which is wrapped in a ``NetworkBackbone`` named ``vggt``
            with VGGT's ``preprocess_mode`` preprocessing on ``device``/``dtype``.
        head: the uncertainty head, or None to use ``constant_sigma``.
        device: torch device of the head (and of a wrapped module).
        dtype: compute dtype of a wrapped module (default bf16 on CUDA, float32 on the CPU).
        preprocess_mode: ``"crop"`` or ``"pad"`` for a wrapped module.
        constant_sigma: σ used when ``head`` is None: (rot rad, trans backbone units).
        input_feature: the head input: ``camera_features`` (the backbone's
            :attr:`~vggt_uncertainty_ros.model.backbone.WindowPrediction.features`) or another
            per-frame array the backbone gives in ``aux``; default from ``head_metadata``.
        head_metadata: metadata of a loaded head; its backbone family must be ``backbone.name``.
        token_cache: optional ``model.TokenCache`` for a wrapped module.

    Raises:
        ValueError: neither a head nor a constant σ, or a head whose input size does not
            match the backbone's feature size.
        CheckpointError: ``head_metadata`` names another backbone family.
    """

    def __init__(
        self,
        backbone: Backbone | nn.Module,
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
        if not isinstance(backbone, Backbone):
            mode = "crop" if preprocess_mode == "auto" else preprocess_mode
            if mode not in ("crop", "pad"):
                raise NotImplementedError(f"unknown preprocess mode {preprocess_mode!r}; expected 'crop' or 'pad'")
            backbone = NetworkBackbone(
                backbone,
                "vggt",
                partial(preprocess_images_with_transforms, mode=cast(Literal["crop", "pad"], mode)),
                self.device,
                self.dtype,
                token_cache,
            )
        self.backbone: Backbone = backbone
        self.head = head.to(self.device).eval() if head is not None else None
        self.head_metadata = head_metadata
        if input_feature is None:
            input_feature = head_metadata.input_feature if head_metadata else InputFeature.CAMERA_FEATURES
        self.input_feature = InputFeature(input_feature).value
        self._constant_log_var: np.ndarray | None = None
        #: frames published with the "not observed" translation σ (module docstring)
        self.frames_translation_unobserved = 0
        self._warned_metric_unobserved = False
        if head is None:
            if constant_sigma is None:
                raise ValueError("WindowEstimator needs a head or a constant_sigma (rot rad, trans unit)")
            self._constant_log_var = constant_log_var(constant_sigma)
        else:
            if int(backbone.feature_dim) != head.in_dim:
                raise ValueError(f"head expects {head.in_dim}-d features but the backbone gives {backbone.feature_dim}")
            if head_metadata is not None:
                check_head_backbone(head_metadata, backbone.name, int(backbone.feature_dim), "the loaded head")

    def use_camera_matrix(self, K: np.ndarray) -> bool:
        """Give a backbone that takes a calibration (``geometric``) the camera matrix ``K``.

        Args:
            K: ``[3, 3]`` pixels of the images as they reach :meth:`estimate`.

        Returns:
            Whether the backbone uses it (VGGT-style backbones estimate their own intrinsics).
        """
        setter = getattr(self.backbone, "set_camera_matrix", None)
        if setter is None:
            return False
        setter(np.asarray(K, dtype=np.float64))
        return True

    @property
    def token_cache(self) -> Any | None:
        """The backbone's per-frame token cache, if it has one."""
        return getattr(self.backbone, "token_cache", None)

    @property
    def n_preprocessed_frames(self) -> int:
        """Preprocessed frames the backbone keeps for the next window (the last window's, with the token cache)."""
        return int(getattr(self.backbone, "n_preprocessed_frames", 0))

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

    def _features(self, pred: Any) -> np.ndarray:
        if self.input_feature == InputFeature.CAMERA_FEATURES.value:
            return pred.features
        try:
            return pred.aux[self.input_feature]
        except KeyError:
            raise ModelError(
                f"backbone {self.backbone.name!r} gives no {self.input_feature!r}; "
                f"use a head trained on camera_features"
            ) from None

    @torch.inference_mode()
    def estimate(
        self,
        images: Sequence[np.ndarray],
        stamps_ns: Sequence[int] | None = None,
        frame_ids: Sequence[Hashable] | None = None,
    ) -> WindowEstimate:
        """Estimate relative poses and their uncertainty for one window.

        Args:
            images: S RGB images, HxWx3 uint8, all the same size; frame 0 is the reference.
            stamps_ns: optional S stamps (int ns), passed through unchanged.
            frame_ids: optional S hashable frame ids for per-frame reuse (e.g. the stamps).

        Returns:
            The :class:`WindowEstimate`.

        Raises:
            InvalidWindowError: bad images or stamps.
            NonFiniteOutputError: NaN/Inf in the backbone or head outputs.
        """
        check_images(images)
        stamps = None
        if stamps_ns is not None:
            stamps = np.asarray(stamps_ns, dtype=np.int64)
            if stamps.shape != (len(images),):
                raise InvalidWindowError(f"expected {len(images)} stamps, got shape {stamps.shape}")
        pred = self.backbone.predict(list(images), frame_ids=None if frame_ids is None else list(frame_ids))
        features = np.asarray(self._features(pred), dtype=np.float32)
        check_finite(self.input_feature, features)
        if self.head is not None:
            log_var = self.head(torch.from_numpy(features).to(self.device)).double().cpu().numpy()
        else:
            assert self._constant_log_var is not None
            log_var = np.repeat(self._constant_log_var[None], len(images), axis=0)
        check_finite("log_var", log_var)
        pose_enc = pred.aux.get("pose_enc")
        T_0_i = np.asarray(pred.T_0_i, dtype=np.float64)
        if self.head is not None:  # scale convention (relative) and stored recalibration factors
            log_var = head_output_log_var(log_var, T_0_i, self.head_metadata)
        valid = np.asarray(pred.valid, dtype=bool)
        observed = pred.aux.get("translation_valid")
        if observed is not None:
            observed = np.asarray(observed, dtype=bool).copy()
            observed[0] = True  # the reference frame
            log_var = self._unobserved_translation(log_var, T_0_i, valid & ~observed)
        return WindowEstimate(
            T_0_i=T_0_i,
            log_var=log_var,
            pose_enc=None if pose_enc is None else np.asarray(pose_enc, dtype=np.float64),
            intrinsics=np.asarray(pred.intrinsics, dtype=np.float64),
            features=features,
            stamps_ns=stamps,
            valid=valid,
            translation_observed=observed,
        )

    def _unobserved_translation(self, log_var: np.ndarray, T_0_i: np.ndarray, unobserved: np.ndarray) -> np.ndarray:
        """Give unobserved translations the window's motion as σ (module docstring)."""
        if not unobserved.any():
            return log_var
        if self.scale_convention != "vggt":  # σ_trans in metres: the window motion has no unit yet
            if not self._warned_metric_unobserved:
                _log.warning(
                    "a metric head keeps its own σ_trans for frames whose translation the backbone "
                    "could not observe (the window motion is in backbone units)"
                )
                self._warned_metric_unobserved = True
            return log_var
        motion = float(window_motion(T_0_i[:, :3, 3]))
        if motion <= MIN_RELATIVE_MOTION:  # no translation observed in the whole window: one unit
            motion = 1.0
        out = np.array(log_var, copy=True)
        out[unobserved, 3:] = 2.0 * math.log(motion)
        self.frames_translation_unobserved += int(unobserved.sum())
        return out


def build_estimator(
    spec: BackboneSpec,
    head_path: str | os.PathLike[str] | None = None,
    *,
    constant_sigma: float | Sequence[float] | None = None,
    strict_backbone: bool = False,
    fallback_to_cpu: bool = False,
    token_cache_frames: int = 16,
) -> WindowEstimator:
    """Build the backbone ``spec`` names (:func:`~vggt_uncertainty_ros.model.backbone.build_backbone`)
    and an optional head.

    A head checkpoint's ``input_feature`` and scale convention are honoured. A head trained on
    another backbone *family* (e.g. VGGT vs VGGT-Ω) or feature size is always refused; one
    trained on other weights of the same family is refused with ``strict_backbone`` (the node)
    and a warning otherwise (offline experiments).

    Args:
        spec: the backbone settings (name, weights, device, dtype, preprocessing, compile, token cache).
        head_path: uncertainty-head checkpoint; None uses ``constant_sigma``.
        constant_sigma: σ used without a head (rotation rad, translation backbone units).
        strict_backbone: refuse a head trained on other weights of the same family.
        fallback_to_cpu: an unavailable CUDA runs on the CPU with a warning (the node).
        token_cache_frames: frames whose per-frame tokens the backbone's cache keeps when
            ``spec.token_cache`` (twice the window size covers overlapping windows).

    Raises:
        CheckpointError: the backbone weights or the head checkpoint cannot be read, or the
            head was trained on another backbone.
        ConfigError: a bad device or backbone name.
        ValueError: neither a head nor ``constant_sigma``, or mismatched feature sizes.
    """
    dev = resolve_device(spec.device, fallback_to_cpu=fallback_to_cpu)
    amp = resolve_dtype(spec.dtype, dev)
    head = meta = None
    if head_path is not None:
        head, meta = load_head(head_path, device=dev)
    backbone = build_backbone(spec, dev, amp)
    if isinstance(backbone, NetworkBackbone) and backbone.token_cache is not None:
        backbone.token_cache = TokenCache(max_frames=token_cache_frames) if token_cache_frames > 0 else None
    if meta is not None:
        check_head_backbone(meta, backbone.name, int(backbone.feature_dim), str(head_path))
        identity = backbone.identity()
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
        constant_sigma=constant_sigma,
        head_metadata=meta,
    )


__all__ = [
    "InvalidWindowError",
    "NonFiniteOutputError",
    "WindowEstimate",
    "WindowEstimator",
    "build_estimator",
    "constant_log_var",
]
