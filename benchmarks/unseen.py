"""Unseen-sequence benchmark (issue 12): calibration of the head on sequences it never saw.

``vggt-uncertainty bench-unseen --backbone geometric --out DIR [--small]``:

1. synthesise ``n_train`` + ``n_val`` + ``n_test`` sequences, each its own scene and seed
   (``data.synth.generate`` with a difficulty level per sequence: blur, noise, exposure,
   lighting, low texture, fast rotation, occluders; levels stratified so that every split spans
   clean to hardest, ``trainer.unseen.plan_sequences``); the backbone gets the renderer's K, as
   the node gets ``camera_info``;
2. run the backbone on every window (the node's 8-frame, stride-4 rule) and score each frame
   against ground truth (``trainer.unseen.score_sequence``: per-window ground-truth scale =
   what the node's odometry scale source applies; windows without a trustworthy scale are
   excluded from translation, invalid frames from both blocks, all counted);
3. train a ``relative`` head on the training sequences, select it on validation (no selection
   before 20 % of the steps);
4. recalibrate on the validation sequences (robust ``quantile`` fit, ``calibration.recalibration``);
5. evaluate every test sequence separately, with 95 % intervals of the d² mean from a block
   bootstrap over windows (``calibration.bootstrap``), and run the pose graph under uniform,
   tuned-constant and predicted weights (ATE RMSE, m).

Writes ``DIR/unseen.json`` with exactly the schema of issue 12 and ``DIR/unseen_details.json``
(configuration, difficulty level and scale-protocol counts per sequence, validation history,
timings, the before-recalibration per-sequence figures).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from vggt_uncertainty_ros.calibration.bootstrap import format_summary_table
from vggt_uncertainty_ros.trainer.unseen import UnseenConfig, jsonable
from vggt_uncertainty_ros.trainer.unseen import run_unseen as run_protocol

_log = logging.getLogger(__name__)

#: Issue 12 targets (README): pooled d² CI around 3, per-sequence d² in [2, 4.5], coverage ±5 points,
#: Spearman ≥ 0.5 (rot) / 0.3 (trans), predicted PGO beats both baselines on ≥ 3 of 4 test sequences.
TARGETS = {"d2_seq": (2.0, 4.5), "coverage_tol": 0.05, "spearman": {"rot": 0.5, "trans": 0.3}, "pgo_wins": 3}


__all__ = ["TARGETS", "UnseenConfig", "format_report", "run_unseen", "targets_met"]


def run_unseen(
    cfg: UnseenConfig, out_dir: str | Path, progress: Callable[[str], None] | None = None, *, workers: int = 1
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the protocol (``trainer.unseen.run_unseen``), write ``unseen.json`` and ``unseen_details.json``.

    ``workers``: processes that synthesise and score the sequences (results do not depend on it).

    Returns:
        ``(doc, details)``, the contents of the two files.
    """
    out = Path(out_dir)
    doc, details = run_protocol(cfg, out, progress, workers=workers)
    details["targets"] = targets_met(doc)
    _write(out / "unseen.json", doc)
    _write(out / "unseen_details.json", details)
    return doc, details


def _write(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(json.dumps(jsonable(doc), indent=2, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8")


def targets_met(doc: dict[str, Any]) -> dict[str, bool]:
    """Which issue-12 targets the document meets (see :data:`TARGETS`)."""
    out: dict[str, bool] = {}
    pooled = doc["pooled"]
    lo_s, hi_s = TARGETS["d2_seq"]
    for block in ("rot", "trans"):
        lo, hi = pooled[block]["d2_ci95"]
        out[f"pooled_{block}_ci_contains_3"] = bool(lo is not None and hi is not None and lo <= 3.0 <= hi)
        seq_d2 = [s[block]["d2_mean"] for s in doc["sequences"].values()]
        out[f"every_sequence_{block}_d2_in_2_4.5"] = all(d is not None and lo_s <= d <= hi_s for d in seq_d2)
        cov = pooled[block]["coverage"]
        out[f"pooled_{block}_coverage_68_95_within_5pts"] = bool(
            cov["68"] is not None
            and abs(cov["68"] - 0.6827) <= TARGETS["coverage_tol"]
            and abs(cov["95"] - 0.95) <= TARGETS["coverage_tol"]
        )
        sp = pooled[block]["spearman"]
        out[f"pooled_{block}_spearman"] = bool(sp is not None and sp >= TARGETS["spearman"][block])
    wins = sum(
        1
        for v in doc["pgo"].values()
        if None not in v.values() and v["predicted"] < v["uniform"] and v["predicted"] < v["constant_tuned"]
    )
    out["pgo_predicted_beats_both"] = wins >= min(TARGETS["pgo_wins"], len(doc["pgo"]))
    return out


def format_report(doc: dict[str, Any], details: dict[str, Any] | None = None) -> str:
    """Terminal summary: per-sequence table after recalibration, factors, coverage floor, PGO ATE, targets."""
    lines = [
        format_summary_table(
            {"sequences": doc["sequences"], "pooled": doc["pooled"]},
            f"unseen test sequences ({doc['backbone']} backbone), after recalibration:",
        )
    ]
    f = doc["recalibration"]["factors"]
    b, a = doc["recalibration"]["before"], doc["recalibration"]["after"]
    lines.append(
        f"\nrecalibration factors (fitted on validation): rot x{f['rot']:.3g}, trans x{f['trans']:.3g}; "
        f"pooled test d2 rot {b['rot']['d2_mean']:.2f} -> {a['rot']['d2_mean']:.2f}, "
        f"trans {b['trans']['d2_mean']:.2f} -> {a['trans']['d2_mean']:.2f}"
    )
    pooled = doc["pooled"]

    def cov(block: str, key: str) -> str:
        c, lo, hi = (
            math.nan if x is None else x for x in (pooled[block]["coverage"][key], *pooled[block]["coverage_ci95"][key])
        )
        return f"{c:.2f} [{lo:.2f}, {hi:.2f}]"

    lines.append(
        "pooled coverage 68 / 95 with 95 % block-bootstrap intervals: "
        + "; ".join(f"{blk} {cov(blk, '68')} / {cov(blk, '95')}" for blk in ("rot", "trans"))
    )
    floor = (details or {}).get("coverage_floor")
    if floor:
        lines.append(
            "coverage floor (the smallest max(|c68 - 68 %|, |c95 - 95 %|) any single factor reaches, in points): "
            + "; ".join(
                f"{split} " + ", ".join(f"{blk} {100 * v:.1f}" for blk, v in floor[split].items())
                for split in ("validation", "test")
            )
        )
    lines.append("\npose graph ATE RMSE (m):  uniform / constant_tuned / predicted")
    for name, v in doc["pgo"].items():
        lines.append(f"  {name:<24} " + " / ".join("n/a" if x is None else f"{x:.4f}" for x in v.values()))
    lines.append(
        "\ntargets (issue 12): " + ", ".join(f"{k} {'MET' if v else 'not met'}" for k, v in targets_met(doc).items())
    )
    return "\n".join(lines)


def main_threads(n: int | None) -> None:
    """Set torch's CPU threads (the benchmark is sized for 2 cores)."""
    if n:
        torch.set_num_threads(n)
