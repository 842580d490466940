"""``evaluate(cfg) -> EvalResult``: the evaluator as a library call.

Steps: windows from the source (model run or recorded messages) → per-window residuals with the
scale mode → calibration per block → dead-reckoned trajectory (evo ATE/RPE) → pose graph with
three weightings (GTSAM) → ``report.json``, ``frames.csv``, ``traj_est.tum``, ``traj_gt.tum``,
PNG plots and ``report.md`` in ``cfg.out_dir``. Data problems are counted in
``report["warnings"]``; a run without any evaluable window still writes its report
(``n_windows`` = 0) so the warnings explain why. ``report["coverage"]`` says how much of the
recording the numbers rest on, with warnings below the thresholds of
:mod:`~vggt_uncertainty_ros.evaluate.coverage`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from vggt_uncertainty_ros import __version__
from vggt_uncertainty_ros.data.groundtruth import GroundTruth
from vggt_uncertainty_ros.data.tum import read_tum_trajectory, write_tum_trajectory
from vggt_uncertainty_ros.data.types import WarningCounter
from vggt_uncertainty_ros.evaluate.config import EvalConfig, ScaleMode, SourceKind
from vggt_uncertainty_ros.evaluate.coverage import MIN_ATE_POSES, StampSpan, coverage_section
from vggt_uncertainty_ros.evaluate.graph import (
    build_constraints,
    pgo_results,
    trajectory_metrics,
)
from vggt_uncertainty_ros.evaluate.report import (
    FrameTable,
    calibration_block,
    frame_table,
    to_jsonable,
    write_frames_csv,
    write_report_json,
)
from vggt_uncertainty_ros.evaluate.residuals import WindowEval, evaluate_window
from vggt_uncertainty_ros.evaluate.sources import (
    DecodeStats,
    ModelSource,
    WindowMeasurement,
    load_ground_truth_frames,
    read_pose_messages,
)
from vggt_uncertainty_ros.head import read_head_metadata

__all__ = ["EvalResult", "evaluate"]

_log = logging.getLogger(__name__)

SCALE_NOTES = {
    ScaleMode.PER_WINDOW_GT: (
        "each window's predicted translation and sigma_trans multiplied by its least-squares scale s* "
        "against ground truth (the original analysis' protocol); residuals, sigma, trajectory and pose "
        "graph in metres"
    ),
    ScaleMode.NONE: (
        "measurements taken as published (no ground-truth scale): trajectory and pose graph chain them in "
        "the source's unit and are Sim(3)-aligned once; calibration expresses the ground-truth translation "
        "in each window's unit (divided by s*), so residuals and sigma_trans are in the source's unit "
        "(VGGT units for the node's scale_source none) and d2 equals per-window-gt's"
    ),
}


@dataclass(frozen=True)
class EvalResult:
    """What :func:`evaluate` produced.

    Attributes:
        report: the content of ``report.json``.
        table: the evaluated frames (rows of ``frames.csv``).
        files: output name → path (``report_json``, ``frames_csv``, ``traj_est``, ``traj_gt``,
            ``report_md`` and one per plot).
    """

    report: dict[str, Any]
    table: FrameTable
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when at least one window was evaluated."""
        return int(self.report["n_windows"]) > 0


class _GtCache:
    """Ground-truth lookup by stamp, each stamp looked up (and counted) once."""

    def __init__(self, gt: GroundTruth | None) -> None:
        self.gt = gt
        self.poses: dict[int, np.ndarray | None] = {}

    def record(self, stamps_ns: np.ndarray, T: np.ndarray) -> None:
        for s, pose in zip(stamps_ns.tolist(), T):
            self.poses.setdefault(int(s), pose if np.all(np.isfinite(pose)) else None)

    def lookup(self, stamps_ns: np.ndarray) -> np.ndarray:
        out = np.full((len(stamps_ns), 4, 4), np.nan)
        for k, s in enumerate(stamps_ns.tolist()):
            if s not in self.poses:
                self.poses[s] = self.gt.lookup(s) if self.gt is not None else None
            pose = self.poses[s]
            if pose is not None:
                out[k] = pose
        return out


