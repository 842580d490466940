"""The unseen-sequence protocol on a backbone that runs per window (e.g. ``geometric``).

Shared by ``benchmarks/unseen.py`` (``vggt-uncertainty bench-unseen``) and the demo:

1. :func:`score_sequence`: every window of a sequence (the node's windowing rule) through the
   backbone; per frame i > 0 the residual ``r = Log(inv(T_gt) T_pred)`` (rot rad, trans m,
   ground-truth camera frame i) after the per-window scale fit to ground truth (the
   evaluator's ``per-window-gt`` = what the node's ``odometry`` scale source applies).
   A second *scale class*, ``odometry``, scores the same predictions under the fit the node's
   ``odometry`` scale source would make against a simulated odometry (ground truth with a
   3 % per-window scale error and 3 mm position noise, :data:`ODOMETRY_NOISE`).
   Masks, all counted: frames the backbone flags invalid score nothing; translation is scored
   only in windows with a trustworthy scale (scale protocol) and frames whose translation the
   backbone could observe.
2. :func:`train_head`: a ``relative``-convention head (σ_trans relative to the window's own
   motion, no ground truth needed at run time) on training sequences, validation-selected
   with the trainer's rule (no selection before 20 % of the steps).
3. :func:`predict_log_var`: the head's log σ² in metres, optionally recalibrated.
4. :func:`pgo_ate`: pose graph of one sequence under uniform, tuned-constant (the sequence's
   own per-component residual variance: an oracle constant) and predicted weights; frames
   whose translation is not scored take the simulated odometry's translation (every scheme
   alike); ATE RMSE in metres (Sim(3)-aligned, evo).

Orders and units follow docs/ARCHITECTURE.md: ``[rot (3), trans (3)]``; translation of
``T_pred`` in backbone units until multiplied by the window scale ``s``.
"""

from __future__ import annotations

import copy
import logging
import math
import multiprocessing
import shutil
import signal
import time
import zlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vggt_uncertainty_ros.calibration.bootstrap import default_block_length, unseen_summary
from vggt_uncertainty_ros.calibration.recalibration import (
    METHODS,
    Recalibration,
    apply_recalibration,
    block_factors_summary,
    fit_sequences,
)
from vggt_uncertainty_ros.data import WindowBuilder, WindowConfig, open_sequence
from vggt_uncertainty_ros.data.synth import generate, intrinsics_for
from vggt_uncertainty_ros.errors import ConfigError, DataError, EvaluationError
from vggt_uncertainty_ros.evaluate.graph import trajectory_metrics
from vggt_uncertainty_ros.evaluate.pgo import Constraint, chain_poses, optimize
from vggt_uncertainty_ros.geometry import (
    SCALE_REASONS,
    fit_scale,
    invert_transform,
    pose_residual,
    window_motion,
)
from vggt_uncertainty_ros.head import LossConfig, UncertaintyHead, pose_uncertainty_loss

_log = logging.getLogger(__name__)

__all__ = [
    "PlannedSequence",
    "ScoredSequence",
    "TrainedHead",
    "UnseenConfig",
    "jsonable",
    "run_unseen",
    "pgo_ate",
    "plan_sequences",
    "predict_log_var",
    "score_sequence",
    "summary_inputs",
    "synthesise_planned",
    "train_head",
]

#: Simulated odometry of the ``odometry`` scale class: position noise (m, per frame) and
#: per-window relative scale error (standard deviations).
ODOMETRY_NOISE = (0.003, 0.03)


@dataclass
class _ScaleClass:
    """Residuals of a sequence under another scale source (same frames, same predictions).

    Attributes:
        residual, trans_mask, log_motion: as in :class:`ScoredSequence`, under this scale.
        t_source: ``[W, S, 3]`` the scale source's own translation of ``T_0_i`` (m, camera
            frame 0 of the window; the simulated odometry), what the pose graph falls back on
            where the backbone's translation is not scored.
    """

    residual: np.ndarray
    trans_mask: np.ndarray
    log_motion: np.ndarray
    t_source: np.ndarray


