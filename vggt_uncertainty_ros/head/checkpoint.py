"""Head checkpoints: safetensors weights + JSON metadata, no pickle.

The file is a plain ``.safetensors`` file. Its string metadata holds one key,
``vggt_uncertainty_head``, whose value is the JSON of :class:`HeadMetadata` (the head's
constructor arguments included), so :func:`load_head` rebuilds the exact module.
Writes go to a temporary file in the same directory followed by ``os.replace``, so a
reader never sees a half-written checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from vggt_uncertainty_ros import __version__
from vggt_uncertainty_ros.errors import CheckpointError
from vggt_uncertainty_ros.geometry.residuals import ScaleConvention
from vggt_uncertainty_ros.head.head import (
    InputFeature,
    Parameterization,
    UncertaintyHead,
)

_log = logging.getLogger(__name__)

#: safetensors metadata key holding the JSON of :class:`HeadMetadata`.
METADATA_KEY = "vggt_uncertainty_head"
#: Format version of the metadata JSON.
FORMAT_VERSION = 1


@dataclass(frozen=True)
class HeadMetadata:
    """Everything a consumer must know about a trained head.

    Attributes:
        parameterization: ``"log_var"`` or ``"sqrt_info"``.
        input_feature: backbone output the head reads (``"camera_features"`` or
            ``"camera_trunk_features"``).
        in_dim: feature size.
        hidden: hidden width.
        backbone: backbone identity string (``Backbone.identity()``: architecture and weights).
        backbone_family: backbone family the head was trained on (``BackboneSpec.name``:
            ``vggt``, ``vggt-omega``, ...); files written before this field are ``vggt`` heads.
            A head is refused on another family (:func:`check_head_backbone`).
        scale_convention: ``"vggt"`` (translation log σ² in VGGT units), ``"metric"`` or
            ``"relative"`` (σ_trans relative to the window's predicted motion; see
            ``geometry.ScaleConvention``).
        head_config: keyword arguments that rebuild the head (``UncertaintyHead.config``).
        config: training configuration (free-form, JSON-serialisable).
        metrics: metrics at save time (e.g. validation calibration).
        recalibration: post-hoc per-block variance factors (``vggt-uncertainty calibrate``,
            the dict of ``calibration.recalibration.Recalibration``: ``factors {"rot",
            "trans"}``, ``method``, ``sequences``, ``per_sequence``, ``n_frames``, plus the
            ``before``/``after`` validation figures); empty = none. Consumers apply it with
            :func:`vggt_uncertainty_ros.head.output.head_output_log_var`.
        created: ISO-8601 UTC creation time.
        package_version: version of this package that wrote the file.
        format_version: version of this metadata layout.
    """

    parameterization: str = Parameterization.LOG_VAR.value
    input_feature: str = InputFeature.CAMERA_FEATURES.value
    in_dim: int = 2048
    hidden: int = 1024
    backbone: str = ""
    backbone_family: str = "vggt"
    scale_convention: str = ScaleConvention.VGGT.value
    head_config: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    recalibration: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    package_version: str = __version__
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        for name, enum in (
            ("parameterization", Parameterization),
            ("input_feature", InputFeature),
            ("scale_convention", ScaleConvention),
        ):
            value = getattr(self, name)
            try:
                object.__setattr__(self, name, enum(value).value)
            except ValueError as err:
                raise CheckpointError(f"invalid {name} {value!r}; expected one of {[e.value for e in enum]}") from err

    @classmethod
    def for_head(cls, head: UncertaintyHead, **fields: Any) -> HeadMetadata:
        """Metadata whose head fields are taken from ``head``; other fields from ``fields``."""
        return cls(
            parameterization=head.parameterization.value,
            in_dim=head.in_dim,
            hidden=head.hidden,
            head_config=head.config,
            **fields,
        )

    def to_json(self) -> str:
        """JSON string of all fields."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> HeadMetadata:
        """Parse :meth:`to_json` output; unknown keys are ignored with a warning."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise TypeError("metadata JSON is not an object")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            _log.warning("ignoring unknown head metadata keys %s", unknown)
        return cls(**{k: v for k, v in data.items() if k in known})


def check_head_backbone(meta: HeadMetadata, family: str, feature_dim: int, source: str) -> None:
    """Refuse a head trained on another backbone family or feature size.

    Args:
        meta: the head's metadata.
        family: the running backbone's family (``Backbone.name``).
        feature_dim: the running backbone's feature size.
        source: the head checkpoint (for the message).

    Raises:
        CheckpointError: the families or feature sizes differ.
    """
    if meta.backbone_family != family or int(meta.in_dim) != int(feature_dim):
        raise CheckpointError(
            f"head checkpoint {source} was trained on backbone {meta.backbone_family!r} "
            f"({meta.in_dim}-d features), but this run uses backbone {family!r} ({feature_dim}-d features): "
            f"train a head on {family!r} or set backbone {meta.backbone_family!r}"
        )


def save_head(
    path: str | os.PathLike[str],
    head: UncertaintyHead,
    metadata: HeadMetadata | None = None,
) -> Path:
    """Write ``head`` and ``metadata`` atomically to a safetensors file.

    The head fields of ``metadata`` (parameterization, in_dim, hidden, head_config) are
    always taken from ``head``; a mismatch with the given values raises.

    Args:
        path: destination (parent directories are created).
        head: the module to save (weights are copied to CPU, contiguous).
        metadata: descriptive fields; defaults to :meth:`HeadMetadata.for_head` of ``head``.

    Returns:
        The written path.

    Raises:
        CheckpointError: metadata inconsistent with ``head``, or the file cannot be written.
    """
    path = Path(path)
    meta = metadata or HeadMetadata.for_head(head)
    expected = (head.parameterization.value, head.in_dim, head.hidden)
    given = (meta.parameterization, meta.in_dim, meta.hidden)
    if given != expected:
        raise CheckpointError(f"metadata {given} does not match head {expected} for {path}")
    fields = asdict(meta)
    fields["head_config"] = head.config
    if not fields["created"]:
        fields["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in head.state_dict().items()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            save_file(tensors, tmp, metadata={METADATA_KEY: json.dumps(fields, sort_keys=True)})
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except (OSError, TypeError, ValueError) as err:
        raise CheckpointError(f"cannot write head checkpoint {path}: {err}") from err
    _log.debug("saved head checkpoint %s", path)
    return path


def read_head_metadata(path: str | os.PathLike[str]) -> HeadMetadata:
    """Read only the metadata of a head checkpoint (no weights are loaded).

    Raises:
        CheckpointError: missing file, not safetensors, or missing/invalid metadata.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"head checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(METADATA_KEY)
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file: {err}") from err
    if raw is None:
        raise CheckpointError(f"{path} has no '{METADATA_KEY}' metadata; not a head checkpoint")
    try:
        return HeadMetadata.from_json(raw)
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{path} has invalid head metadata: {err}") from err


