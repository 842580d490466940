"""Training data: which sequences train and validate, and the tensors a training step reads.

Sequences come from TUM folders, ROS 1 bags, ROS 2 bags (read by
:func:`vggt_uncertainty_ros.data.open_sequence`) and synthetic sequences written by
:func:`vggt_uncertainty_ros.data.synth.generate`. The train/validation split is always by
sequence, so no window of a validation sequence is ever seen in training.

Because the backbone is frozen, residuals are fixed per window: :func:`build_window_set`
computes them once from the cached pose encodings and ground truth (per-window scale fit,
residual ``r = Log(inv(T_gt) @ T_pred)`` in our ``[rot, trans]`` order, see
docs/ARCHITECTURE.md) so a training step only runs the head.
"""

from __future__ import annotations

import logging
import random
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vggt_uncertainty_ros.data import synth
from vggt_uncertainty_ros.data.manifest import ManifestEntry, load_manifest
from vggt_uncertainty_ros.errors import DataError
from vggt_uncertainty_ros.geometry import fit_scale, pose_residual
from vggt_uncertainty_ros.trainer.cache import CachedSequence
from vggt_uncertainty_ros.trainer.config import DataConfig, SequenceSpec, SyntheticConfig

_log = logging.getLogger(__name__)

_SYNTH_DONE = ".complete"


def synthetic_root(cache_dir: str | Path, cfg: SyntheticConfig, seed: int) -> Path:
    """Directory of the synthetic sequence with ``seed`` (stable, so the feature cache hits)."""
    return Path(cache_dir) / "synthetic" / f"seed{seed:05d}_n{cfg.n_frames}_{cfg.width}x{cfg.height}_{cfg.format}"


def generate_synthetic(cfg: SyntheticConfig, cache_dir: str | Path) -> tuple[list[SequenceSpec], list[SequenceSpec]]:
    """Write (once) the configured synthetic sequences and return (train, val) specs.

    Training sequences use seeds ``cfg.seed … cfg.seed + cfg.train - 1``, validation ones the
    following ``cfg.val`` seeds. A sequence is reused when its completion marker exists, so
    its files' mtimes (part of the feature-cache key) stay put between runs.
    """
    specs: list[SequenceSpec] = []
    for k in range(cfg.train + cfg.val):
        seed = cfg.seed + k
        root = synthetic_root(cache_dir, cfg, seed)
        marker = root / _SYNTH_DONE
        if not marker.exists():
            if root.exists():  # an interrupted earlier attempt
                shutil.rmtree(root)
            root.mkdir(parents=True)
            _log.info(
                "writing synthetic sequence seed=%d (%d frames, %dx%d) to %s",
                seed,
                cfg.n_frames,
                cfg.width,
                cfg.height,
                root,
            )
            result = synth.generate(
                root, seed=seed, n_frames=cfg.n_frames, formats=(cfg.format,), width=cfg.width, height=cfg.height
            )
            marker.write_text(Path(result.paths[cfg.format]).relative_to(root).as_posix() + "\n", encoding="utf-8")
        specs.append(SequenceSpec(path=str(root / marker.read_text(encoding="utf-8").strip())))
    return specs[: cfg.train], specs[cfg.train :]


def manifest_spec(entry: ManifestEntry) -> SequenceSpec:
    """The trainer's :class:`SequenceSpec` of one dataset-manifest entry."""
    return SequenceSpec(
        path=str(entry.path), gt_path=str(entry.gt_path) if entry.gt_path else None, image_topic=entry.image_topic
    )