@dataclass
class ScoredSequence:
    """One sequence's windows through a backbone, scored against ground truth.

    Attributes:
        name: sequence name.
        features: ``[W, S, D]`` float32 head input.
        residual: ``[W, S, 6]`` float64 (rot rad, trans m); 0 where not scored.
        rot_mask: ``[W, S]`` frames i > 0 with an estimated pose.
        trans_mask: ``[W, S]`` frames whose translation is scored (``rot_mask``, translation
            observable by the backbone, window scale trustworthy).
        log_motion: ``[W]`` log of ``mean_{i>0} ‖s·t_pred_i‖`` (m), the unit of a ``relative``
            head (same rule as :func:`geometry.window_motion` at run time, times ``s``).
        T_scaled: ``[W, S, 4, 4]`` predicted ``T_0_i`` with the translation times ``s``.
        stamps_ns: ``[W, S]`` image stamps.
        gt_world: ``{stamp: T_world_cam}`` ground truth of every windowed frame (m).
        odometry: the same frames under the ``odometry`` scale class (module docstring).
        counts: ``windows``, ``frames``, ``frames_invalid``, ``frames_trans_unobservable``,
            ``windows_scale_<reason>``, ``windows_backbone_error`` (dropped: the backbone raised).
    """

    name: str
    features: np.ndarray
    residual: np.ndarray
    rot_mask: np.ndarray
    trans_mask: np.ndarray
    log_motion: np.ndarray
    T_scaled: np.ndarray
    stamps_ns: np.ndarray
    gt_world: dict[int, np.ndarray]
    counts: dict[str, int] = field(default_factory=dict)
    odometry: _ScaleClass | None = None

    @property
    def n_windows(self) -> int:
        """Number of windows ``W``."""
        return int(self.features.shape[0])


