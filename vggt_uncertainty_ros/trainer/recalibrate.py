"""Post-hoc recalibration of a trained head on held-out sequences, and held-out evaluation.

``vggt-uncertainty calibrate --run RUN --data SEQ [SEQ ...] --out CKPT`` (see
:func:`recalibrate_run`): the run's backbone goes through the validation sequences once (the
run's feature cache is reused), the head predicts per frame, and
:func:`vggt_uncertainty_ros.calibration.recalibration.fit_recalibration` fits one variance
factor per block with the robust median rule (``f = median(d²)/2.366``, each sequence weighing
the same). The factors, the sequences and the before/after figures are stored in the head
checkpoint's metadata (``HeadMetadata.recalibration``); the node's estimator and the evaluator
apply them. Translation follows the scale protocol: windows without a trustworthy scale do not
enter the translation fit or its figures.

Units: residuals in rad and metres after the per-window ground-truth scale fit; the head's
translation log-variance is converted by its scale convention (``vggt``: ``+ 2 log s``;
``relative``: ``+ 2 log mean_{i>0} ‖s·t_pred_i‖``; ``metric``: unchanged).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vggt_uncertainty_ros.calibration.bootstrap import default_block_length, format_summary_table, unseen_summary
from vggt_uncertainty_ros.calibration.recalibration import (
    Recalibration,
    apply_recalibration,
    block_factors_summary,
    fit_sequences,
)
from vggt_uncertainty_ros.errors import CheckpointError, ConfigError
from vggt_uncertainty_ros.head import HeadMetadata, UncertaintyHead, load_head, save_head
from vggt_uncertainty_ros.trainer.config import SequenceSpec, TrainConfig, load_config
from vggt_uncertainty_ros.trainer.data import WindowSet, synthetic_root

_log = logging.getLogger(__name__)

__all__ = [
    "RecalibrationReport",
    "held_out_evaluation",
    "head_log_var_m",
    "recalibrate_head",
    "recalibrate_run",
    "sequence_arrays",
]


def head_log_var_m(head: UncertaintyHead, scale_convention: str, ws: WindowSet) -> np.ndarray:
    """The head's log σ² ``[W, S, 6]`` in the residual's units (rad², m²), float64 numpy."""
    device = next(head.parameters()).device
    with torch.no_grad():
        lv = head.eval()(ws.features.to(device)).double().cpu().numpy()
    if scale_convention == "vggt":
        lv[..., 3:] += 2.0 * ws.log_scale.double().numpy()[:, None, None]
    elif scale_convention == "relative":
        if ws.log_motion is None:
            raise ConfigError("a 'relative' head needs the window motion (WindowSet.log_motion)")
        lv[..., 3:] += 2.0 * ws.log_motion.double().numpy()[:, None, None]
    return lv


def sequence_arrays(ws: WindowSet, log_var_m: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Scored frames (1…S-1) of each sequence: ``{name: {"r", "log_var", "window", "trans_valid"}}``.

    ``window`` is the window's index within its sequence (time order), as the block bootstrap
    needs; ``trans_valid`` is the window's scale-protocol flag repeated over its frames.
    """
    names = np.asarray(ws.names)
    s = ws.window_size
    r_all = ws.residual.double().numpy()
    ok_all = ws.trans_ok.numpy() if ws.trans_ok is not None else np.ones(len(names), bool)
    out: dict[str, dict[str, np.ndarray]] = {}
    for name in dict.fromkeys(ws.names):  # first-seen order
        idx = np.flatnonzero(names == name)
        out[str(name)] = {
            "r": r_all[idx, 1:].reshape(-1, 6),
            "log_var": log_var_m[idx, 1:].reshape(-1, 6),
            "window": np.repeat(np.arange(len(idx)), s - 1),
            "trans_valid": np.repeat(ok_all[idx], s - 1),
        }
    return out


def _recalibrated(seqs: Mapping[str, Mapping[str, np.ndarray]], recal: Recalibration | None) -> dict[str, Any]:
    return {n: {**v, "log_var": apply_recalibration(v["log_var"], recal)} for n, v in seqs.items()}


