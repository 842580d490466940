"""Evaluator outputs: the per-frame table, calibration blocks, report.json, frames.csv, report.md.

``frames.csv`` has one row per evaluated frame (a frame shared by two windows appears once per
window) with the columns of :data:`FRAME_COLUMNS`:

* ``window``, ``anchor_stamp_ns``, ``stamp_ns``, ``index_in_window``;
* ``scale``: the factor applied to the window's predicted translation (``s*`` or 1);
* ``r_rot_x..z`` (rad), ``r_trans_x..z``: residual ``[rot, trans]`` (metres for
  ``per-window-gt``, the source's unit for ``none``);
* ``sigma_rot_x..z``, ``sigma_trans_x..z``: predicted σ in the same units;
* ``log_var_raw_*``: the source's log σ² before any scale (clamp-hit statistics);
* ``d2_rot``, ``d2_trans``: ``Σ r²/σ²`` per block.

Floats are written with 17 significant digits so every number of ``report.json``'s
``calibration`` section is recomputable from the file.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vggt_uncertainty_ros.calibration import (
    BLOCKS,
    SQRT_INFO_MAX,
    anees_bounds,
    block_metrics,
    mahalanobis_d2,
)
from vggt_uncertainty_ros.calibration.bootstrap import default_block_length, window_mean_cis
from vggt_uncertainty_ros.evaluate.residuals import WindowEval

__all__ = [
    "FRAME_COLUMNS",
    "FrameTable",
    "calibration_block",
    "frame_table",
    "to_jsonable",
    "write_frames_csv",
    "write_report_json",
]

_log = logging.getLogger(__name__)

_AXES = ("x", "y", "z")
_COMPONENTS = [f"{blk}_{ax}" for blk in ("rot", "trans") for ax in _AXES]
FRAME_COLUMNS: list[str] = (
    ["window", "anchor_stamp_ns", "stamp_ns", "index_in_window", "scale"]
    + [f"r_{c}" for c in _COMPONENTS]
    + [f"sigma_{c}" for c in _COMPONENTS]
    + [f"log_var_raw_{c}" for c in _COMPONENTS]
    + ["d2_rot", "d2_trans"]
)
_BLOCK = {"rot": slice(0, 3), "trans": slice(3, 6)}


@dataclass(frozen=True)
class FrameTable:
    """All evaluated frames stacked (rows of ``frames.csv``)."""

    window: np.ndarray
    anchor_stamp_ns: np.ndarray
    stamp_ns: np.ndarray
    index_in_window: np.ndarray
    scale: np.ndarray
    residual: np.ndarray
    sigma: np.ndarray
    log_var_raw: np.ndarray
    d2_rot: np.ndarray
    d2_trans: np.ndarray
    trans_scored: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.stamp_ns.size)


def frame_table(evals: Sequence[WindowEval]) -> FrameTable:
    """Stack the windows' evaluated frames and compute their d² per block."""

    def cat(get, dtype, shape=()):
        parts = [np.asarray(get(e), dtype=dtype).reshape(-1, *shape) for e in evals]
        return np.concatenate(parts) if parts else np.zeros((0, *shape), dtype)

    residual = cat(lambda e: e.residual, np.float64, (6,))
    sigma = cat(lambda e: e.sigma, np.float64, (6,))
    var = sigma**2
    return FrameTable(
        window=cat(lambda e: np.full(e.stamps_ns.size, e.window), np.int64),
        anchor_stamp_ns=cat(lambda e: np.full(e.stamps_ns.size, e.anchor_stamp_ns), np.int64),
        stamp_ns=cat(lambda e: e.stamps_ns, np.int64),
        index_in_window=cat(lambda e: e.index_in_window, np.int64),
        scale=cat(lambda e: np.full(e.stamps_ns.size, e.scale_applied), np.float64),
        residual=residual,
        sigma=sigma,
        log_var_raw=cat(lambda e: e.log_var_raw, np.float64, (6,)),
        d2_rot=mahalanobis_d2(residual[:, :3], var[:, :3]) if len(residual) else np.zeros(0),
        d2_trans=mahalanobis_d2(residual[:, 3:], var[:, 3:]) if len(residual) else np.zeros(0),
        trans_scored=cat(lambda e: np.full(e.stamps_ns.size, e.scale_ok), bool),
    )