def score_sequence(
    backbone: Any,
    path: str | Path,
    window: WindowConfig,
    *,
    name: str | None = None,
    min_motion_m: float = 0.02,
    max_frames: int | None = None,
    camera_matrix: np.ndarray | None = None,
) -> ScoredSequence:
    """Run ``backbone.predict`` on every window of the sequence at ``path`` and score it.

    Args:
        backbone: has ``predict(images, frame_ids) -> WindowPrediction`` (``T_0_i [S,4,4]``
            NaN where invalid, ``features [S,D]``, ``valid [S]``, optional
            ``aux["translation_valid"] [S]``).
        path: a sequence with ground truth (TUM folder, bag).
        window: the node's windowing rule.
        name: name in reports (default: the path).
        min_motion_m: scale-fit motion threshold (frames with ‖t_gt‖ above it).
        max_frames: read at most this many frames.
        camera_matrix: ``[3, 3]`` K of the images (pixels), else the reader's when it has one;
            handed to backbones that take one (``set_camera_matrix``, as the node does with
            ``camera_info``).

    Raises:
        DataError: the sequence yields no window with ground truth.
    """
    builder: WindowBuilder = WindowBuilder(window)
    feats, T_pred, T_gt, stamps, valid, tvalid = [], [], [], [], [], []
    gt_world: dict[int, np.ndarray] = {}
    backbone_errors = 0
    with open_sequence(path) as reader:
        K = camera_matrix if camera_matrix is not None else reader.intrinsics
        if K is not None and hasattr(backbone, "set_camera_matrix"):
            backbone.set_camera_matrix(K)
        for k, frame in enumerate(reader.frames()):
            if max_frames is not None and k >= max_frames:
                break
            win = builder.push(frame, frame.stamp_ns)
            if win is None:
                continue
            frames = list(win.items)
            if any(f.T_world_cam is None for f in frames):
                continue
            try:
                pred = backbone.predict([f.image for f in frames], frame_ids=[f.stamp_ns for f in frames])
            except Exception as err:  # noqa: BLE001 (a backbone bug on one window: dropped and counted, not fatal)
                _log.warning(
                    "%s: window at %d ns dropped, backbone error: %s",
                    name or path,
                    frames[0].stamp_ns,
                    str(err).splitlines()[-1] if str(err) else type(err).__name__,
                )
                backbone_errors += 1
                continue
            Tw = np.stack([f.T_world_cam for f in frames])
            for f in frames:
                gt_world[int(f.stamp_ns)] = f.T_world_cam
            feats.append(np.asarray(pred.features, np.float32))
            T_pred.append(np.asarray(pred.T_0_i, np.float64))
            T_gt.append(invert_transform(Tw[0])[None] @ Tw)
            stamps.append(np.array([f.stamp_ns for f in frames], np.int64))
            valid.append(np.asarray(pred.valid, bool))
            tv = getattr(pred, "aux", {}).get("translation_valid")
            tvalid.append(np.asarray(pred.valid if tv is None else tv, bool))
    if not feats:
        raise DataError(f"{path}: no window with ground truth")
    feats_a, T_pred_a, T_gt_a = np.stack(feats), np.stack(T_pred), np.stack(T_gt)
    valid_a, tvalid_a, stamps_a = np.stack(valid), np.stack(tvalid), np.stack(stamps)
    W, S = valid_a.shape
    valid_a[:, 0] = True
    counts: Counter[str] = Counter(windows=W, frames=W * (S - 1), windows_backbone_error=backbone_errors)
    residual = np.zeros((W, S, 6))
    T_scaled = np.full_like(T_pred_a, np.nan)
    log_motion = np.zeros(W)
    rot_mask = valid_a.copy()
    rot_mask[:, 0] = False
    trans_mask = rot_mask & tvalid_a
    counts["frames_invalid"] = int((~valid_a[:, 1:]).sum())
    counts["frames_trans_unobservable"] = int((valid_a[:, 1:] & ~tvalid_a[:, 1:]).sum())
    rng = np.random.default_rng(zlib.crc32((name or str(path)).encode()))
    odom = _ScaleClass(np.zeros((W, S, 6)), np.zeros((W, S), bool), np.zeros(W), np.zeros((W, S, 3)))
    for w in range(W):
        # scale class "odometry": the fit the node's odometry scale source makes, against a
        # simulated odometry (ground truth with a per-window scale error and position noise)
        t_odom = T_gt_a[w, :, :3, 3] * (1.0 + rng.normal(0.0, ODOMETRY_NOISE[1])) + rng.normal(
            0.0, ODOMETRY_NOISE[0], (S, 3)
        )
        t_odom[0] = 0.0
        odom.t_source[w] = t_odom
        use_o = rot_mask[w] & tvalid_a[w]
        fit_o = fit_scale(t_odom[use_o], T_pred_a[w, use_o, :3, 3], min_motion_m=min_motion_m)
        T_o = T_pred_a[w].copy()
        T_o[:, :3, 3] *= float(fit_o.scale)
        T_o[0] = np.eye(4)
        good = rot_mask[w]
        odom.residual[w, good] = np.asarray(pose_residual(T_gt_a[w, good], T_o[good]))
        odom.trans_mask[w] = use_o & bool(fit_o.ok)
        odom.residual[w, ~odom.trans_mask[w], 3:] = 0.0
        odom.log_motion[w] = math.log(float(window_motion(T_o[:, :3, 3])))
        counts[f"odometry_windows_scale_{SCALE_REASONS[int(fit_o.reason)]}"] += 1

        use = trans_mask[w]
        fit = fit_scale(T_gt_a[w, use, :3, 3], T_pred_a[w, use, :3, 3], min_motion_m=min_motion_m)
        ok = bool(fit.ok)
        counts[f"windows_scale_{SCALE_REASONS[int(fit.reason)]}"] += 1
        s = float(fit.scale)
        T_scaled[w] = T_pred_a[w]
        T_scaled[w, :, :3, 3] *= s
        T_scaled[w, 0] = np.eye(4)
        good = rot_mask[w]
        residual[w, good] = np.asarray(pose_residual(T_gt_a[w, good], T_scaled[w, good]))
        if not ok:
            trans_mask[w] = False
        residual[w, ~trans_mask[w], 3:] = 0.0
        log_motion[w] = math.log(float(window_motion(T_scaled[w, :, :3, 3])))
    return ScoredSequence(
        name=name or str(path),
        features=feats_a,
        residual=residual,
        rot_mask=rot_mask,
        trans_mask=trans_mask,
        log_motion=log_motion,
        T_scaled=T_scaled,
        stamps_ns=stamps_a,
        gt_world=gt_world,
        counts=dict(counts),
        odometry=odom,
    )


def _cat(seqs: Sequence[ScoredSequence]) -> dict[str, torch.Tensor]:
    return {
        "features": torch.from_numpy(np.concatenate([s.features for s in seqs])).float(),
        "residual": torch.from_numpy(np.concatenate([s.residual for s in seqs])).float(),
        "rot_mask": torch.from_numpy(np.concatenate([s.rot_mask for s in seqs])),
        "trans_mask": torch.from_numpy(np.concatenate([s.trans_mask for s in seqs])),
        "log_motion": torch.from_numpy(np.concatenate([s.log_motion for s in seqs])).float(),
    }