def _windows(
    cfg: EvalConfig, warnings: WarningCounter, cache: _GtCache
) -> tuple[Iterable[WindowMeasurement], Callable[[], DecodeStats]]:
    """The measurement stream and a getter of its frame-decoding statistics."""
    if cfg.source is SourceKind.RUN_MODEL:
        source = ModelSource(cfg, warnings)
        if cfg.gt is not None:
            _log.info("ground truth from %s (associated by the sequence reader)", cfg.gt)
        return source.windows(), lambda: source.decode

    decode = DecodeStats()
    windows = read_pose_messages(cfg.data, str(cfg.poses_topic), warnings)
    if windows:
        if cfg.gt is not None:
            stamps, T = read_tum_trajectory(cfg.gt)
            cache.gt = GroundTruth(stamps, T, warnings, max_dt_s=cfg.max_dt_s, source=str(cfg.gt))
            decode.ground_truth = StampSpan.of(stamps)
        else:
            stamps, T, decode = load_ground_truth_frames(cfg, warnings)
            # the reader already counted this sequence's stamp problems: do not count them twice
            cache.gt = GroundTruth(stamps, T, WarningCounter(), max_dt_s=cfg.max_dt_s, source=str(cfg.data))
    return windows, lambda: decode


def _evaluate_windows(
    cfg: EvalConfig, windows: Iterable[WindowMeasurement], cache: _GtCache, warnings: WarningCounter
) -> Iterator[tuple[WindowMeasurement, WindowEval | None]]:
    for m in windows:
        if m.T_world_cam_gt is not None:
            cache.record(m.stamps_ns, m.T_world_cam_gt)
        gt = cache.lookup(m.stamps_ns)
        yield m, evaluate_window(m, gt, cfg.scale_mode, warnings, cfg.min_motion_m)


def _scale_summary(evals: list[WindowEval], mode: ScaleMode) -> dict[str, Any]:
    """Statistics of the per-window s* (fitted in both modes; applied to the prediction in one).

    Scale protocol: windows without a trustworthy fit are counted by reason and their
    translation is not scored; fit statistics are over the trustworthy windows.
    """
    if not evals:
        return {}
    ok = np.array([e.scale_ok for e in evals])
    s = np.array([e.scale_fit for e in evals])[ok]
    reasons = [e.scale_reason for e in evals if not e.scale_ok]
    stats = (
        {
            "fit_mean": float(s.mean()),
            "fit_median": float(np.median(s)),
            "fit_min": float(s.min()),
            "fit_max": float(s.max()),
        }
        if s.size
        else {}
    )
    return {
        **stats,
        "n_windows": len(evals),
        "n_trans_scored": int(ok.sum()),
        "n_trans_excluded": {r: reasons.count(r) for r in sorted(set(reasons))},
        "applied_to": "prediction" if mode is ScaleMode.PER_WINDOW_GT else "ground truth (divided)",
    }


def _head_recalibration(cfg: EvalConfig) -> dict[str, Any] | None:
    """The evaluated head's stored recalibration (applied by the estimator), or None."""
    if cfg.head is None or cfg.source is not SourceKind.RUN_MODEL:
        return None
    meta = read_head_metadata(cfg.head)
    if not meta.recalibration:
        return None
    _log.info("head %s carries recalibration factors %s (applied)", cfg.head, meta.recalibration.get("factors"))
    return {"applied": True, **meta.recalibration}


