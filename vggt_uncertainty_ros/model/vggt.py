"""Our VGGT: aggregator + camera head, with official state_dict names.

``VGGT()`` is the full-size model (1,125,286,930 parameters in 1279 keys, which equal the
``aggregator.*`` and ``camera_head.*`` keys of the official ``facebook/VGGT-1B``
checkpoint); ``VGGT(config="tiny")`` is the same architecture at a small width for fast
tests of everything downstream.

Numerics follow the official model: with ``amp_dtype=torch.bfloat16`` (CUDA) the
aggregator runs under bf16 autocast (matmuls and attention in bf16; LayerNorms, the
residual stream and the returned tokens in float32) and the camera head runs in float32
with autocast disabled.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from vggt_uncertainty_ros.errors import ModelError
from vggt_uncertainty_ros.model.aggregator import Aggregator
from vggt_uncertainty_ros.model.camera_head import CameraHead
from vggt_uncertainty_ros.model.config import VGGTConfig, get_config
from vggt_uncertainty_ros.model.init import deterministic_init_
from vggt_uncertainty_ros.model.network import CameraNetwork
from vggt_uncertainty_ros.model.pose_encoding import pose_encoding_to_extri_intri
from vggt_uncertainty_ros.model.token_cache import TokenCache

logger = logging.getLogger(__name__)

InitMode = Literal["auto", "torch", "deterministic", "empty", "meta"]


@dataclass
class VGGTOutput:
    """What :meth:`VGGT.forward` returns; read by attribute (``out.pose_enc``) or by key
    (``out["pose_enc"]``; a field left ``None`` because it was not requested raises ``KeyError``).

    Attributes:
        pose_enc: ``[B, S, 9]`` the last refinement's encoding ``[t (3), q_xyzw (4), fov_h, fov_w]``
            of the camera-from-world extrinsics, translation in VGGT's normalised units, fovs in rad.
        pose_enc_list: ``[B, S, 9]`` activated encodings, one per refinement iteration.
        pose_enc_preact_list: the raw encodings before the fov ReLU, one per iteration.
        camera_features: ``[B, S, 2C]`` camera token of the last aggregator layer (what the
            uncertainty head reads).
        camera_trunk_features: ``[B, S, 2C]`` camera-head trunk output at the last iteration.
        patch_start_idx: index of the first patch token in each frame's token sequence.
        extrinsics: ``[B, S, 3, 4]`` camera-from-world ``T_cam_world`` (OpenCV axes, VGGT units),
            when decoded.
        intrinsics: ``[B, S, 3, 3]`` pinhole intrinsics in pixels of the ``H x W`` input
            (principal point at the image centre), when decoded.
        aggregated_layers: ``{i: [B, S, P, 2C]}`` full tokens of the requested layers (tests).
        camera_tokens_all_layers: ``[L, B, S, 2C]`` camera-token column of every layer (tests).
    """

    pose_enc: torch.Tensor
    pose_enc_list: list[torch.Tensor]
    pose_enc_preact_list: list[torch.Tensor]
    camera_features: torch.Tensor
    camera_trunk_features: torch.Tensor
    patch_start_idx: int
    extrinsics: torch.Tensor | None = None
    intrinsics: torch.Tensor | None = None
    aggregated_layers: dict[int, torch.Tensor] | None = None
    camera_tokens_all_layers: torch.Tensor | None = None

    def __getitem__(self, key: str) -> object:
        value = getattr(self, key, None) if key in _OUTPUT_FIELDS else None
        if value is None:
            raise KeyError(f"{key!r} is not in this output; it has {list(self.keys())}")
        return value

    def __contains__(self, key: object) -> bool:
        return key in _OUTPUT_FIELDS and getattr(self, str(key)) is not None

    def keys(self) -> Iterator[str]:
        """Names of the fields that hold a value (like a dict's keys)."""
        return (name for name in _OUTPUT_FIELDS if getattr(self, name) is not None)


_OUTPUT_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(VGGTOutput))