def _log_var_m(head: UncertaintyHead, batch: Mapping[str, torch.Tensor], idx: Any = slice(None)) -> torch.Tensor:
    """``relative`` convention: log σ²_trans (m²) = head + 2 log(window motion in m)."""
    lv = head(batch["features"][idx])
    offset = torch.zeros_like(lv)
    offset[..., 3:] = 2.0 * batch["log_motion"][idx][:, None, None]
    return lv + offset


def _d2_means(head: UncertaintyHead, batch: Mapping[str, torch.Tensor]) -> tuple[float, float]:
    with torch.no_grad():
        lv = _log_var_m(head.eval(), batch).double()
    d2 = batch["residual"].double() ** 2 * torch.exp(-lv)
    rot = d2[..., :3].sum(-1)[batch["rot_mask"]]
    tr = d2[..., 3:].sum(-1)[batch["trans_mask"]]
    return (float(rot.mean()) if rot.numel() else math.nan, float(tr.mean()) if tr.numel() else math.nan)


@dataclass
class TrainedHead:
    """Result of :func:`train_head`: the selected head and its validation history."""

    head: UncertaintyHead
    best_step: int
    history: list[dict[str, float]]


def train_head(
    train: Sequence[ScoredSequence],
    val: Sequence[ScoredSequence],
    *,
    steps: int = 1500,
    batch_size: int = 32,
    lr: float = 1e-3,
    hidden: int = 64,
    seed: int = 0,
    val_every: int = 50,
    prior_alpha: float = 1e-4,
    progress: Callable[[int], None] | None = None,
) -> TrainedHead:
    """Train a ``relative`` head (AdamW, masked NLL) and select it on ``val``.

    Selection: lowest ``|d²_rot − 3| + |d²_trans − 3|`` on the validation sequences among
    validations at step ≥ 20 % of ``steps`` (the trainer's rule: an untrained head is never
    picked); the final step is always eligible.
    """
    torch.manual_seed(seed)
    tr, va = _cat(train), _cat(val)
    head = UncertaintyHead(in_dim=int(tr["features"].shape[-1]), hidden=hidden)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(seed)
    cfg = LossConfig(prior_alpha=prior_alpha, prior_sqrt_info0=1.0)
    n = int(tr["features"].shape[0])
    start = max(1, math.ceil(0.2 * steps))
    best: tuple[float, int, dict[str, Any]] = (math.inf, -1, {})
    history: list[dict[str, float]] = []
    for step in range(1, steps + 1):
        head.train()
        idx = torch.randint(n, (batch_size,), generator=gen)
        out = pose_uncertainty_loss(
            tr["residual"][idx],
            _log_var_m(head, tr, idx),
            config=cfg,
            mask=tr["rot_mask"][idx],
            trans_mask=tr["trans_mask"][idx],
        )
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        if progress is not None:
            progress(step)
        if step % val_every == 0 or step == steps:
            d2r, d2t = _d2_means(head, va)
            terms = [abs(x - 3.0) for x in (d2r, d2t) if math.isfinite(x)]
            score = sum(terms) if terms else math.inf
            history.append({"step": step, "d2_rot": d2r, "d2_trans": d2t, "score": score})
            if (step >= start or step == steps) and score < best[0]:
                best = (score, step, copy.deepcopy(head.state_dict()))
    if best[1] < 0:
        best = (math.inf, steps, copy.deepcopy(head.state_dict()))
    head.load_state_dict(best[2])
    head.eval()
    _log.info("head selected at step %d of %d (validation score %.3f)", best[1], steps, best[0])
    return TrainedHead(head=head, best_step=best[1], history=history)


def predict_log_var(
    head: UncertaintyHead, seq: ScoredSequence, recal: Recalibration | None = None, scale_class: str = "gt"
) -> np.ndarray:
    """log σ² ``[W, S, 6]`` in metres (rad², m²) of a ``relative`` head, optionally recalibrated.

    ``scale_class`` ``gt`` (per-window ground-truth fit) or ``odometry`` (the simulated
    odometry fit): the window motion that makes σ_trans metric comes from that scale.
    """
    batch = _cat([seq])
    if scale_class == "odometry":
        assert seq.odometry is not None
        batch["log_motion"] = torch.from_numpy(seq.odometry.log_motion).float()
    with torch.no_grad():
        lv = _log_var_m(head.eval(), batch).double().numpy()
    return apply_recalibration(lv, recal)


