"""The backbone protocol: how every front end (node, trainer, evaluator, bench) runs a backbone.

A *backbone* turns one window of RGB images into window-relative camera poses, intrinsics and
a per-frame feature vector for the uncertainty head. Front ends never call a network directly:
they call :func:`build_backbone` with a :class:`~vggt_uncertainty_ros.model.spec.BackboneSpec`
and then :meth:`Backbone.predict` per window.

To add a backbone family:

1. add its name to :data:`~vggt_uncertainty_ros.model.spec.BACKBONES` (and its preprocessing
   modes to ``BACKBONE_PREPROCESS_MODES`` if it has any);
2. write ``build(spec, device, dtype) -> Backbone`` and register it with
   ``@register_backbone("name")`` in its module;
3. list the module in :data:`PROVIDERS` so :func:`build_backbone` imports it on first use.

Conventions of :class:`WindowPrediction` (docs/ARCHITECTURE.md): frame 0 is the reference;
``T_0_i`` maps points of camera i into camera 0 (OpenCV axes: x right, y down, z forward),
translation in the backbone's own units (VGGT's normalised scene units; a metric backbone's
metres); intrinsics in pixels of the *input* images.
"""

from __future__ import annotations

import importlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal, Protocol, cast, runtime_checkable

import numpy as np
import torch

from vggt_uncertainty_ros.errors import ConfigError, InvalidWindowError, NonFiniteOutputError
from vggt_uncertainty_ros.geometry import relative_from_extrinsics
from vggt_uncertainty_ros.model.checkpoint import load_backbone
from vggt_uncertainty_ros.model.identity import backbone_identity
from vggt_uncertainty_ros.model.layers import select_attention
from vggt_uncertainty_ros.model.omega.checkpoint import load_omega
from vggt_uncertainty_ros.model.omega.preprocess import load_and_preprocess_images_with_transforms
from vggt_uncertainty_ros.model.preprocess import intrinsics_to_original, preprocess_images_with_transforms
from vggt_uncertainty_ros.model.spec import BackboneSpec
from vggt_uncertainty_ros.model.token_cache import TokenCache

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WindowPrediction:
    """What a backbone predicts for one window of ``S`` frames.

    Attributes:
        T_0_i: ``[S, 4, 4]`` float64 pose of camera i in camera 0 (OpenCV axes), translation in
            backbone units; ``T_0_i[0]`` is the identity.
        intrinsics: ``[S, 3, 3]`` float64 pinhole ``K`` in pixels of the input images.
        features: ``[S, D]`` float32 the uncertainty head's input (``D = Backbone.feature_dim``).
        valid: ``[S]`` bool; False where the backbone has no estimate for a frame (its pose and
            features must then not be used).
        aux: optional extra ``[S, ...]`` arrays by name (e.g. ``pose_enc``, a second head input
            such as ``camera_trunk_features``); consumers must not require any of them.
    """

    T_0_i: np.ndarray
    intrinsics: np.ndarray
    features: np.ndarray
    valid: np.ndarray
    aux: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        s = self.T_0_i.shape[0]
        shapes = {
            "T_0_i": (self.T_0_i.shape, (s, 4, 4)),
            "intrinsics": (self.intrinsics.shape, (s, 3, 3)),
            "valid": (self.valid.shape, (s,)),
        }
        bad = [f"{k} {got} != {want}" for k, (got, want) in shapes.items() if tuple(got) != want]
        if self.features.ndim != 2 or self.features.shape[0] != s:
            bad.append(f"features {self.features.shape} is not [{s}, D]")
        if bad:
            raise ValueError("inconsistent WindowPrediction: " + "; ".join(bad))


@runtime_checkable
class Backbone(Protocol):
    """A frozen pose backbone.

    Attributes:
        name: family name (a :data:`~vggt_uncertainty_ros.model.spec.BACKBONES` entry); head
            checkpoints record it and are refused on another family.
        feature_dim: ``D`` of :attr:`WindowPrediction.features`.
    """

    name: str
    feature_dim: int

    def identity(self) -> str:
        """A stable fingerprint of the backbone (architecture and weights); equal means same outputs."""
        ...

    def predict(self, images: Sequence[np.ndarray], frame_ids: Sequence[Hashable] | None = None) -> WindowPrediction:
        """Predict one window.

        Args:
            images: S RGB images, ``HxWx3`` uint8, all the same size; frame 0 is the reference.
            frame_ids: optional S hashable ids (e.g. stamps); a backbone may reuse per-frame
                work for ids it saw in the previous window.

        Raises:
            InvalidWindowError: bad images or ids.
            NonFiniteOutputError: NaN/Inf in the outputs.
        """
        ...


#: ``name -> build(spec, device, dtype)``; filled by :func:`register_backbone`.
BackboneBuilder = Callable[[BackboneSpec, torch.device, torch.dtype], Backbone]
BUILDERS: dict[str, BackboneBuilder] = {}
#: Modules that register a family when imported (loaded on first use by :func:`build_backbone`).
PROVIDERS: dict[str, str] = {"geometric": "vggt_uncertainty_ros.model.geometric"}