def load_head(
    path: str | os.PathLike[str],
    device: torch.device | str = "cpu",
) -> tuple[UncertaintyHead, HeadMetadata]:
    """Rebuild a head from a checkpoint written by :func:`save_head`.

    Args:
        path: the ``.safetensors`` file.
        device: where to put the head (it is returned in eval mode).

    Returns:
        ``(head, metadata)``.

    Raises:
        CheckpointError: missing/corrupt file, invalid metadata, or weights that do not
            match the architecture the metadata describes.
    """
    path = Path(path)
    meta = read_head_metadata(path)
    kwargs = dict(meta.head_config)
    kwargs.update(in_dim=meta.in_dim, hidden=meta.hidden, parameterization=meta.parameterization)
    try:
        head = UncertaintyHead(**kwargs)
    except (TypeError, ValueError, NotImplementedError) as err:
        raise CheckpointError(f"{path}: cannot build head from metadata {kwargs}: {err}") from err
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: cannot read weights: {err}") from err
    try:
        head.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not match the head architecture: {err}") from err
    head.to(device).eval()
    return head, meta


__all__ = [
    "FORMAT_VERSION",
    "METADATA_KEY",
    "HeadMetadata",
    "ScaleConvention",
    "load_head",
    "read_head_metadata",
    "save_head",
]