def summary_inputs(seq: ScoredSequence, log_var: np.ndarray, scale_class: str = "gt") -> dict[str, np.ndarray]:
    """Scored frames of ``seq`` in the form :func:`calibration.bootstrap.unseen_summary` reads."""
    m = seq.rot_mask
    win = np.broadcast_to(np.arange(seq.n_windows)[:, None], m.shape)
    src = seq.odometry if scale_class == "odometry" and seq.odometry is not None else seq
    return {"r": src.residual[m], "log_var": log_var[m], "window": win[m], "trans_valid": src.trans_mask[m]}


def pgo_ate(seq: ScoredSequence, log_var: np.ndarray, huber_k: float | None = None) -> dict[str, float | None]:
    """ATE RMSE (m) of the pose graph under uniform, tuned-constant and predicted weights.

    Constraints are the scored frames' ``T_0_i`` (metres, per-window scale). Where the
    backbone's translation is not scored (window without a trustworthy scale, translation
    unobservable) the constraint keeps its rotation and takes the simulated odometry's
    translation with that odometry's own variance (:func:`_odometry_trans_var`), the same in
    every scheme: the graph a robot with wheel odometry builds. Without it those frames carry no
    translation at all, the graph has free translational directions, and the ATE depends on
    where the optimiser happens to stop (measured: the same final error, ATE moved by up to
    19 % with tighter stopping tolerances). ``constant_tuned`` uses the sequence's own
    per-component residual variance (an oracle constant: the strongest constant).

    Raises:
        EvaluationError: ``seq`` has no odometry scale class (nothing bridges the gaps).
    """
    if seq.odometry is None:
        raise EvaluationError(f"{seq.name}: the pose graph needs the odometry scale class to bridge unscored frames")
    stamps = np.unique(seq.stamps_ns)
    node = {int(s): k for k, s in enumerate(stamps.tolist())}
    m = seq.rot_mask
    r = seq.residual
    tuned = np.concatenate(
        [
            np.mean(r[m][:, :3] ** 2, 0),
            np.mean(r[seq.trans_mask][:, 3:] ** 2, 0) if seq.trans_mask.any() else np.ones(3),
        ]
    )
    tuned = np.maximum(tuned, 1e-12)
    T_gt = np.stack([seq.gt_world[int(s)] for s in stamps])
    # the measurements once: (anchor, frame, T_0_i, predicted variance, odometry variance or None)
    meas = []
    for w in range(seq.n_windows):
        a = node[int(seq.stamps_ns[w, 0])]
        for i in np.flatnonzero(m[w]):
            T, bridge = seq.T_scaled[w, i], None
            if not seq.trans_mask[w, i]:
                T = T.copy()
                T[:3, 3] = seq.odometry.t_source[w, i]
                bridge = _odometry_trans_var(T[:3, 3])
            meas.append((a, node[int(seq.stamps_ns[w, i])], T, np.exp(log_var[w, i]), bridge))
    out: dict[str, float | None] = {}
    for scheme in ("uniform", "constant_tuned", "predicted"):
        cons = []
        for a, b, T, pred_var, bridge in meas:
            var = np.array({"uniform": np.ones(6), "constant_tuned": tuned, "predicted": pred_var}[scheme], np.float64)
            if bridge is not None:
                var[3:] = bridge
            cons.append(Constraint(a, b, T, np.diag(var)))
        init, _ = chain_poses(len(stamps), cons)
        try:
            T_opt = optimize(len(stamps), cons, init, huber_k=huber_k)
        except EvaluationError as err:
            _log.warning("%s: pose graph %s failed: %s", seq.name, scheme, err)
            out[scheme] = None
            continue
        metrics = trajectory_metrics(stamps, T_opt, T_gt)
        out[scheme] = None if metrics is None else float(metrics["ate_rmse_m"])
    return out