def register_backbone(name: str) -> Callable[[BackboneBuilder], BackboneBuilder]:
    """Decorator registering ``build(spec, device, dtype)`` under ``name`` in :data:`BUILDERS`."""

    def deco(fn: BackboneBuilder) -> BackboneBuilder:
        BUILDERS[name] = fn
        return fn

    return deco


def build_backbone(spec: BackboneSpec, device: torch.device | str, dtype: torch.dtype) -> Backbone:
    """Build the frozen backbone ``spec`` names on ``device`` with compute ``dtype``.

    Raises:
        ConfigError: no builder is registered for ``spec.name``.
        CheckpointError: the weights cannot be found, read or matched.
    """
    if spec.name not in BUILDERS and spec.name in PROVIDERS:
        importlib.import_module(PROVIDERS[spec.name])
    try:
        builder = BUILDERS[spec.name]
    except KeyError:
        raise ConfigError(f"no backbone builder registered for {spec.name!r}; known: {sorted(BUILDERS)}") from None
    return builder(spec, torch.device(device), dtype)


def check_images(images: Sequence[np.ndarray]) -> None:
    """Raise :class:`InvalidWindowError` unless ``images`` are >= 1 same-size ``HxWx3`` uint8 arrays."""
    if len(images) == 0:
        raise InvalidWindowError("a window needs at least one image, got none")
    for i, im in enumerate(images):
        if not isinstance(im, np.ndarray) or im.ndim != 3 or im.shape[2] != 3 or im.dtype != np.uint8:
            raise InvalidWindowError(
                f"image {i} must be an HxWx3 uint8 RGB array, got "
                f"{type(im).__name__} {getattr(im, 'shape', None)} {getattr(im, 'dtype', None)}"
            )
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise InvalidWindowError(f"all images of a window must have the same size, got {sorted(shapes)}")


def check_finite(name: str, value: torch.Tensor | np.ndarray) -> None:
    """Raise :class:`NonFiniteOutputError` naming ``name`` if ``value`` holds NaN/Inf."""
    finite = torch.isfinite(value).all() if isinstance(value, torch.Tensor) else np.isfinite(value).all()
    if not bool(finite):
        raise NonFiniteOutputError(f"non-finite values in {name}; skipping this window")


#: Network outputs passed on in :attr:`WindowPrediction.aux` when present.
AUX_KEYS = ("pose_enc", "camera_features", "camera_trunk_features")

Preprocess = Callable[[list[np.ndarray]], tuple[torch.Tensor, list[Any]]]


