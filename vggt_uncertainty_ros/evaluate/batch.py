"""Evaluating many sequences: one report per sequence plus a pooled one, sharded under torchrun.

:func:`evaluate_many` gives sequence ``i`` to rank ``i mod world_size``
(:func:`vggt_uncertainty_ros.distributed.owner`). Each rank runs :func:`evaluate` on its
sequences into ``OUT/<name>/`` and then writes ``OUT/<name>/frames.safetensors`` (the frame
table, atomically) as the sequence's completion mark, so a rerun skips finished sequences.
After a barrier, rank 0 pools every sequence's frames into ``OUT/pooled.json``: calibration
per block over all evaluated frames (N = total windows for the ANEES bounds), plus a
per-sequence summary (windows, d² means, ATE).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save_file

from vggt_uncertainty_ros.data.manifest import ManifestEntry
from vggt_uncertainty_ros.distributed import DistContext, all_ok, atomic_write, barrier, owner
from vggt_uncertainty_ros.errors import DataError, VggtUncertaintyError
from vggt_uncertainty_ros.evaluate.api import evaluate
from vggt_uncertainty_ros.evaluate.config import EvalConfig
from vggt_uncertainty_ros.evaluate.report import FrameTable, calibration_block, to_jsonable

__all__ = ["DONE_FILE", "POOLED_FILE", "BatchResult", "evaluate_many"]

_log = logging.getLogger(__name__)

DONE_FILE = "frames.safetensors"
POOLED_FILE = "pooled.json"


@dataclass
class BatchResult:
    """What :func:`evaluate_many` did on this rank.

    Attributes:
        evaluated: names of the sequences this rank evaluated.
        skipped: names of this rank's sequences found finished (resume).
        pooled: the content of ``pooled.json`` (rank 0 only; empty elsewhere).
    """

    evaluated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    pooled: dict[str, Any] = field(default_factory=dict)


def _save_table(path: Path, table: FrameTable, report: dict[str, Any]) -> None:
    arrays = {f.name: np.ascontiguousarray(getattr(table, f.name)) for f in dataclasses.fields(FrameTable)}
    meta = {
        "n_windows": str(int(report["n_windows"])),
        "parameterization": str(report.get("parameterization", "log_var")),
        "ate_m": json.dumps((report.get("trajectory") or {}).get("ate_rmse_m")),
    }
    atomic_write(path, lambda tmp: save_file(arrays, str(tmp), metadata=meta))


def _load_table(path: Path) -> tuple[FrameTable, dict[str, str]]:
    try:
        with safe_open(str(path), framework="numpy") as fh:
            meta = dict(fh.metadata() or {})
        arrays = load_file(str(path))
        table = FrameTable(**{f.name: arrays[f.name] for f in dataclasses.fields(FrameTable)})
    except (OSError, ValueError, KeyError, TypeError, SafetensorError) as err:
        raise DataError(f"evaluation table {path} is unreadable ({err}); delete it to evaluate again") from err
    return table, meta


def _concat(tables: Sequence[FrameTable]) -> FrameTable:
    return FrameTable(
        **{f.name: np.concatenate([getattr(t, f.name) for t in tables]) for f in dataclasses.fields(FrameTable)}
    )


def _pool(entries: Sequence[ManifestEntry], out_dir: Path) -> dict[str, Any]:
    tables, per_seq, n_total, params = [], {}, 0, set()
    for e in entries:
        table, meta = _load_table(out_dir / e.name / DONE_FILE)
        n = int(meta["n_windows"])
        per_seq[e.name] = {
            "path": str(e.path),
            "n_windows": n,
            "n_frames": len(table),
            "d2_rot_mean": float(np.mean(table.d2_rot)) if len(table) else None,
            "d2_trans_mean": float(np.mean(table.d2_trans)) if len(table) else None,
            "ate_rmse_m": json.loads(meta.get("ate_m", "null")),
            "report": f"{e.name}/report.json",
        }
        if n:
            tables.append(table)
            n_total += n
            params.add(meta.get("parameterization", "log_var"))
    pooled: dict[str, Any] = {
        "n_sequences": len(entries),
        "n_windows": n_total,
        "sequences": per_seq,
        "calibration": {"rot": None, "trans": None},
    }
    if len(params) > 1:
        raise DataError(f"sequences were evaluated with different head parameterizations {sorted(params)}")
    if tables:
        table = _concat(tables)
        pooled["n_frames"] = len(table)
        for block in ("rot", "trans"):
            pooled["calibration"][block] = calibration_block(table, block, n_total, next(iter(params)))
    return pooled


def evaluate_many(
    entries: Sequence[ManifestEntry],
    base: EvalConfig,
    out_dir: str | Path,
    ctx: DistContext | None = None,
    progress: bool = False,
) -> BatchResult:
    """Evaluate every sequence of ``entries`` (sharded over the ranks of ``ctx``) and pool them.

    Args:
        entries: the sequences (e.g. ``sequences_by_role(manifest, "test")``); names are unique.
        base: settings shared by all sequences; its ``data``, ``gt``, ``image_topic`` and
            ``out_dir`` are replaced per sequence (``image_topic`` only when the entry has one).
        out_dir: output folder: ``<name>/`` per sequence and ``pooled.json``.
        ctx: the torch.distributed context (None: a world of one).
        progress: tqdm bar per sequence.

    Raises:
        DataError: names repeat, or a table cannot be read back.
        VggtUncertaintyError: a sequence could not be evaluated (on any rank; all ranks stop).
    """
    ctx = ctx or DistContext()
    out = Path(out_dir)
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise DataError(f"sequence names repeat: {sorted(n for n in set(names) if names.count(n) > 1)}")
    result = BatchResult()
    error: VggtUncertaintyError | None = None
    for i, entry in enumerate(entries):
        if owner(i, ctx.world_size) != ctx.rank:
            continue
        done = out / entry.name / DONE_FILE
        if done.exists():
            result.skipped.append(entry.name)
            continue
        cfg = dataclasses.replace(
            base,
            data=entry.path,
            gt=entry.gt_path,
            out_dir=out / entry.name,
            image_topic=entry.image_topic or base.image_topic,
        )
        _log.info("rank %d: evaluating %s (%s)", ctx.rank, entry.name, entry.path)
        try:
            res = evaluate(cfg, progress=progress)
        except VggtUncertaintyError as err:
            error = type(err)(f"{entry.name}: {err}")
            break
        _save_table(done, res.table, res.report)
        result.evaluated.append(entry.name)
    if not all_ok(ctx, error is None):
        raise error or DataError("another rank failed while evaluating; see its log")
    barrier(ctx)
    if ctx.is_main:
        try:
            result.pooled = _pool(entries, out)
            text = json.dumps(to_jsonable(result.pooled), indent=2, allow_nan=False) + "\n"
            atomic_write(out / POOLED_FILE, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        except DataError as err:
            error = err
    if not all_ok(ctx, error is None):
        raise error or DataError("rank 0 failed to pool the evaluations; see its log")
    return result