def split_sequences(cfg: DataConfig, cache_dir: str | Path, seed: int) -> tuple[list[SequenceSpec], list[SequenceSpec]]:
    """Resolve the training and validation sequences (split by sequence, never by window).

    Sequences listed in ``cfg.manifest`` join the lists by role. When no validation
    sequence is listed (neither in ``cfg.val`` nor in the manifest), ``cfg.val_count`` of the
    listed training sequences, chosen by a seeded shuffle, are held out (only if at least one
    training sequence remains).

    Raises:
        DataError: a sequence appears in both lists, or no training sequence remains.
    """
    train = list(cfg.train)
    val = list(cfg.val)
    if cfg.manifest:
        manifest = load_manifest(cfg.manifest)
        train += [manifest_spec(e) for e in manifest.by_role("train")]
        val += [manifest_spec(e) for e in manifest.by_role("val")]
    if not val and cfg.val_count > 0 and len(train) > cfg.val_count:
        order = list(range(len(train)))
        random.Random(seed).shuffle(order)
        held = set(order[: cfg.val_count])
        val = [s for i, s in enumerate(train) if i in held]
        train = [s for i, s in enumerate(train) if i not in held]
    if cfg.synthetic.train + cfg.synthetic.val:
        syn_train, syn_val = generate_synthetic(cfg.synthetic, cache_dir)
        train += syn_train
        val += syn_val

    def paths(specs: Sequence[SequenceSpec]) -> set[str]:
        return {str(Path(s.path).resolve()) for s in specs}

    overlap = paths(train) & paths(val)
    if overlap:
        raise DataError(f"sequences in both training and validation: {sorted(overlap)}")
    leaked = (paths(train) | paths(val)) & paths(cfg.test)
    if leaked:
        raise DataError(f"test sequences also used for training or validation: {sorted(leaked)}")
    if not train:
        raise DataError("no training sequence")
    return train, val


@dataclass
class WindowSet:
    """Everything a head step needs about a set of windows (``W`` windows of ``S`` frames).

    Attributes:
        features: ``[W, S, D]`` float32 head input.
        residual: ``[W, S, 6]`` float32 ``r = Log(inv(T_gt) @ T_pred)`` after the per-window
            scale fit, order (rot rad, trans m), in ground-truth camera frame i; zero at frame 0.
        log_scale: ``[W]`` float32 log of the fitted scale ``s`` (metres per VGGT unit).
        t_gt: ``[W, S, 3]`` float32 ground-truth translation of frame i in frame 0, metres.
        t_pred_scaled: ``[W, S, 3]`` float32 predicted translation times ``s``, metres.
        n_valid: ``[W]`` int64 frames that entered the scale fit.
        names: sequence of each window (for logs).
        trans_ok: ``[W]`` bool, the window has a trustworthy scale (scale protocol); where
            False the translation residual is stored as 0 and carries no loss or metric.
        log_motion: ``[W]`` float32 log of the window's motion ``mean_{i>0} ‖s·t_pred_i‖``
            (metres), the unit of a ``relative`` head's σ_trans.
    """

    features: torch.Tensor
    residual: torch.Tensor
    log_scale: torch.Tensor
    t_gt: torch.Tensor
    t_pred_scaled: torch.Tensor
    n_valid: torch.Tensor
    names: list[str]
    trans_ok: torch.Tensor | None = None
    log_motion: torch.Tensor | None = None

    @property
    def n_windows(self) -> int:
        """Number of windows ``W``."""
        return int(self.features.shape[0])

    @property
    def window_size(self) -> int:
        """Frames per window ``S``."""
        return int(self.features.shape[1])