class VGGT(CameraNetwork):
    """VGGT aggregator + camera head.

    Args:
        config: ``"full"`` (default), ``"tiny"`` or a :class:`VGGTConfig`.
        init: ``"deterministic"`` (seeded, name-based; the default for ``tiny``), ``"torch"``
            (PyTorch's default initialisers; the default for ``full``), or ``"empty"``
            (uninitialised memory, for loading a checkpoint right after), or ``"meta"``
            (no memory at all; load with ``load_state_dict(..., assign=True)`` and call
            ``aggregator.reset_buffers()``).
        amp_dtype: ``None`` (float32 throughout) or the autocast dtype of the aggregator
            (``torch.bfloat16`` for the official GPU numerics, or ``torch.float16``); the
            camera head always runs in float32.

    Attributes:
        config: The resolved :class:`VGGTConfig`.
        feature_dim: Width of ``camera_features`` (2048 for ``full``).
        amp_dtype: as the argument; may be reassigned between calls.
    """

    def __init__(
        self, config: str | VGGTConfig = "full", init: InitMode = "auto", amp_dtype: torch.dtype | None = None
    ) -> None:
        super().__init__(amp_dtype)
        self.config = get_config(config)
        if init == "auto":
            init = "deterministic" if self.config.name == "tiny" else "torch"
        if init in ("empty", "meta"):
            with torch.device("meta"):
                self._build()
            if init == "empty":
                self.to_empty(device="cpu")
                self.aggregator.reset_buffers()
        else:
            self._build()
            if init == "deterministic":
                deterministic_init_(self, pose_iters=self.config.pose_iters)
            elif init != "torch":
                raise ModelError(f"unknown init mode {init!r}")
        self.feature_dim = self.config.feature_dim

    def _build(self) -> None:
        self.aggregator = Aggregator(self.config)
        self.camera_head = CameraHead(self.config)

    def forward(
        self,
        images: torch.Tensor,
        *,
        frame_ids: Sequence[Hashable] | None = None,
        token_cache: TokenCache | None = None,
        keep_layers: Sequence[int] = (),
        camera_token_layers: bool = False,
        iters: int | None = None,
        decode: bool = True,
    ) -> VGGTOutput:
        """Predict camera poses of one or more image sequences.

        Args:
            images: ``[B, S, 3, H, W]`` (or ``[S, 3, H, W]``) RGB in [0, 1]; ``H``, ``W``
                multiples of 14. Frame 0 of each sequence is the reference frame.
            frame_ids: One hashable id per frame (``B == 1``) for the DINOv2 token cache.
            token_cache: Cache of per-frame DINOv2 patch tokens; with ``frame_ids``, only
                frames not cached yet go through DINOv2.
            keep_layers: Aggregator layer indices whose full tokens to return (tests).
            camera_token_layers: Also return the camera-token column of all layers (tests).
            iters: Camera-head refinement iterations (default 4).
            decode: Decode extrinsics/intrinsics from the last pose encoding.

        Returns:
            A :class:`VGGTOutput` (``extrinsics``/``intrinsics`` when ``decode``,
            ``aggregated_layers``/``camera_tokens_all_layers`` when requested).

        Raises:
            ModelError: On bad shapes or a cache without frame ids.
        """
        if images.dim() == 4:
            images = images.unsqueeze(0)
        if images.dim() != 5 or images.shape[2] != 3:
            raise ModelError(f"expected images [B, S, 3, H, W], got {tuple(images.shape)}")
        b, s, _, h, w = images.shape
        device = images.device
        with self._sdpa_preference(), self._autocast(device):
            if token_cache is not None:
                if frame_ids is None or len(frame_ids) != s or b != 1:
                    raise ModelError("token_cache needs B == 1 and one frame id per frame")
                patch = token_cache.get_or_compute(frame_ids, images[0], self.aggregator.patch_tokens)
                agg = self.aggregator(
                    patch_tokens=patch.unsqueeze(0),
                    image_hw=(h, w),
                    keep_layers=keep_layers,
                    camera_token_layers=camera_token_layers,
                )
            else:
                agg = self.aggregator(images, keep_layers=keep_layers, camera_token_layers=camera_token_layers)
        camera_features = agg.camera_last
        with self._sdpa_preference(), torch.autocast(device_type=device.type, enabled=False):
            head = self.camera_head(camera_features.float(), iters=iters)
        out = VGGTOutput(
            pose_enc=head.pose_enc_list[-1],
            pose_enc_list=head.pose_enc_list,
            pose_enc_preact_list=head.preact_list,
            camera_features=camera_features,
            camera_trunk_features=head.trunk_features,
            patch_start_idx=agg.patch_start_idx,
            aggregated_layers=agg.layers if keep_layers else None,
            camera_tokens_all_layers=agg.camera_tokens if camera_token_layers else None,
        )
        if decode:
            out.extrinsics, out.intrinsics = pose_encoding_to_extri_intri(out.pose_enc, (h, w))
        return out