def _odometry_trans_var(t: np.ndarray) -> float:
    """Per-axis variance (m²) of a simulated odometry translation ``t`` of ``T_0_i``.

    Position noise of frame i plus the window's scale error along ``t``, spread isotropically
    (a conservative diagonal that does not depend on the residual's frame).
    """
    return ODOMETRY_NOISE[0] ** 2 + (ODOMETRY_NOISE[1] * float(np.linalg.norm(t))) ** 2


@dataclass(frozen=True)
class UnseenConfig:
    """Sizes of the unseen-sequence protocol (``bench-unseen`` and the demo).

    Attributes:
        backbone: backbone name (``geometric``).
        n_train, n_val, n_test: sequences per split (each its own scene and seed).
        n_frames: frames per sequence, the same in every split (longer test sequences reach
            motion the training sequences never had; README, "Calibration on unseen sequences").
        width, height: image size (pixels).
        window_size, stride: windowing rule (the node's defaults).
        keyframe_every: keep every n-th frame (the node's ``keyframe_every``): the synthetic
            camera moves ~15 cm/s, so 8 consecutive frames at 30 Hz rarely span the 2 cm the scale
            protocol needs; keyframes every 3rd frame give windows of ~0.8 s.
        steps, batch_size, lr, hidden: head training.
        seed: base seed of the sequence plan (:func:`plan_sequences`) and of the head training.
        n_boot: bootstrap replicates.
    """

    backbone: str = "geometric"
    n_train: int = 12
    n_val: int = 4
    n_test: int = 4
    n_frames: int = 360
    width: int = 320
    height: int = 240
    window_size: int = 8
    stride: int = 4
    keyframe_every: int = 3
    steps: int = 2000
    batch_size: int = 32
    lr: float = 1e-3
    hidden: int = 64
    seed: int = 0
    n_boot: int = 1000

    @classmethod
    def small(cls, **overrides: Any) -> UnseenConfig:
        """The CI variant (tens of seconds on 2 cores)."""
        base = {
            "n_train": 3,
            "n_val": 2,
            "n_test": 2,
            "n_frames": 60,
            "width": 320,
            "height": 240,
            "steps": 200,
            "n_boot": 200,
        }
        base.update(overrides)
        return cls(**base)


def _check_backbone(name: str) -> None:
    if name != "geometric":
        raise ConfigError(f"bench-unseen runs per-window CPU backbones; got {name!r} (supported: geometric)")


def _build_backbone(name: str) -> Any:
    _check_backbone(name)
    from vggt_uncertainty_ros.model.geometric import GeometricBackbone  # lazy: OpenCV only for this backbone

    return GeometricBackbone()


@dataclass(frozen=True)
class PlannedSequence:
    """One synthetic sequence of the protocol: its split, name, scene/render seed, difficulty level, length."""

    split: str
    name: str
    seed: int
    level: float
    n_frames: int


_SPLITS = ("train", "val", "test")


def plan_sequences(cfg: UnseenConfig) -> list[PlannedSequence]:
    """The sequences of every split: each its own scene seed; difficulty levels stratified per split.

    Sequence ``j`` of a split of ``n`` gets a level drawn uniformly in ``[j/n, (j+1)/n)``, so each
    split spans the whole difficulty range (0 = clean … 1 = hardest) instead of depending on a
    few independent draws: with 3 or 4 sequences, unstratified draws can give a validation split
    of only hard sequences and a test split of easy ones, and recalibration then fits the
    difference between the splits. Seeds depend on the split and the index only, so changing
    one split's size leaves the other splits' sequences as they were.
    """
    sizes = {"train": cfg.n_train, "val": cfg.n_val, "test": cfg.n_test}
    out = []
    for k, split in enumerate(_SPLITS):
        rng = np.random.default_rng([cfg.seed, k])
        n = sizes[split]
        levels = (np.arange(n) + rng.uniform(size=n)) / max(n, 1)
        for j in range(n):
            seed = cfg.seed + 100_000 * k + 1000 * j + 1
            out.append(PlannedSequence(split, f"{split}{j}_seed{seed}", seed, float(levels[j]), cfg.n_frames))
    return out