def window_residuals(seq: CachedSequence, min_motion_m: float, keep: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-window scale fit and residuals of one cached sequence (float64 numpy).

    ``keep`` (``[W]`` bool) selects the windows to score (default all); windows with an
    invalid frame (NaN pose) must be left out by it.

    Scale protocol: windows whose fit is not trustworthy (``geometry.fit_scale``'s ``ok``
    False: low motion, zero prediction, out of range) keep their rotation residual; their
    translation residual is set to 0 and ``scale_ok`` is False, so it carries no loss.

    Returns:
        ``residual [W,S,6]`` (rot rad, trans m), ``scale [W]``, ``n_valid [W]``,
        ``t_gt [W,S,3]`` (m), ``t_pred_scaled [W,S,3]`` (m), ``scale_ok [W]`` bool,
        ``scale_reason [W]`` int (index into ``geometry.SCALE_REASONS``).
    """
    T_pred = np.array(seq.T_0_i_pred, dtype=np.float64)
    T_gt = np.asarray(seq.T_0_i_gt)
    if keep is not None:
        T_pred, T_gt = T_pred[keep], T_gt[keep]
    fit = fit_scale(T_gt[..., :3, 3], T_pred[..., :3, 3], min_motion_m=min_motion_m)
    scale = np.asarray(fit.scale, dtype=np.float64)
    T_pred[..., :3, 3] *= scale[:, None, None]
    residual = np.asarray(pose_residual(T_gt, T_pred), dtype=np.float64)
    residual[:, 0] = 0.0  # frame 0 is the reference: T_0_0 = I on both sides
    ok = np.asarray(fit.ok, dtype=bool)
    residual[~ok, :, 3:] = 0.0  # not a measurement: masked (see WindowSet.trans_ok)
    return {
        "scale_ok": ok,
        "scale_reason": np.asarray(fit.reason, dtype=np.int64),
        "residual": residual,
        "scale": scale,
        "n_valid": np.asarray(fit.n_valid, dtype=np.int64),
        "t_gt": T_gt[..., :3, 3],
        "t_pred_scaled": T_pred[..., :3, 3],
    }


def build_window_set(sequences: Sequence[CachedSequence], input_feature: str, min_motion_m: float) -> WindowSet:
    """Concatenate cached sequences into one :class:`WindowSet` (CPU tensors).

    Raises:
        DataError: ``sequences`` is empty or feature sizes differ.
    """
    if not sequences:
        raise DataError("no cached sequence to build a window set from")
    parts, feats = [], []
    for seq in sequences:
        # windows where the backbone lost a frame carry no usable residual: left out
        keep = np.asarray(seq.valid, dtype=bool).all(axis=1)
        if not keep.all():
            _log.warning(
                "%s: %d of %d windows have frames without a backbone estimate; left out",
                seq.name,
                int((~keep).sum()),
                keep.size,
            )
        parts.append(window_residuals(seq, min_motion_m, keep))
        feats.append(seq.features(input_feature)[keep])
    if not sum(f.shape[0] for f in feats):
        raise DataError(
            "no window left: every window has a frame the backbone could not estimate "
            "(longer sequences, more texture or a higher frame rate give the backbone overlap)"
        )
    dims = {f.shape[1:] for f in feats}
    if len(dims) != 1:
        raise DataError(f"cached sequences disagree on window/feature shape: {sorted(dims)}")
    from vggt_uncertainty_ros.geometry import SCALE_REASONS, window_motion

    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    names = [seq.name for seq, f in zip(sequences, feats) for _ in range(f.shape[0])]
    bad = cat["scale_reason"][~cat["scale_ok"]]
    if bad.size:
        counts = {SCALE_REASONS[k]: int(np.sum(bad == k)) for k in np.unique(bad)}
        _log.info(
            "scale protocol: %d of %d windows have no trustworthy scale (%s); their translation is masked",
            bad.size,
            len(names),
            ", ".join(f"{k} {v}" for k, v in counts.items()),
        )
    return WindowSet(
        features=torch.from_numpy(np.concatenate(feats)).float(),
        residual=torch.from_numpy(cat["residual"]).float(),
        log_scale=torch.from_numpy(np.log(cat["scale"])).float(),
        t_gt=torch.from_numpy(cat["t_gt"]).float(),
        t_pred_scaled=torch.from_numpy(cat["t_pred_scaled"]).float(),
        n_valid=torch.from_numpy(cat["n_valid"]),
        names=names,
        trans_ok=torch.from_numpy(cat["scale_ok"]),
        log_motion=torch.from_numpy(np.log(np.asarray(window_motion(cat["t_pred_scaled"])))).float(),
    )
