"""Scalar logging of a training run: a local JSONL file, TensorBoard and (optionally) W&B.

The JSONL file ``<run_dir>/metrics.jsonl`` is the run's own record and the only input of
the charts (:mod:`vggt_uncertainty_ros.trainer.charts`). One line per logging event::

    {"step": 50, "split": "val", "wall_s": 12.3, "metrics": {"calibration/d2_rot_mean": 2.9, ...}}

``split`` is ``train`` (metrics of the current batch), ``val`` (held-out sequences) or
``speed``. TensorBoard receives the same scalars: training ones under their own names
(``calibration/d2_rot_mean``, ``loss/pose_uncertainty_nll``, ``train/lr``, ``time/wall_s``),
validation ones prefixed with ``val/``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from vggt_uncertainty_ros.errors import DataError

_log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
SPLITS = ("train", "val", "speed")


def _finite_or_none(value: float) -> float | None:
    v = float(value)
    return v if math.isfinite(v) else None


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """All records of ``<run_dir>/metrics.jsonl`` in file order (non-finite values are ``None``).

    Raises:
        DataError: the file is missing or a line is not a JSON record.
    """
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        raise DataError(f"no training log {path}; is {run_dir} a run directory?")
    records = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{lineno}: not JSON: {err}") from err
            if not isinstance(rec, dict) or "step" not in rec or "metrics" not in rec:
                raise DataError(f"{path}:{lineno}: not a metrics record")
            records.append(rec)
    return records


def series(records: list[dict[str, Any]], split: str, name: str) -> tuple[list[int], list[float]]:
    """(steps, values) of metric ``name`` in ``split``; missing and non-finite values are skipped."""
    steps: list[int] = []
    values: list[float] = []
    for rec in records:
        if rec.get("split") != split:
            continue
        value = rec["metrics"].get(name)
        if value is None:
            continue
        steps.append(int(rec["step"]))
        values.append(float(value))
    return steps, values


def iter_names(records: list[dict[str, Any]], split: str) -> Iterator[str]:
    """Metric names present in ``split``, in first-seen order."""
    seen: dict[str, None] = {}
    for rec in records:
        if rec.get("split") == split:
            seen.update(dict.fromkeys(rec["metrics"]))
    yield from seen


class MetricLogger:
    """Fan-out of scalars to the JSONL file, TensorBoard and optionally Weights & Biases.

    Args:
        run_dir: run directory.
        tensorboard: also write TensorBoard event files to ``run_dir/tensorboard``.
        wandb: also log to W&B (silently skipped, with a warning, if ``wandb`` is not importable).
        wandb_mode: ``offline`` or ``online``.
        wandb_project: W&B project.
        config: run configuration (for W&B).
        resume_step: when resuming, records after this step are dropped from the JSONL file
            and TensorBoard events after it are purged, so the logs match the restored state.
    """

    def __init__(
        self,
        run_dir: str | Path,
        *,
        tensorboard: bool = True,
        wandb: bool = False,
        wandb_mode: str = "offline",
        wandb_project: str = "vggt-uncertainty",
        config: Mapping[str, Any] | None = None,
        resume_step: int | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / METRICS_FILE
        if resume_step is None:
            self.path.write_text("", encoding="utf-8")
        else:
            self._truncate_after(resume_step)
        self._fh = self.path.open("a", encoding="utf-8")
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # lazy: optional, slow to import

            purge = None if resume_step is None else resume_step + 1
            self._tb = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"), purge_step=purge)
        self._wandb = None
        if wandb and wandb_mode != "disabled":
            self._wandb = _start_wandb(self.run_dir, wandb_mode, wandb_project, config or {})

    def _truncate_after(self, step: int) -> None:
        if not self.path.exists():
            return
        kept = [
            line
            for line in self.path.read_text(encoding="utf-8").splitlines()
            if line.strip() and int(json.loads(line)["step"]) <= step
        ]
        self.path.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")

    def log(self, step: int, split: str, metrics: Mapping[str, float], wall_s: float) -> None:
        """Record ``metrics`` of ``split`` at ``step`` everywhere.

        Args:
            step: optimizer steps done.
            split: ``train``, ``val`` or ``speed``.
            metrics: name → scalar.
            wall_s: seconds since the run (first invocation) started.
        """
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        clean = {k: _finite_or_none(v) for k, v in metrics.items()}
        rec = {"step": int(step), "split": split, "wall_s": round(float(wall_s), 4), "metrics": clean}
        self._fh.write(json.dumps(rec, sort_keys=False) + "\n")
        self._fh.flush()
        prefix = "val/" if split == "val" else ("speed/" if split == "speed" else "")
        if self._tb is not None:
            for name, value in clean.items():
                if value is not None:
                    self._tb.add_scalar(prefix + name, value, global_step=step, walltime=None)
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log({prefix + k: v for k, v in clean.items() if v is not None}, step=step)

    def close(self) -> None:
        """Flush and close every sink."""
        self._fh.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


def _start_wandb(run_dir: Path, mode: str, project: str, config: Mapping[str, Any]) -> Any:
    try:
        import wandb  # lazy: optional dependency
    except ImportError:
        _log.warning("output.wandb is true but wandb is not installed; logging locally only")
        return None
    id_file = run_dir / "wandb_id.txt"
    run_id = id_file.read_text(encoding="utf-8").strip() if id_file.exists() else wandb.util.generate_id()
    id_file.write_text(run_id + "\n", encoding="utf-8")
    return wandb.init(
        project=project, mode=mode, dir=str(run_dir), config=dict(config), id=run_id, resume="allow", name=run_dir.name
    )
