"""Evaluator configuration: one frozen dataclass, validated on construction."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from vggt_uncertainty_ros.errors import ConfigError
from vggt_uncertainty_ros.model.spec import BackboneSpec

__all__ = ["DEFAULT_PARAMS_YAML", "EvalConfig", "ScaleMode", "SourceKind"]

#: the node's parameter file in a source checkout (windowing rule shared with the node).
DEFAULT_PARAMS_YAML = Path(__file__).resolve().parents[2] / "config" / "params.yaml"


class SourceKind(str, Enum):
    """Where the evaluated relative poses and covariances come from."""

    RUN_MODEL = "run-model"  #: backbone + head run offline on the images
    POSES_TOPIC = "poses-topic"  #: recorded ``PoseWithCovarianceStamped`` messages of the node


class ScaleMode(str, Enum):
    """How the monocular scale of the evaluated translations is handled.

    * ``per-window-gt``: the original analysis' protocol. Each window's predicted translation is
      multiplied by its least-squares scale ``s*`` against ground truth (``geometry.fit_scale``)
      and σ_trans by the same ``s*``: residuals, σ, trajectory and pose graph are in metres.
    * ``none``: the node's default output, taken as published (VGGT's normalised units). The
      trajectory and the pose graph chain the measurements without any ground-truth scale
      (Sim(3) alignment absorbs one global scale only). For calibration the ground-truth
      translation is expressed in the window's unit by dividing it by the same ``s*``, so
      residuals and σ_trans are in VGGT units; d² equals that of ``per-window-gt``.
    """

    PER_WINDOW_GT = "per-window-gt"
    NONE = "none"


@dataclass(frozen=True)
class EvalConfig:
    """Everything :func:`vggt_uncertainty_ros.evaluate.evaluate` needs.

    Attributes:
        data: TUM folder, ROS 1 ``.bag`` or ROS 2 bag (directory or ``.mcap``).
        out_dir: output folder (created).
        source: ``run-model`` or ``poses-topic``.
        gt: optional TUM ``groundtruth.txt`` (``T_world_cam``, metres); else the data's own.
        backbone: the backbone settings (``run-model``): weights, device, dtype, preprocessing.
        head: head checkpoint (safetensors); None = constant σ from ``sigma_rot_rad``/``sigma_trans``.
        params: the node's ``params.yaml`` (window size, stride, keyframe rule); None = default.
        poses_topic: topic of the recorded relative poses (``poses-topic``).
        image_topic: image topic of a bag; None = the reader's default.
        scale_mode: see :class:`ScaleMode`.
        sigma_rot_rad: constant rotation σ (rad) used without a head.
        sigma_trans: constant translation σ without a head, in the backbone's (VGGT) units;
            it is scaled with the translation like a head's σ. Both defaults are the node's
            (``constant_sigma_rot_rad``, ``constant_sigma_trans`` of config/params.yaml).
        max_dt_s: largest stamp difference (s) to associate a frame with ground truth.
        gt_gap_s: a ground-truth interval longer than this (s) counts as a gap; None = 5× the
            median interval.
        huber_k: Huber threshold (whitened units) of the robust pose-graph runs.
        min_motion_m: ground-truth translation (m) a frame needs to enter the scale fit; a
            window with fewer than two such frames has no translation to score (scale protocol).
        max_frames: stop after this many frames (None = all).
        plots: write the PNG plots and report.md.
    """

    data: Path
    out_dir: Path
    source: SourceKind = SourceKind.RUN_MODEL
    gt: Path | None = None
    backbone: BackboneSpec = field(default_factory=BackboneSpec)
    head: Path | None = None
    params: Path | None = None
    poses_topic: str | None = None
    image_topic: str | None = None
    scale_mode: ScaleMode = ScaleMode.PER_WINDOW_GT
    sigma_rot_rad: float = 0.05
    sigma_trans: float = 0.1
    max_dt_s: float = 0.02
    gt_gap_s: float | None = None
    huber_k: float = 1.345
    min_motion_m: float = 0.02
    max_frames: int | None = None
    plots: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", Path(self.data))
        object.__setattr__(self, "out_dir", Path(self.out_dir))
        for name in ("gt", "head", "params"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value))
        try:
            object.__setattr__(self, "source", SourceKind(self.source))
            object.__setattr__(self, "scale_mode", ScaleMode(self.scale_mode))
        except ValueError as err:
            raise ConfigError(str(err)) from err
        if self.source is SourceKind.POSES_TOPIC and not self.poses_topic:
            raise ConfigError("source 'poses-topic' needs poses_topic (the recorded relative-pose topic)")
        if self.source is SourceKind.RUN_MODEL and self.poses_topic:
            raise ConfigError("poses_topic is only used with source 'poses-topic'")
        for name in ("sigma_rot_rad", "sigma_trans", "max_dt_s", "huber_k", "min_motion_m"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.gt_gap_s is not None and not self.gt_gap_s > 0:
            raise ConfigError(f"gt_gap_s must be positive, got {self.gt_gap_s}")
        if self.max_frames is not None and self.max_frames < 2:
            raise ConfigError(f"max_frames must be at least 2, got {self.max_frames}")
        if not self.data.exists():
            raise ConfigError(f"data path {self.data} does not exist")
        for name in ("gt", "head", "params"):
            value = getattr(self, name)
            if value is not None and not value.exists():
                raise ConfigError(f"{name} file {value} does not exist")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (paths as strings, enums as values)."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, Path):
                out[key] = str(value)
            elif isinstance(value, Enum):
                out[key] = value.value
        return out