@dataclass
class RecalibrationReport:
    """What :func:`recalibrate_head` fitted and measured.

    Attributes:
        recalibration: the fitted factors.
        before: :func:`unseen_summary` of the validation sequences with the head as trained.
        after: the same with the factors applied (in-sample: the factors were fitted there).
        table: the before/after tables as text.
        out: the written checkpoint (None when not written).
    """

    recalibration: Recalibration
    before: dict[str, Any]
    after: dict[str, Any]
    table: str
    out: Path | None = None


def recalibrate_head(
    head: UncertaintyHead,
    meta: HeadMetadata,
    val: WindowSet,
    *,
    stride: int,
    method: str = "quantile",
    out: str | Path | None = None,
    n_boot: int = 1000,
) -> RecalibrationReport:
    """Fit per-block factors on ``val``'s sequences; optionally write the recalibrated checkpoint.

    The checkpoint written to ``out`` is ``head`` unchanged with ``meta.recalibration`` set to
    the factors plus ``{"before", "after"}`` pooled figures; any earlier recalibration is
    replaced (the factors are always fitted on the head's own output).
    """
    seqs = sequence_arrays(val, head_log_var_m(head, meta.scale_convention, val))
    recal = fit_sequences(seqs, method)
    n_windows = max(int(v["window"].max()) + 1 for v in seqs.values() if v["window"].size)
    block = default_block_length(n_windows, val.window_size, stride)
    before = unseen_summary(seqs, block_length=block, n_boot=n_boot)
    after = unseen_summary(_recalibrated(seqs, recal), block_length=block, n_boot=n_boot)
    table = "\n\n".join(
        [
            block_factors_summary(recal),
            format_summary_table(before, "before recalibration (validation sequences):"),
            format_summary_table(after, "after recalibration (in-sample: fitted on these sequences):"),
        ]
    )
    report = RecalibrationReport(recalibration=recal, before=before, after=after, table=table)
    if out is not None:
        record = {**recal.to_dict(), "before": before["pooled"], "after": after["pooled"]}
        report.out = save_head(out, head, replace(meta, recalibration=record))
        _log.info("recalibrated head written to %s", report.out)
    return report


def _run_head(run_dir: Path, which: str) -> Path:
    path = Path(which)
    if not path.is_file():
        path = run_dir / "checkpoints" / f"{which}.safetensors"
    if not path.is_file():
        raise CheckpointError(f"no head checkpoint {which!r} in {run_dir}/checkpoints (expected best or last)")
    return path


def _window_set(cfg: TrainConfig, paths: Sequence[str | Path]) -> WindowSet:
    """Run (or read from the run's feature cache) the run's backbone on ``paths``."""
    from vggt_uncertainty_ros.model.device import resolve_device
    from vggt_uncertainty_ros.trainer.data import build_window_set
    from vggt_uncertainty_ros.trainer.shards import open_feature_cache

    cache = open_feature_cache(cfg, resolve_device(cfg.backbone.device))
    cached = [cache.get(SequenceSpec(path=str(p))) for p in paths]
    return build_window_set(cached, cfg.head.input_feature, cfg.loss.min_motion_m)