def synthesise_planned(out: Path, planned: PlannedSequence, cfg: UnseenConfig) -> Path:
    """Write ``planned`` under ``out`` unless a complete copy of the same length is there.

    ``out`` belongs to the protocol (``out_dir/sequences/<name>``): an interrupted copy, or
    one of another length (a ``--small`` run into the directory of a full one: same names and
    seeds), is removed first.
    """
    done = out / ".complete"
    lines = done.read_text().splitlines() if done.exists() else []
    if lines[1:2] != [str(planned.n_frames)]:
        shutil.rmtree(out, ignore_errors=True)
        res = generate(
            out,
            seed=planned.seed,
            n_frames=planned.n_frames,
            formats=("tum",),
            width=cfg.width,
            height=cfg.height,
            difficulty=planned.level,
        )
        done.write_text(f"{Path(res.paths['tum']).relative_to(out)}\n{planned.n_frames}\n")
    return out / done.read_text().splitlines()[0]


def _prepare_one(planned: PlannedSequence, cfg: UnseenConfig, seq_dir: Path) -> ScoredSequence | str:
    """Synthesise (or reuse) and score one sequence with its own backbone; a DataError's text when unusable.

    Module-level so that worker processes can run it. The geometric backbone keeps no state
    across windows except the last window's keypoints (keyed by frame stamp and image size),
    so a fresh backbone per sequence gives what one shared backbone gives.
    """
    path = synthesise_planned(seq_dir, planned, cfg)
    K = intrinsics_for(cfg.width, cfg.height)  # the renderer's camera: a robot knows its calibration
    window = WindowConfig(size=cfg.window_size, stride=cfg.stride, keyframe_every=cfg.keyframe_every)
    try:
        return score_sequence(_build_backbone(cfg.backbone), path, window, name=planned.name, camera_matrix=K)
    except DataError as err:  # e.g. every window dropped by the backbone: counted, the split shrinks
        return str(err)


def _prepare_args(args: tuple[PlannedSequence, UnseenConfig, Path]) -> ScoredSequence | str:
    return _prepare_one(*args)


def _init_worker(log_level: int) -> None:
    # Ctrl-C reaches the whole process group: the parent handles it and terminates the pool
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def prepare_sequences(
    cfg: UnseenConfig,
    plan: Sequence[PlannedSequence],
    seq_root: Path,
    *,
    workers: int = 1,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, ScoredSequence], list[str]]:
    """Synthesise and score every planned sequence, ``workers`` sequences at a time.

    The backbone is single-threaded for the most part (about 1.1 cores busy), so on a 2-core
    machine two worker processes (``spawn``: no fork of a process holding torch's threads)
    take the wall time down by a third or more. Each sequence's result does not depend on ``workers``.

    Args:
        cfg: protocol sizes.
        plan: the sequences (:func:`plan_sequences`).
        seq_root: ``out_dir/sequences``; sequence ``name`` goes to ``seq_root/name``.
        workers: processes; 1 runs in this process.
        progress: called with one line per finished sequence.

    Returns:
        ``({name: ScoredSequence}, skipped names)``; a sequence that yields no usable window
        is skipped with a logged warning.
    """
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    results: dict[str, ScoredSequence] = {}
    skipped: list[str] = []

    def collect(planned: PlannedSequence, res: ScoredSequence | str) -> None:
        if isinstance(res, str):
            _log.warning("%s skipped: %s", planned.name, res)
            skipped.append(planned.name)
        else:
            results[planned.name] = res
        if progress:
            progress(f"{planned.name} scored ({len(results) + len(skipped)}/{len(plan)})")

    if workers == 1 or len(plan) <= 1:
        for planned in plan:
            collect(planned, _prepare_one(planned, cfg, seq_root / planned.name))
        return results, skipped
    ctx = multiprocessing.get_context("spawn")
    level = logging.getLogger().getEffectiveLevel()
    # leaving the block (also by an error or Ctrl-C) terminates the workers at once
    with ctx.Pool(min(workers, len(plan)), initializer=_init_worker, initargs=(level,)) as pool:
        jobs = [(planned, cfg, seq_root / planned.name) for planned in plan]
        for planned, res in zip(plan, pool.imap(_prepare_args, jobs)):  # plan order, whatever finishes first
            collect(planned, res)
    return results, skipped


