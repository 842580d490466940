"""The analysis' figures of a training run, drawn from its local log alone.

:func:`draw_charts` reads ``<run_dir>/metrics.jsonl`` (:mod:`.logs`) and ``config.yaml`` (for
the parameterization) and writes PNGs with matplotlib's Agg backend:

* ``loss_curves.png``: ``loss/pose_uncertainty_nll`` (training batches and validation);
* ``calibration.png``: d² per block vs step with the target 3 (and ANEES 95 % bounds);
* ``clamp_hit_rate.png``: fraction of outputs on a clamp (log σ² bounds or √λ caps);
* ``sigma_percentiles.png`` / ``sqrt_info_percentiles.png``: p50/p90/p99 per block;
* ``residual_distribution.png``: residual percentiles per block vs step;
* ``scale_fitting.png``: mean ‖s·t_pred‖ vs mean ‖t_gt‖;
* ``sigma_mean.png``: mean σ per block;

plus ``summary.md``: a markdown table of the final training and validation metrics.
Metrics are picked by name pattern, so every name the calibration module logs under a
figure's family is drawn.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from vggt_uncertainty_ros.trainer.logs import iter_names, read_metrics, series

_log = logging.getLogger(__name__)

_BLOCKS = ("rot", "trans")
#: training batches as thin lines, validation as dashed lines with markers
_STYLES: dict[str, dict[str, Any]] = {
    "train": {"lw": 1.2, "alpha": 0.8},
    "val": {"marker": "o", "ms": 3, "lw": 1.5, "ls": "--"},
}


def _pyplot() -> Any:
    # lazy: matplotlib (slow to import) only when charts are drawn, with the headless backend
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _names(records: list[dict[str, Any]], pattern: str) -> list[str]:
    rx = re.compile(pattern)
    names: dict[str, None] = {}
    for split in ("train", "val"):
        names.update(dict.fromkeys(n for n in iter_names(records, split) if rx.search(n)))
    return list(names)


def _plot_series(ax: Any, records: list[dict[str, Any]], name: str, label: str | None = None, **kw: Any) -> int:
    """Plot ``name`` for train (line) and val (markers); returns points drawn."""
    drawn = 0
    label = label or name
    for split, style in _STYLES.items():
        steps, values = series(records, split, name)
        if steps:
            line = ax.plot(steps, values, label=f"{label} ({split})", **{**style, **kw})
            kw.setdefault("color", line[0].get_color())
            drawn += len(steps)
    return drawn


def _figure(path: Path, title: str, panels: list[tuple[str, Callable[[Any], int]]], ylabel: list[str]) -> bool:
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    total = 0
    for ax, (sub, draw), yl in zip(axes[0], panels, ylabel, strict=True):
        n = draw(ax)
        total += n
        ax.set_title(sub)
        ax.set_xlabel("step")
        ax.set_ylabel(yl)
        ax.grid(True, alpha=0.3)
        if n:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return total > 0


def _block_panels(records: list[dict[str, Any]], pattern: str, **kw: Any) -> list[tuple[str, Callable[[Any], int]]]:
    panels = []
    for block in _BLOCKS:
        names = _names(records, pattern.format(block=block))

        def draw(ax: Any, names: list[str] = names) -> int:
            return sum(_plot_series(ax, records, n, **kw) for n in names)

        panels.append((block, draw))
    return panels


def _calibration_panels(records: list[dict[str, Any]]) -> list[tuple[str, Callable[[Any], int]]]:
    panels = []
    for block in _BLOCKS:
        names = _names(records, rf"d2_{block}_mean$")

        def draw(ax: Any, names: list[str] = names) -> int:
            n = sum(_plot_series(ax, records, name) for name in names)
            ax.axhline(3.0, color="k", ls=":", lw=1.2, label="target 3")
            lo_names = _names(records, r"anees_95_lo$")
            hi_names = _names(records, r"anees_95_hi$")
            if lo_names and hi_names:
                s, lo = series(records, "val", lo_names[0])
                _, hi = series(records, "val", hi_names[0])
                if s and len(lo) == len(hi):
                    ax.fill_between(s, lo, hi, color="green", alpha=0.12, label="ANEES 95 % (val)")
            if n and _max_value(records, names) > 30:  # spikes (d² 12-15 in the analysis) stay readable
                ax.set_yscale("log")
            return n

        panels.append((f"d² {block} (χ²₃ mean = 3)", draw))
    return panels


def _max_value(records: list[dict[str, Any]], names: list[str]) -> float:
    vals = [v for n in names for split in ("train", "val") for v in series(records, split, n)[1]]
    return max(vals) if vals else 0.0


def _scale_panel(records: list[dict[str, Any]]) -> list[tuple[str, Callable[[Any], int]]]:
    names = _names(records, r"(pred_trans_norm_scaled_mean|gt_trans_norm_mean)$")

    def draw(ax: Any) -> int:
        return sum(_plot_series(ax, records, n) for n in names)

    return [("mean ‖s·t_pred‖ vs mean ‖t_gt‖", draw)]


def _loss_panel(records: list[dict[str, Any]]) -> list[tuple[str, Callable[[Any], int]]]:
    def draw(ax: Any) -> int:
        n = _plot_series(ax, records, "loss/pose_uncertainty_nll", label="NLL")
        if any(v for v in series(records, "train", "loss/prior")[1]):
            n += _plot_series(ax, records, "loss/prior", label="prior")
        return n

    return [("pose-uncertainty NLL per frame", draw)]


def _parameterization(run_dir: Path) -> str:
    path = run_dir / "config.yaml"
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return str(doc.get("head", {}).get("parameterization", "log_var"))
    except (OSError, yaml.YAMLError, AttributeError):
        return "log_var"


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    v = float(value)
    if not math.isfinite(v):
        return str(v)
    return f"{v:.4g}"


def summary_table(records: list[dict[str, Any]]) -> str:
    """Markdown table of the last training and validation value of every metric."""
    last: dict[str, dict[str, Any]] = {"train": {}, "val": {}}
    step = {"train": None, "val": None}
    for rec in records:
        split = rec.get("split")
        if split in last:
            last[split].update(rec["metrics"])
            step[split] = rec["step"]
    names = list(dict.fromkeys([*last["val"], *last["train"]]))
    lines = [
        f"| metric | train (step {step['train']}) | validation (step {step['val']}) |",
        "|---|---|---|",
    ]
    lines += [f"| `{n}` | {_fmt(last['train'].get(n))} | {_fmt(last['val'].get(n))} |" for n in sorted(names)]
    return "\n".join(lines) + "\n"


def draw_charts(run_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Draw every figure of the analysis for one run.

    Args:
        run_dir: run directory with ``metrics.jsonl`` (and ``config.yaml``).
        out_dir: where the PNGs and ``summary.md`` go (created).

    Returns:
        Paths written (PNG files, then ``summary.md``).

    Raises:
        DataError: the run directory has no readable training log.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    records = read_metrics(run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    param = _parameterization(run_dir)
    pct_family = "sqrt_info" if param == "sqrt_info" else "sigma"
    pct_unit = {"sqrt_info": "√λ = 1/σ (1/rad, 1/m)", "sigma": "σ (rad, m)"}[pct_family]
    figures = [
        ("loss_curves.png", "Loss", _loss_panel(records), ["nats per frame"]),
        ("calibration.png", "Calibration: mean Mahalanobis d² per block", _calibration_panels(records), ["d²", "d²"]),
        (
            "clamp_hit_rate.png",
            "Clamp-hit rate (fraction of outputs on a bound)",
            _block_panels(records, r"{block}.*(clamp_hit|at_min|at_max)"),
            ["fraction", "fraction"],
        ),
        (
            f"{pct_family}_percentiles.png",
            f"{pct_unit} percentiles",
            _block_panels(records, rf"{pct_family}_{{block}}_p(50|90|99)$"),
            ["1/rad", "1/m"] if pct_family == "sqrt_info" else ["rad", "m"],
        ),
        (
            "residual_distribution.png",
            "Residual percentiles |r|",
            _block_panels(records, r"residual_{block}_p\d+$"),
            ["rad", "m"],
        ),
        ("scale_fitting.png", "Scale fitting", _scale_panel(records), ["m"]),
        ("sigma_mean.png", "Mean σ per block", _block_panels(records, r"sigma_{block}_mean$"), ["rad", "m"]),
    ]
    written = []
    for fname, title, panels, ylabels in figures:
        path = out_dir / fname
        if not _figure(path, title, panels, ylabels):
            _log.warning("%s: no matching metric in %s/metrics.jsonl; drew an empty figure", fname, run_dir)
        written.append(path)
    summary = out_dir / "summary.md"
    summary.write_text(
        f"# Run {run_dir.name}: final metrics\n\nparameterization: `{param}`\n\n" + summary_table(records),
        encoding="utf-8",
    )
    written.append(summary)
    _log.info("wrote %d charts and summary.md to %s", len(written) - 1, out_dir)
    return written
