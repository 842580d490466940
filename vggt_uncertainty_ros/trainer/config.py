"""Trainer configuration: frozen dataclasses merged from defaults, YAML and ``--set`` overrides.

The merge order is *defaults* < *YAML file* < *command-line overrides* (``section.key=value``,
the value parsed as YAML). Unknown sections or keys, and values of the wrong type, raise
:class:`~vggt_uncertainty_ros.errors.ConfigError` naming the offending key. The merged
configuration is written to the run directory together with the git SHA of the code
(:func:`save_run_config`), so a run can be reproduced and resumed.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import subprocess
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vggt_uncertainty_ros.errors import ConfigError
from vggt_uncertainty_ros.head.losses import LossConfig
from vggt_uncertainty_ros.model.spec import BackboneSpec

_log = logging.getLogger(__name__)

PARAMETERIZATIONS = ("log_var", "sqrt_info")
INPUT_FEATURES = ("camera_features", "camera_trunk_features")
SCALE_CONVENTIONS = ("vggt", "metric", "relative")
SEQUENCE_FORMATS = ("tum", "ros1", "ros2", "ros2-mcap")


@dataclass(frozen=True)
class SequenceSpec:
    """One input sequence, read with :func:`vggt_uncertainty_ros.data.open_sequence`.

    Attributes:
        path: TUM folder, ROS 1 ``.bag``, ROS 2 bag directory or ``.mcap`` file.
        gt_path: ground-truth TUM trajectory (``T_world_cam``, metres) when the sequence does
            not carry it itself; ``None`` lets the reader find it.
        image_topic: image topic of a bag; ``None`` uses the reader's default.
    """

    path: str = ""
    gt_path: str | None = None
    image_topic: str | None = None


@dataclass(frozen=True)
class SyntheticConfig:
    """Synthetic sequences generated with ``data.synth.generate`` and read back from disk.

    Attributes:
        train: number of training sequences (seeds ``seed``, ``seed+1``, ...).
        val: number of validation sequences (seeds after the training ones).
        n_frames: frames per sequence.
        seed: seed of the first sequence.
        format: which written format is read back (``tum``, ``ros1``, ``ros2``, ``ros2-mcap``).
        width: image width, pixels.
        height: image height, pixels.
    """

    train: int = 0
    val: int = 0
    n_frames: int = 24
    seed: int = 0
    format: str = "tum"
    width: int = 160
    height: int = 120


@dataclass(frozen=True)
class DataConfig:
    """Which sequences train and which validate; the split is always by sequence.

    Attributes:
        train: training sequences.
        val: held-out validation sequences. When empty, the last ``val_count`` of ``train``
            (after a seeded shuffle) are held out instead.
        test: held-out test sequences, never used for training, selection or recalibration:
            after training, the selected head is recalibrated on ``val`` and evaluated on each
            test sequence (``test_metrics.json``, block-bootstrap intervals).
        val_count: sequences moved from ``train`` to validation when ``val`` is empty.
        synthetic: synthetic sequences added to both lists.
        manifest: a dataset manifest (YAML/JSON, see :mod:`vggt_uncertainty_ros.data.manifest`);
            its ``train`` sequences join ``train`` and its ``val`` ones join ``val`` (its
            ``test`` ones are left to the evaluator). Empty: none.
    """

    train: tuple[SequenceSpec, ...] = ()
    val: tuple[SequenceSpec, ...] = ()
    test: tuple[SequenceSpec, ...] = ()
    val_count: int = 1
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    manifest: str = ""


@dataclass(frozen=True)
class WindowSamplingConfig:
    """Window sampling, mirrored onto :class:`vggt_uncertainty_ros.data.WindowConfig`.

    Attributes:
        size: frames per window (frame 0 is the reference and carries no loss).
        stride: frames between the starts of consecutive windows.
        keyframe_every: keep every n-th frame of the stream.
        min_keyframe_gap_s: minimum time between kept frames, seconds.
        max_windows_per_sequence: cap on windows taken from one sequence (0: no cap).
    """

    size: int = 8
    stride: int = 4
    keyframe_every: int = 1
    min_keyframe_gap_s: float = 0.0
    max_windows_per_sequence: int = 0


@dataclass(frozen=True)
class HeadConfig:
    """The trainable uncertainty head.

    Attributes:
        parameterization: ``log_var`` (head outputs log σ², clamp [-20, 20]) or ``sqrt_info``
            (softplus + eps √information, clamps 200 rad⁻¹ / 100 unit⁻¹), kept for comparison.
        input_feature: ``camera_features`` (aggregator's last camera token) or
            ``camera_trunk_features`` (camera head trunk at its last refinement).
        hidden: hidden width of the MLP.
        scale_convention: ``vggt`` (translation log-variance in VGGT units, converted with
            ``+ 2 log s`` before the loss), ``metric`` (already in metres) or ``relative``
            (σ_trans relative to the window's predicted motion, converted with
            ``+ 2 log mean_{i>0} ‖s·t_pred_i‖``; needs no ground truth at run time).
    """

    parameterization: str = "log_var"
    input_feature: str = "camera_features"
    hidden: int = 1024
    scale_convention: str = "vggt"


@dataclass(frozen=True)
class OptimConfig:
    """AdamW and the calibration-driven learning-rate drop.

    Attributes:
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        grad_clip: max gradient norm (0: no clipping).
        lr_drop: divide the learning rate by ``lr_drop_factor`` once validation d² of both
            blocks comes within ``lr_drop_tol`` of 3 (at most ``lr_drop_max`` times).
        lr_drop_factor: divisor of one drop.
        lr_drop_tol: |d² - 3| below which a drop happens.
        lr_drop_max: maximum number of drops.
    """

    lr: float = 1e-4
    weight_decay: float = 0.01
    grad_clip: float = 0.0
    lr_drop: bool = False
    lr_drop_factor: float = 10.0
    lr_drop_tol: float = 0.5
    lr_drop_max: int = 1


@dataclass(frozen=True)
class TrainLoopConfig:
    """Iterations, batching, validation, checkpoints and early stopping.

    Attributes:
        iterations: optimizer steps of the whole run.
        batch_size: windows per step.
        seed: seeds head initialisation and batch sampling.
        log_every: steps between training-metric log lines.
        val_every: steps between validations (and ``best``/``last`` checkpoints).
        early_stop: stop once validation calibration stays near 3 for ``early_stop_patience``
            validations (score below ``early_stop_tol``).
        early_stop_tol: calibration score (|d²_rot-3| + |d²_trans-3|) that counts as settled.
        early_stop_patience: consecutive settled validations before stopping.
        select_after: first step whose validation may be selected as ``best`` (0: 20 % of
            ``iterations``); earlier heads are barely trained and must not be selected.
        recalibrate: after training, fit per-block variance factors of the selected head on
            the validation sequences (robust median rule) and write
            ``checkpoints/best_recalibrated.safetensors`` (needs held-out validation).
        stop_after: end an invocation after that many steps done in it, saving the resumable
            state (0: never); for time-limited jobs (each ``--resume`` does that many more).
        threads: torch CPU threads (0: leave torch's default).
    """

    iterations: int = 500
    batch_size: int = 8
    seed: int = 0
    log_every: int = 10
    val_every: int = 50
    early_stop: bool = False
    early_stop_tol: float = 0.5
    early_stop_patience: int = 3
    select_after: int = 0
    recalibrate: bool = True
    stop_after: int = 0
    threads: int = 0


@dataclass(frozen=True)
class OutputConfig:
    """Where a run writes.

    Attributes:
        run_dir: run directory (config, logs, checkpoints, state).
        cache_dir: backbone feature cache shared between runs.
        tensorboard: write TensorBoard event files under ``run_dir/tensorboard``.
        wandb: also log to Weights & Biases (only if ``wandb`` is importable).
        wandb_mode: ``offline`` (default) or ``online``.
        wandb_project: Weights & Biases project name.
    """

    run_dir: str = "runs/train"
    cache_dir: str = "runs/cache"
    tensorboard: bool = True
    wandb: bool = False
    wandb_mode: str = "offline"
    wandb_project: str = "vggt-uncertainty"


@dataclass(frozen=True)
class TrainConfig:
    """The whole trainer configuration (sections mirror ``config/train.yaml``)."""

    data: DataConfig = field(default_factory=DataConfig)
    window: WindowSamplingConfig = field(default_factory=WindowSamplingConfig)
    backbone: BackboneSpec = field(default_factory=BackboneSpec)
    head: HeadConfig = field(default_factory=HeadConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainLoopConfig = field(default_factory=TrainLoopConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists), suitable for YAML/JSON."""
        return _to_plain(dataclasses.asdict(self))

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with dotted keys replaced, e.g. ``cfg.replace(**{"optim.lr": 1e-3})``."""
        return from_dict(_merge(self.to_dict(), _dotted_to_nested(changes)))


def _to_plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value


_CHOICES: dict[str, tuple[str, ...]] = {
    "head.parameterization": PARAMETERIZATIONS,
    "head.input_feature": INPUT_FEATURES,
    "head.scale_convention": SCALE_CONVENTIONS,
    "data.synthetic.format": SEQUENCE_FORMATS,
    "output.wandb_mode": ("offline", "online", "disabled"),
}

_POSITIVE: tuple[str, ...] = (
    "window.size",
    "window.stride",
    "window.keyframe_every",
    "head.hidden",
    "optim.lr",
    "optim.lr_drop_factor",
    "train.iterations",
    "train.batch_size",
    "train.log_every",
    "train.val_every",
    "train.early_stop_patience",
    "data.synthetic.n_frames",
    "data.synthetic.width",
    "data.synthetic.height",
)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check ``value`` against the type ``hint`` and convert it (lists to tuples, int to float)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: {value!r} matches none of {hint}")
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            item_hints = [args[0]] * len(value)
        elif len(value) != len(args):
            raise ConfigError(f"{key}: expected a list of {len(args)} values, got {value!r}")
        else:
            item_hints = list(args)
        return tuple(_coerce(v, h, f"{key}[{i}]") for i, (v, h) in enumerate(zip(value, item_hints)))
    if dataclasses.is_dataclass(hint):
        if hint is SequenceSpec and isinstance(value, str):
            value = {"path": value}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__} {value!r}")
        return _build(hint, value, key)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str):  # PyYAML (YAML 1.1) reads "1e-4" as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {type(value).__name__} {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {hint}")  # pragma: no cover - schema bug


def _build(cls: type, values: Mapping[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        where = f"section {prefix!r}" if prefix else "top level"
        raise ConfigError(f"unknown key(s) {unknown} in {where}; known: {sorted(names)}")
    kwargs = {}
    for name, value in values.items():
        key = f"{prefix}.{name}" if prefix else name
        kwargs[name] = _coerce(value, hints[name], key)
    return cls(**kwargs)


def _validate(cfg: TrainConfig) -> None:
    flat = _flatten(cfg.to_dict())
    for key, choices in _CHOICES.items():
        if flat[key] not in choices:
            raise ConfigError(f"{key}: {flat[key]!r} is not one of {list(choices)}")
    for key in _POSITIVE:
        if not flat[key] > 0:
            raise ConfigError(f"{key}: must be > 0, got {flat[key]!r}")
    if cfg.window.size < 2:
        raise ConfigError(f"window.size: a window needs at least 2 frames, got {cfg.window.size}")
    for key in ("loss.prior_alpha", "loss.beta_nll", "loss.min_motion_m", "optim.weight_decay", "optim.grad_clip"):
        if flat[key] < 0:
            raise ConfigError(f"{key}: must be >= 0, got {flat[key]!r}")
    for key in ("loss.motion_weight_bounds", "loss.log_var_bounds"):
        lo, hi = flat[key]
        if not lo < hi:
            raise ConfigError(f"{key}: needs low < high, got {flat[key]!r}")
    if not cfg.data.train and cfg.data.synthetic.train == 0 and not cfg.data.manifest:
        raise ConfigError(
            "data: no training sequences (data.train is empty, data.synthetic.train is 0 and no data.manifest)"
        )


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, Mapping):
            out.update(_flatten(v, key))
        else:
            out[key] = v
    return out


def _merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in update.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _dotted_to_nested(changes: Mapping[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for dotted, value in changes.items():
        parts = dotted.split(".")
        if not all(parts):
            raise ConfigError(f"override key {dotted!r} is malformed")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override key {dotted!r} conflicts with another override")
        node[parts[-1]] = value
    return nested


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """Parse ``["optim.lr=1e-3", "head.parameterization=sqrt_info"]`` into dotted key → value.

    Values are parsed as YAML scalars/lists (``true``, ``1e-3``, ``[a, b]``); a value that YAML
    cannot parse is kept as a string.

    Raises:
        ConfigError: an item lacks ``=``.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form section.key=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        out[key.strip()] = value
    return out


def from_dict(values: Mapping[str, Any]) -> TrainConfig:
    """Build and validate a :class:`TrainConfig` from a (partial) nested dict over the defaults.

    Raises:
        ConfigError: unknown keys, wrong types or invalid values.
    """
    merged = _merge(_to_plain(dataclasses.asdict(TrainConfig())), values)
    cfg = _build(TrainConfig, merged, "")
    _validate(cfg)
    return cfg


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ConfigError(f"config file {path} does not exist") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"config file {path} must hold a mapping at top level")
    # run directories store the config next to bookkeeping keys
    return {k: v for k, v in data.items() if k != "_run"}


def load_config(path: str | Path | None = None, overrides: Sequence[str] | Mapping[str, Any] = ()) -> TrainConfig:
    """Defaults, then the YAML file at ``path`` (if any), then ``overrides``.

    Args:
        path: YAML file with any subset of the sections of :class:`TrainConfig`.
        overrides: ``["section.key=value", ...]`` strings or a dotted-key mapping.

    Raises:
        ConfigError: the file is missing or malformed, or a key/value is invalid (the message
            names the key and, for file problems, the file).
    """
    values: dict[str, Any] = _read_yaml(Path(path)) if path is not None else {}
    if not isinstance(overrides, Mapping):
        overrides = parse_overrides(overrides)
    values = _merge(values, _dotted_to_nested(overrides))
    try:
        return from_dict(values)
    except ConfigError as err:
        sources = ([str(path)] if path is not None else []) + (["--set overrides"] if overrides else [])
        raise ConfigError(f"{err} (from {' + '.join(sources) or 'defaults'})") from err


def git_sha(repo_dir: str | Path | None = None) -> str:
    """SHA of the code's git checkout, with ``-dirty`` when it has local changes, else ``unknown``."""
    where = Path(repo_dir) if repo_dir is not None else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


def save_run_config(cfg: TrainConfig, run_dir: str | Path) -> Path:
    """Write ``run_dir/config.yaml``: the merged config plus a ``_run`` block (git SHA, time).

    The file loads back with :func:`load_config` (the ``_run`` block is ignored).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    doc = cfg.to_dict()
    doc["_run"] = {
        "git_sha": git_sha(),
        "written_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    path = run_dir / "config.yaml"
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    tmp.replace(path)
    return path