class NetworkBackbone:
    """A camera network (our ``VGGT`` or ``VGGTOmega``) behind the :class:`Backbone` protocol.

    Args:
        model: an ``nn.Module`` whose ``forward(images[1, S, 3, H, W], frame_ids=..., token_cache=...)``
            returns ``extrinsics`` (camera-from-world, OpenCV), ``intrinsics`` (input px),
            ``pose_enc`` and the feature ``feature``; frozen, moved to ``device``, eval.
        name: family name.
        preprocess: ``list of HxWx3 uint8 -> ([S, 3, H, W] in [0, 1], ImageTransforms)``.
        device: torch device.
        dtype: compute dtype (float32, or an autocast dtype set as ``model.amp_dtype``).
        token_cache: optional ``model.TokenCache``; with ``frame_ids``, frames shared with the
            previous window skip the per-frame encoder and their preprocessing.
        feature: the model output used as :attr:`WindowPrediction.features`.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        name: str,
        preprocess: Preprocess,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        token_cache: Any | None = None,
        feature: str = "camera_features",
    ) -> None:
        self.name = name
        self.device = torch.device(device)
        self.dtype = dtype
        net: Any = model.to(self.device).eval()  # VGGT-style: amp_dtype, feature_dim
        self.model = net
        amp = None if dtype == torch.float32 else dtype
        if hasattr(net, "amp_dtype") and net.amp_dtype != amp:  # VGGT, VGGTOmega; test doubles may lack it
            net.amp_dtype = amp
        self.feature_dim = int(net.feature_dim)
        self.preprocess = preprocess
        self.token_cache = token_cache
        self.feature = feature
        self._identity: str | None = None
        # with the token cache: (frame id, shape) -> (preprocessed image, transform) of the last window
        self._preprocessed: OrderedDict[tuple, tuple[torch.Tensor, Any]] = OrderedDict()

    @property
    def n_preprocessed_frames(self) -> int:
        """Preprocessed frames kept for the next window (the last window's, with the token cache)."""
        return len(self._preprocessed)

    def identity(self) -> str:
        """``model.backbone_identity`` of the network (computed once)."""
        if self._identity is None:
            self._identity = backbone_identity(self.model)
        return self._identity

    def _preprocess_shared(self, images: Sequence[np.ndarray], frame_ids: list[Any]) -> tuple[torch.Tensor, list]:
        keys = [(fid, np.shape(images[i])) for i, fid in enumerate(frame_ids)]
        missing = [i for i, k in enumerate(keys) if k not in self._preprocessed]
        if missing:
            fresh, fresh_tf = self.preprocess([images[i] for i in missing])
            for j, i in enumerate(missing):
                self._preprocessed[keys[i]] = (fresh[j], fresh_tf[j])
        current = OrderedDict((k, self._preprocessed[k]) for k in keys)
        self._preprocessed = current  # the next window can only share these frames
        return torch.stack([v[0] for v in current.values()]), [v[1] for v in current.values()]

    @torch.inference_mode()
    def predict(self, images: Sequence[np.ndarray], frame_ids: Sequence[Hashable] | None = None) -> WindowPrediction:
        """See :meth:`Backbone.predict`."""
        check_images(images)
        kwargs: dict[str, Any] = {}
        if self.token_cache is not None and frame_ids is not None:
            if len(frame_ids) != len(images):
                raise InvalidWindowError(f"expected {len(images)} frame ids, got {len(frame_ids)}")
            kwargs = {"frame_ids": list(frame_ids), "token_cache": self.token_cache}
            batch, transforms = self._preprocess_shared(images, list(frame_ids))
        else:
            batch, transforms = self.preprocess(list(images))
        out = self.model(batch.to(self.device)[None], **kwargs)
        features = out[self.feature][0].float()
        extrinsics = out["extrinsics"][0].double().cpu().numpy()
        check_finite(self.feature, features)
        check_finite("extrinsics", extrinsics)
        T_0_i = np.array(relative_from_extrinsics(extrinsics), dtype=np.float64)
        T_0_i[0] = np.eye(4)  # exact by definition; float32 extrinsics leave ~1e-8 noise
        check_finite("T_0_i", T_0_i)
        intrinsics = intrinsics_to_original(out["intrinsics"][0].double().cpu().numpy(), transforms[0])
        aux = {k: out[k][0].float().cpu().numpy() for k in AUX_KEYS if k in out}
        for k, v in aux.items():
            check_finite(k, v)
        return WindowPrediction(
            T_0_i=T_0_i,
            intrinsics=np.asarray(intrinsics, dtype=np.float64),
            features=features.cpu().numpy(),
            valid=np.ones(len(images), dtype=bool),
            aux=aux,
        )


def _token_cache(spec: BackboneSpec, frames: int) -> TokenCache | None:
    return TokenCache(max_frames=frames) if spec.token_cache and frames > 0 else None


def _maybe_compile(model: Any, spec: BackboneSpec, device: torch.device, dtype: torch.dtype) -> None:
    """Select the attention kernel (``spec.attention``), then compile the blocks on CUDA."""
    select_attention(model, spec.attention, device, dtype)
    if not spec.compile:
        return
    if device.type == "cuda":
        model.compile_blocks()
    else:
        _log.info("compile is only used on CUDA: running the backbone eagerly on %s", device)


#: Frames the per-frame token cache keeps (twice a 16-frame window covers overlapping windows).
TOKEN_CACHE_FRAMES = 32


@register_backbone("vggt")
def build_vggt(spec: BackboneSpec, device: torch.device, dtype: torch.dtype) -> NetworkBackbone:
    """VGGT (``facebook/VGGT-1B`` or ``tiny``) with its official ``crop``/``pad`` preprocessing."""
    model = load_backbone(spec.weights, device, dtype)
    _maybe_compile(model, spec, device, dtype)
    mode = cast(Literal["crop", "pad"], spec.resolved_preprocess_mode)  # validated by BackboneSpec
    preprocess = partial(preprocess_images_with_transforms, mode=mode)
    return NetworkBackbone(model, "vggt", preprocess, device, dtype, _token_cache(spec, TOKEN_CACHE_FRAMES))


@register_backbone("vggt-omega")
def build_vggt_omega(spec: BackboneSpec, device: torch.device, dtype: torch.dtype) -> NetworkBackbone:
    """VGGT-Ω (``facebook/VGGT-Omega[:file]``, a local ``.pt``/``.safetensors`` or ``tiny``),
    preprocessed in ``balanced`` or ``max_size`` mode at the weights' resolution (512; 416 for the
    reproduce checkpoint; 128 for ``tiny``)."""
    model = load_omega(spec.weights, device, dtype)
    _maybe_compile(model, spec, device, dtype)
    preprocess = partial(
        load_and_preprocess_images_with_transforms,
        mode=spec.resolved_preprocess_mode,
        image_resolution=model.config.image_resolution,
    )
    return NetworkBackbone(model, "vggt-omega", preprocess, device, dtype, _token_cache(spec, TOKEN_CACHE_FRAMES))


__all__ = [
    "BUILDERS",
    "PROVIDERS",
    "Backbone",
    "NetworkBackbone",
    "WindowPrediction",
    "build_backbone",
    "check_finite",
    "check_images",
    "register_backbone",
]