def calibration_block(
    table: FrameTable, block: str, n_windows: int, parameterization: str = "log_var"
) -> dict[str, Any] | None:
    """Calibration statistics of one block (``rot`` or ``trans``) as a JSON-ready dict.

    ``calibration.block_metrics`` over the table's rows, with ``anees_bounds_95`` for
    N = ``n_windows`` (frames of a window share one backbone pass, so the window is the
    independent unit), ``clamp_hit`` = low + high clamp fractions of the raw log σ², and
    ``d2_ci95`` and ``coverage_ci95``: 95 % intervals of the d² mean and of each coverage level
    from a moving-block bootstrap over windows (``calibration.bootstrap``; the block spans the
    windows that share a frame).
    The translation block scores only frames of windows with a trustworthy scale
    (``trans_scored``); None when no frame is scored.
    """
    sl = _BLOCK[block]
    rows = np.ones(len(table), bool)
    if block == "trans" and table.trans_scored is not None:  # scale protocol: unscaled windows excluded
        rows = table.trans_scored
    if not rows.any():
        return None
    kwargs: dict[str, Any] = {"log_var_head": table.log_var_raw[rows, sl]}
    if parameterization == "sqrt_info":
        kwargs["sqrt_info_bound"] = SQRT_INFO_MAX[BLOCKS.index(block)]
    metrics = block_metrics(table.residual[rows, sl], table.sigma[rows, sl] ** 2, **kwargs)
    out = asdict(metrics)
    out["anees_bounds_95"] = list(anees_bounds(n_windows, 3, 0.95))
    out["anees_bounds_95_per_frame"] = list(metrics.anees_bounds_95)
    out["clamp_hit"] = metrics.clamp_hit_low + metrics.clamp_hit_high
    # block bootstrap over windows (frames of a window share frame 0, windows overlap); the
    # block covers the windows sharing a frame (the most windows any frame appears in)
    d2 = np.sum(table.residual[rows, sl] ** 2 / table.sigma[rows, sl] ** 2, axis=1)
    overlap = int(np.unique(table.stamp_ns, return_counts=True)[1].max()) + 1 if len(table) else 1
    block_len = max(overlap, default_block_length(len(np.unique(table.window[rows]))))
    d2_ci, cov_ci = window_mean_cis(d2, table.window[rows], block_length=block_len, n_boot=1000, seed=0)

    def finite(ci: tuple[float, float]) -> list[float | None]:  # None: fewer than 2 scored windows
        return [x if np.isfinite(x) else None for x in ci]

    out["d2_ci95"] = finite(d2_ci)
    out["coverage_ci95"] = {key: finite(ci) for key, ci in cov_ci.items()}
    out["bootstrap_block_windows"] = block_len
    return out


def to_jsonable(value: Any) -> Any:
    """Recursively convert numpy scalars/arrays and tuples; NaN/inf become None (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    return value


def write_report_json(path: Path, report: dict[str, Any]) -> None:
    """Write ``report.json`` (strict JSON, NaN as null, sorted keys)."""
    path.write_text(json.dumps(to_jsonable(report), indent=2, sort_keys=True, allow_nan=False) + "\n")


def write_frames_csv(path: Path, table: FrameTable) -> None:
    """Write ``frames.csv`` (columns :data:`FRAME_COLUMNS`, floats with 17 significant digits)."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(FRAME_COLUMNS)
        for k in range(len(table)):
            floats = [
                *table.residual[k],
                *table.sigma[k],
                *table.log_var_raw[k],
                table.d2_rot[k],
                table.d2_trans[k],
            ]
            writer.writerow(
                [
                    int(table.window[k]),
                    int(table.anchor_stamp_ns[k]),
                    int(table.stamp_ns[k]),
                    int(table.index_in_window[k]),
                    f"{table.scale[k]:.17g}",
                ]
                + [f"{v:.17g}" for v in floats]
            )