def recalibrate_run(
    run_dir: str | Path,
    data: Sequence[str | Path],
    out: str | Path,
    *,
    head: str = "best",
    method: str = "quantile",
    n_boot: int = 1000,
) -> RecalibrationReport:
    """``vggt-uncertainty calibrate``: fit factors for a run's head on sequences ``data``.

    Args:
        run_dir: a training run directory (its ``config.yaml`` names backbone, windows, cache).
        data: validation sequences (TUM folders, bags), none of them used in training.
        out: where to write the recalibrated head checkpoint.
        head: ``best``, ``last`` or a checkpoint path.
        method: one of :data:`calibration.recalibration.METHODS` (default ``quantile``, robust).
        n_boot: bootstrap replicates of the reported intervals.

    Raises:
        ConfigError: no sequence, a sequence the run trained on, or a missing run config.
        CheckpointError: the head cannot be loaded or its feature size differs from the backbone's.
    """
    run_dir = Path(run_dir)
    if not data:
        raise ConfigError("calibrate needs at least one --data sequence")
    config = run_dir / "config.yaml"
    if not config.is_file():
        raise ConfigError(f"{run_dir} is not a training run (no config.yaml)")
    cfg = load_config(config)
    syn = cfg.data.synthetic
    trained = [Path(s.path).resolve() for s in cfg.data.train] + [
        synthetic_root(cfg.output.cache_dir, syn, syn.seed + k).resolve() for k in range(syn.train)
    ]
    reused = sorted(
        str(p) for p in data if any(Path(p).resolve() == t or t in Path(p).resolve().parents for t in trained)
    )
    if reused:
        raise ConfigError(f"calibration sequences must be held out, but the run trained on {reused}")
    head_path = _run_head(run_dir, head)
    model, meta = load_head(head_path)
    val = _window_set(cfg, data)
    if int(val.features.shape[-1]) != meta.in_dim:
        raise CheckpointError(
            f"head {head_path} expects {meta.in_dim}-d features but the backbone gives {int(val.features.shape[-1])}"
        )
    return recalibrate_head(model, meta, val, stride=cfg.window.stride, method=method, out=out, n_boot=n_boot)


#: Files :func:`held_out_evaluation` writes in the run directory.
RECALIBRATED_FILE = Path("checkpoints") / "best_recalibrated.safetensors"
TEST_FILE = "test_metrics.json"


def held_out_evaluation(cfg: TrainConfig, run_dir: Path, val: WindowSet, test: WindowSet | None) -> dict[str, Any]:
    """After training: recalibrate ``best`` on the validation sequences, evaluate the test ones.

    Writes ``checkpoints/best_recalibrated.safetensors`` and, with test sequences,
    ``test_metrics.json``: ``{"sequences": {name: {"rot", "trans"}}, "pooled", "recalibration":
    {"factors", "before", "after"}}`` (the ``unseen.json`` blocks: d² mean with its 95 %
    block-bootstrap interval, coverage, Spearman, NLL per dof, frames; test frames after
    recalibration, ``before`` / ``after`` pooled over the test sequences).

    Returns:
        ``{"recalibration": factors, "test_pooled": pooled or None}`` for ``final_metrics.json``.
    """
    import json

    from vggt_uncertainty_ros.trainer.unseen import jsonable

    head, meta = load_head(run_dir / "checkpoints" / "best.safetensors")
    report = recalibrate_head(head, meta, val, stride=cfg.window.stride, out=run_dir / RECALIBRATED_FILE)
    _log.info(
        "recalibration of the best head on %d validation sequence(s): %s",
        len(report.recalibration.sequences),
        block_factors_summary(report.recalibration),
    )
    out: dict[str, Any] = {"recalibration": dict(report.recalibration.factors), "test_pooled": None}
    if test is None:
        return out
    seqs = sequence_arrays(test, head_log_var_m(head, meta.scale_convention, test))
    n_windows = max(int(v["window"].max()) + 1 for v in seqs.values() if v["window"].size)
    block = default_block_length(n_windows, test.window_size, cfg.window.stride)
    before = unseen_summary(seqs, block_length=block)
    after = unseen_summary(_recalibrated(seqs, report.recalibration), block_length=block)
    doc = {
        "sequences": after["sequences"],
        "pooled": after["pooled"],
        "recalibration": {
            "factors": dict(report.recalibration.factors),
            "before": before["pooled"],
            "after": after["pooled"],
        },
    }
    (run_dir / TEST_FILE).write_text(json.dumps(jsonable(doc), indent=2, sort_keys=True, allow_nan=False) + "\n")
    _log.info("held-out test sequences:\n%s", format_summary_table(after, "after recalibration:"))
    out["test_pooled"] = after["pooled"]
    return out