def evaluate(cfg: EvalConfig, *, progress: bool = False) -> EvalResult:
    """Run the whole evaluation described by ``cfg`` and write its outputs.

    Args:
        cfg: the configuration.
        progress: show a tqdm progress bar over windows (CLI use).

    Returns:
        The :class:`EvalResult`; ``result.ok`` is False when no window could be evaluated (the
        report then says why in ``warnings``).

    Raises:
        ConfigError, DataError, ModelError, CheckpointError: unusable inputs (missing files,
            unreadable bag, wrong message type, unloadable backbone or head).
        EvaluationError: no ground truth at all for ``poses-topic`` without ``--gt``.
    """
    t_start = time.perf_counter()
    out = cfg.out_dir
    out.mkdir(parents=True, exist_ok=True)
    warnings = WarningCounter()
    cache = _GtCache(None)
    windows, decode_stats = _windows(cfg, warnings, cache)
    parameterization = "log_var"
    n_source_windows = 0
    evals: list[WindowEval] = []
    bar = tqdm(_evaluate_windows(cfg, windows, cache, warnings), unit="window", disable=not progress, desc="evaluating")
    for m, e in bar:
        n_source_windows += 1
        parameterization = m.parameterization
        if e is not None:
            evals.append(e)
    decode = decode_stats()
    if decode.frames:
        _log.info("decoding: %d frames at %.0f frames/s", decode.frames, decode.frames_per_s)

    table = frame_table(evals)
    n_windows = len({e.window for e in evals if e.stamps_ns.size})
    trans_unit = "m" if cfg.scale_mode is ScaleMode.PER_WINDOW_GT else "source units"
    report: dict[str, Any] = {
        "version": __version__,
        "source": cfg.source.value,
        "scale_mode": cfg.scale_mode.value,
        "scale_note": SCALE_NOTES[cfg.scale_mode],
        "units": {"rot": "rad", "trans": trans_unit, "trajectory": "m (Sim(3)-aligned)"},
        "n_source_windows": n_source_windows,
        "parameterization": parameterization,
        "n_windows": n_windows,
        "n_frames": len(table),
        "n_unique_frames": int(np.unique(table.stamp_ns).size),
        "calibration": {"rot": None, "trans": None},
        "scale": _scale_summary(evals, cfg.scale_mode),
        "trajectory": None,
        "pgo": None,
        "decode": {"frames": decode.frames, "seconds": decode.seconds, "frames_per_s": decode.frames_per_s},
        "config": cfg.to_dict(),
    }
    report["recalibration"] = _head_recalibration(cfg)
    files: dict[str, Path] = {}
    n_ate_poses: int | None = None
    if n_windows:
        for block in ("rot", "trans"):
            report["calibration"][block] = calibration_block(table, block, n_windows, parameterization)
        graph = build_constraints(evals, warnings)
        T_gt_nodes = cache.lookup(graph.stamps_ns)
        traj = trajectory_metrics(graph.stamps_ns, graph.T_chain, T_gt_nodes)
        ok = np.all(np.isfinite(graph.T_chain), axis=(1, 2)) & np.all(np.isfinite(T_gt_nodes), axis=(1, 2))
        n_ate_poses = int(ok.sum())
        if traj is not None:
            traj["chain_breaks"] = graph.chain_breaks
            traj["n_poses"] = n_ate_poses
            traj["ate_reliable"] = n_ate_poses >= MIN_ATE_POSES
        report["trajectory"] = traj
        files["traj_est"] = out / "traj_est.tum"
        files["traj_gt"] = out / "traj_gt.tum"
        write_tum_trajectory(files["traj_est"], graph.stamps_ns[ok], graph.T_chain[ok], title="estimated trajectory")
        write_tum_trajectory(files["traj_gt"], graph.stamps_ns[ok], T_gt_nodes[ok], title="ground truth trajectory")
        scored = np.isfinite(table.residual)
        sq = np.where(scored, table.residual, 0.0) ** 2
        # a block without any scored frame (no window with a trustworthy scale) keeps variance 1
        tuned_var = np.where(scored.any(0), sq.sum(0) / np.maximum(scored.sum(0), 1), 1.0)
        tuned_var = np.maximum(tuned_var, 1e-12)
        pgo, _ = pgo_results(graph, T_gt_nodes, tuned_var, cfg.huber_k)
        report["pgo"] = {
            **pgo,
            "constant_tuned_variance": tuned_var.tolist(),
            "huber_k": cfg.huber_k,
            "n_nodes": len(graph.stamps_ns),
            "n_constraints": len(graph.constraints),
            "translation_pieces": graph.translation_pieces,
        }
    else:
        _log.error("no window could be evaluated; see the warnings in %s", out / "report.json")
        graph = None
    report["coverage"] = coverage_section(
        table.stamp_ns,
        decode.images if decode.frames else None,
        decode.ground_truth if decode.ground_truth.n else None,
        n_ate_poses,
        warnings,
        ground_truth_is_trajectory=cfg.source is not SourceKind.RUN_MODEL and cfg.gt is not None,
    )
    report["warnings"] = warnings.as_dict()
    report["elapsed_s"] = time.perf_counter() - t_start

    files["report_json"] = out / "report.json"
    files["frames_csv"] = out / "frames.csv"
    write_frames_csv(files["frames_csv"], table)
    if cfg.plots and graph is not None:
        # lazy: matplotlib only when plots are asked for
        from vggt_uncertainty_ros.evaluate.plots import write_plots, write_report_md

        plots = write_plots(out, table, graph.stamps_ns, graph.T_chain, cache.lookup(graph.stamps_ns), trans_unit)
        files.update({name: out / f for name, f in plots.items()})
        files["report_md"] = out / "report.md"
        write_report_md(files["report_md"], _report_for_md(report), plots)
    write_report_json(files["report_json"], report)
    _log.info("evaluation written to %s (%d windows, %d frames)", out, n_windows, len(table))
    return EvalResult(report=report, table=table, files=files)


def _report_for_md(report: dict[str, Any]) -> dict[str, Any]:
    out = to_jsonable(report)
    if out.get("pgo"):
        out["pgo"] = {k: v for k, v in out["pgo"].items() if isinstance(v, dict)}
    return out