def run_unseen(
    cfg: UnseenConfig,
    out_dir: str | Path,
    progress: Callable[[str], None] | None = None,
    *,
    workers: int = 1,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the whole protocol; sequences are written under ``out_dir/sequences`` (reused).

    ``workers`` processes synthesise and score the sequences (:func:`prepare_sequences`);
    the results do not depend on it.

    Returns:
        ``(doc, details)``: ``doc`` has exactly the ``unseen.json`` schema of issue 12
        (``backbone``, ``sequences``, ``pooled``, ``recalibration``, ``pgo``); ``details`` the
        configuration, scale-protocol counts, validation history, timings and the
        before-recalibration figures.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    _check_backbone(cfg.backbone)  # an unsupported backbone fails here, before any sequence is written
    plan = plan_sequences(cfg)
    results, skipped = prepare_sequences(cfg, plan, out / "sequences", workers=workers, progress=progress)
    scored: dict[str, list[ScoredSequence]] = {k: [] for k in _SPLITS}
    for planned in plan:
        if planned.name in results:
            scored[planned.split].append(results[planned.name])
    if not all(scored.values()):
        raise DataError(f"a split has no usable sequence (skipped: {skipped}); use more frames or seeds")
    timings["data_and_backbone_s"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    trained = train_head(
        scored["train"],
        scored["val"],
        steps=cfg.steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        hidden=cfg.hidden,
        seed=cfg.seed,
    )
    timings["train_s"] = time.perf_counter() - t1
    head = trained.head

    val_in = {s.name: summary_inputs(s, predict_log_var(head, s)) for s in scored["val"]}
    recal = fit_sequences(val_in)
    _log.info("recalibration on validation: %s", block_factors_summary(recal))
    n_windows = max(s.n_windows for s in scored["test"])
    block = default_block_length(n_windows, cfg.window_size, cfg.stride)
    raw = {s.name: predict_log_var(head, s) for s in scored["test"]}
    test_in = {s.name: summary_inputs(s, raw[s.name]) for s in scored["test"]}
    before = unseen_summary(test_in, block_length=block, n_boot=cfg.n_boot)
    after_lv = {s.name: predict_log_var(head, s, recal) for s in scored["test"]}
    after = unseen_summary(
        {s.name: summary_inputs(s, after_lv[s.name]) for s in scored["test"]}, block_length=block, n_boot=cfg.n_boot
    )
    pgo = {s.name: pgo_ate(s, after_lv[s.name]) for s in scored["test"]}
    test_floor = fit_sequences(test_in).coverage_floor  # what the best factor could reach on the test sequences
    methods: dict[str, Any] = {}
    for method in METHODS:  # the other fits, for comparison (details only)
        if method == recal.method:
            alt, pooled = recal, after["pooled"]
        else:
            alt = fit_sequences(val_in, method)
            pooled = unseen_summary(
                {s.name: summary_inputs(s, predict_log_var(head, s, alt)) for s in scored["test"]},
                block_length=block,
                n_boot=cfg.n_boot,
            )["pooled"]
        methods[method] = {"factors": dict(alt.factors), "test_pooled": pooled}
    timings["total_s"] = time.perf_counter() - t0

    doc = {
        "backbone": cfg.backbone,
        "sequences": after["sequences"],
        "pooled": after["pooled"],
        "recalibration": {"factors": dict(recal.factors), "before": before["pooled"], "after": after["pooled"]},
        "pgo": pgo,
    }
    details = {
        "config": asdict(cfg),
        "recalibration": recal.to_dict(),
        "before_recalibration": before,
        "recalibration_methods": methods,
        "coverage_floor": {"validation": dict(recal.coverage_floor), "test": dict(test_floor)},
        "scale_classes": {
            "gt": after["pooled"],
            "odometry": unseen_summary(
                {
                    s.name: summary_inputs(s, predict_log_var(head, s, recal, "odometry"), "odometry")
                    for s in scored["test"]
                },
                block_length=block,
                n_boot=cfg.n_boot,
            )["pooled"],
            "odometry_noise": {"position_m": ODOMETRY_NOISE[0], "scale_rel": ODOMETRY_NOISE[1]},
        },
        "scale_protocol": {s.name: s.counts for split in scored.values() for s in split},
        "sequence_levels": {p.name: p.level for p in plan},
        "skipped_sequences": skipped,
        "validation_history": trained.history,
        "selected_step": trained.best_step,
        "bootstrap_block_windows": block,
        "timings_s": timings,
    }
    return doc, details


def jsonable(value: Any) -> Any:
    """``value`` with NaN/inf as None and numpy scalars as Python numbers (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value
