"""PNG plots of an evaluation (matplotlib, Agg backend) and the report.md that embeds them.

* ``reliability.png``: empirical coverage ``P(d² ≤ χ²₃⁻¹(p))`` against the nominal level p per
  block (the diagonal is perfect calibration; below it = overconfident);
* ``d2_hist.png``: histograms of d² per block against the χ²₃ density;
* ``sigma_vs_residual.png``: per component, |r| against predicted σ (log-log) with the
  ``|r| = σ`` and ``|r| = 2σ`` lines;
* ``trajectory.png``: ground truth and Sim(3)-aligned estimate from above (the two world axes
  with the largest extent), with 2σ ellipses of the frames' predicted window-relative
  translation covariance (rotated into the world, scaled with the alignment);
* ``d2_over_time.png``: d² per frame against time, with the χ²₃ 95 % quantile.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from evo.core.geometry import umeyama_alignment
from matplotlib.patches import Ellipse
from scipy import stats

from vggt_uncertainty_ros.calibration import CHI2_3
from vggt_uncertainty_ros.evaluate.report import FrameTable

__all__ = ["PLOT_FILES", "write_plots", "write_report_md"]

_log = logging.getLogger(__name__)

PLOT_FILES = {
    "reliability": "reliability.png",
    "d2_hist": "d2_hist.png",
    "sigma_vs_residual": "sigma_vs_residual.png",
    "trajectory": "trajectory.png",
    "d2_over_time": "d2_over_time.png",
}
_BLOCKS = (("rot", slice(0, 3), "rad"), ("trans", slice(3, 6), None))
_COLORS = {"rot": "tab:blue", "trans": "tab:orange"}


def _save(fig: plt.Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _reliability(table: FrameTable, path: Path) -> None:
    levels = np.linspace(0.01, 0.99, 99)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="calibrated")
    for name, d2 in (("rot", table.d2_rot), ("trans", table.d2_trans)):
        d2 = d2[np.isfinite(d2)]  # unscaled windows' translation is not scored
        cover = [np.mean(d2 <= stats.chi2.ppf(p, 3)) for p in levels]
        ax.plot(levels, cover, color=_COLORS[name], label=name)
    ax.set(
        xlabel="nominal level",
        ylabel="empirical coverage",
        xlim=(0, 1),
        ylim=(0, 1),
        title="Reliability (below the diagonal: overconfident)",
    )
    ax.legend()
    _save(fig, path)


def _d2_hist(table: FrameTable, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, (name, d2) in zip(axes, (("rot", table.d2_rot), ("trans", table.d2_trans))):
        d2 = d2[np.isfinite(d2)]
        hi = max(float(np.percentile(d2, 99)), CHI2_3["99"]) if d2.size else CHI2_3["99"]
        ax.hist(np.clip(d2, 0, hi), bins=40, range=(0, hi), density=True, color=_COLORS[name], alpha=0.6, label="d²")
        x = np.linspace(1e-3, hi, 300)
        ax.plot(x, stats.chi2.pdf(x, 3), "k-", label="χ²₃ density")
        ax.set(
            xlabel=f"d²_{name} (clipped at {hi:.1f})",
            ylabel="density",
            title=f"{name}: mean d² = {np.mean(d2):.2f} (3 if calibrated)",
        )
        ax.legend()
    _save(fig, path)


def _sigma_vs_residual(table: FrameTable, trans_unit: str, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for ax, (name, sl, unit) in zip(axes, _BLOCKS):
        finite = np.isfinite(table.residual[:, sl].ravel())
        s = table.sigma[:, sl].ravel()[finite]
        r = np.abs(table.residual[:, sl].ravel())[finite]
        if not s.size:
            ax.set_title(f"{name}: no scored frame")
            continue
        ax.scatter(s, np.maximum(r, 1e-12), s=6, alpha=0.4, color=_COLORS[name])
        lo = max(min(float(s.min()), float(r[r > 0].min()) if np.any(r > 0) else 1e-6), 1e-9)
        hi = max(float(s.max()), float(r.max()))
        xs = np.array([lo, hi])
        ax.plot(xs, xs, "k--", lw=1, label="|r| = σ")
        ax.plot(xs, 2 * xs, "k:", lw=1, label="|r| = 2σ")
        ax.set(
            xscale="log",
            yscale="log",
            xlabel=f"predicted σ ({unit or trans_unit})",
            ylabel=f"|r| ({unit or trans_unit})",
            title=f"{name}: σ vs |r| per component",
        )
        ax.legend()
    _save(fig, path)


def _trajectory(stamps_ns: np.ndarray, T_est: np.ndarray, T_gt: np.ndarray, table: FrameTable, path: Path) -> None:
    ok = np.all(np.isfinite(T_est), axis=(1, 2)) & np.all(np.isfinite(T_gt), axis=(1, 2))
    fig, ax = plt.subplots(figsize=(6, 6))
    if ok.sum() >= 3:
        est, gt = T_est[ok], T_gt[ok]
        R_a, t_a, s_a = umeyama_alignment(est[:, :3, 3].T, gt[:, :3, 3].T, True)
        p_est = (s_a * (R_a @ est[:, :3, 3].T)).T + t_a
        p_gt = gt[:, :3, 3]
        ext = np.ptp(p_gt, axis=0)
        a, b = np.sort(np.argsort(ext)[-2:])
        ax.plot(p_gt[:, a], p_gt[:, b], "k-", lw=1.5, label="ground truth")
        ax.plot(p_est[:, a], p_est[:, b], "-", color="tab:red", lw=1, label="estimate (Sim(3)-aligned)")
        first_row = {}
        for k, stamp in enumerate(table.stamp_ns.tolist()):
            first_row.setdefault(stamp, k)
        node = {int(s): k for k, s in enumerate(stamps_ns[ok].tolist())}
        step = max(1, len(node) // 40)
        for stamp, k in list(first_row.items())[::step]:
            if stamp not in node:
                continue
            j = node[stamp]
            R_world = R_a @ est[j, :3, :3]
            # σ_trans is in the estimate's unit (both scale modes); the alignment maps it to metres
            cov_cam = np.diag(table.sigma[k, 3:] ** 2) * (s_a**2)
            cov_w = R_world @ cov_cam @ R_world.T
            cov2 = cov_w[np.ix_([a, b], [a, b])]
            vals, vecs = np.linalg.eigh(cov2)
            vals = np.maximum(vals, 0.0)
            angle = float(np.degrees(np.arctan2(vecs[1, 1], vecs[0, 1])))
            ax.add_patch(
                Ellipse(
                    p_est[j, [a, b]],
                    4 * np.sqrt(vals[1]),
                    4 * np.sqrt(vals[0]),
                    angle=angle,
                    fill=False,
                    color="tab:red",
                    alpha=0.5,
                    lw=0.8,
                )
            )
        # frame the trajectories, not the ellipses: a poor backbone's 2σ ellipses can be far
        # larger than the scene, and would shrink the paths to a dot
        both = np.vstack([p_gt[:, [a, b]], p_est[:, [a, b]]])
        lo, hi = both.min(axis=0), both.max(axis=0)
        margin = 0.25 * max(float(np.max(hi - lo)), 1e-3)
        axis = "xyz"
        ax.set(
            xlabel=f"world {axis[a]} (m)",
            ylabel=f"world {axis[b]} (m)",
            aspect="equal",
            xlim=(lo[0] - margin, hi[0] + margin),
            ylim=(lo[1] - margin, hi[1] + margin),
            title="Trajectory from above, 2σ window-relative ellipses",
        )
        ax.legend()
    else:
        ax.text(0.5, 0.5, "fewer than 3 poses with ground truth", ha="center", transform=ax.transAxes)
    _save(fig, path)


def _d2_over_time(table: FrameTable, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(9, 3.5))
    if len(table):
        t = (table.stamp_ns - table.stamp_ns.min()) * 1e-9
        ax.plot(t, table.d2_rot, ".", ms=3, color=_COLORS["rot"], label="d²_rot")
        ax.plot(t, table.d2_trans, ".", ms=3, color=_COLORS["trans"], label="d²_trans")
        ax.axhline(CHI2_3["95"], color="k", ls="--", lw=1, label="χ²₃ 95 %")
        ax.set_yscale("log")
    ax.set(xlabel="time since first frame (s)", ylabel="d²", title="d² over time")
    ax.legend(loc="upper right")
    _save(fig, path)


def write_plots(
    out_dir: Path,
    table: FrameTable,
    stamps_ns: np.ndarray,
    T_est: np.ndarray,
    T_gt: np.ndarray,
    trans_unit: str,
) -> dict[str, str]:
    """Write the PNGs into ``out_dir``; returns ``{plot name: file name}`` of those written.

    Args:
        out_dir: output folder.
        table: evaluated frames.
        stamps_ns: ``[N]`` node stamps of the trajectory.
        T_est: ``[N, 4, 4]`` estimated ``T_world_cam`` (evaluation unit), NaN where missing.
        T_gt: ``[N, 4, 4]`` ground truth ``T_world_cam`` (metres), NaN where missing.
        trans_unit: unit of the table's translation residuals and σ (``m`` or ``VGGT units``).
    """
    written: dict[str, str] = {}
    if len(table) == 0:
        _log.warning("no evaluated frames; no plots")
        return written
    jobs: dict[str, Any] = {
        "reliability": lambda p: _reliability(table, p),
        "d2_hist": lambda p: _d2_hist(table, p),
        "sigma_vs_residual": lambda p: _sigma_vs_residual(table, trans_unit, p),
        "trajectory": lambda p: _trajectory(stamps_ns, T_est, T_gt, table, p),
        "d2_over_time": lambda p: _d2_over_time(table, p),
    }
    for name, job in jobs.items():
        job(out_dir / PLOT_FILES[name])
        written[name] = PLOT_FILES[name]
    return written


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def summary_lines(report: dict[str, Any]) -> list[str]:
    """Markdown tables of a report: calibration per block, trajectory, pose graph, warnings.

    Shared by ``report.md``, the ``eval`` command's terminal output and the demo.
    """
    lines = [
        "## Calibration",
        "",
        (
            "| block | d² mean | d² median | cov 68 | cov 95 | cov 99 | ANEES 95 % bounds | NLL/dof | Spearman "
            "| σ mean | ‖r‖ p90 | clamp hit |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for block, m in report["calibration"].items():
        if m is None:
            continue
        cov = m["coverage"]
        lines.append(
            f"| {block} | {_fmt(m['d2_mean'])} | {_fmt(m['d2_median'])} | {_fmt(cov['68'])} | {_fmt(cov['95'])} "
            f"| {_fmt(cov['99'])} | {_fmt(m['anees_bounds_95'])} | {_fmt(m['nll_per_dof'])} | {_fmt(m['spearman'])} "
            f"| {_fmt(m['sigma_mean'])} | {_fmt(m['residual_p90'])} | {_fmt(m['clamp_hit'])} |"
        )
    lines += ["", "Nominal coverage: 0.683 / 0.95 / 0.99; d² mean 3 when calibrated.", "", "## Trajectory", ""]
    traj = report.get("trajectory") or {}
    lines.append(
        f"ATE (Sim(3)-aligned) {_fmt(traj.get('ate_rmse_m'))} m, RPE {_fmt(traj.get('rpe_trans_rmse_m'))} m / "
        f"{_fmt(traj.get('rpe_rot_rmse_deg'))} deg (consecutive frames)."
        + (f" **Not reliable: {traj.get('n_poses')} poses.**" if traj and traj.get("ate_reliable") is False else "")
    )
    lines += ["", "## Pose graph (ATE RMSE, m)", "", "| weights | least squares | Huber |", "|---|---|---|"]
    for scheme, entry in (report.get("pgo") or {}).items():
        if isinstance(entry, dict) and "ate_rmse_m" in entry:
            lines.append(f"| {scheme} | {_fmt(entry['ate_rmse_m'])} | {_fmt(entry['ate_rmse_m_huber'])} |")
    cov = report.get("coverage")
    if cov:
        th = cov["thresholds"]
        lines += [
            "",
            "## Coverage",
            "",
            "| evaluated frames | of ground-truth frames | of image frames | span (s) | of recording span "
            "| ATE poses |",
            "|---|---|---|---|---|---|",
            f"| {cov['n_evaluated_frames']} | {_fmt(cov['fraction_of_ground_truth_frames'])} "
            f"| {_fmt(cov['fraction_of_image_frames'])} | {_fmt(cov['span_s'])} | {_fmt(cov['fraction_of_span'])} "
            f"| {cov['n_ate_poses']} |",
            "",
            f"Warned below {th['min_frame_fraction']:.0%} of the frames, {th['min_span_fraction']:.0%} of the span, "
            f"{th['min_ate_poses']} ATE poses."
            + ("" if cov.get("ok") else " **Below these thresholds: the numbers above rest on little data.**"),
        ]
    lines += ["", "## Warnings", ""]
    warnings = report.get("warnings") or {}
    lines += [f"* {k}: {v}" for k, v in warnings.items()] or ["none"]
    return lines


def write_report_md(path: Path, report: dict[str, Any], plots: dict[str, str]) -> None:
    """Write ``report.md``: headline numbers, warnings, and the embedded plots."""
    lines = [
        "# Evaluation report",
        "",
        f"* source: `{report['source']}`, data: `{report['config']['data']}`",
        f"* scale mode: `{report['scale_mode']}` — {report['scale_note']}",
        (
            f"* windows: {report['n_windows']}, evaluated frames: {report['n_frames']}"
            f" (unique: {report['n_unique_frames']})"
        ),
        "",
        *summary_lines(report),
    ]
    lines += ["", "## Plots", ""]
    for name, file in plots.items():
        lines += [f"### {name.replace('_', ' ')}", "", f"![{name}]({file})", ""]
    path.write_text("\n".join(lines) + "\n")
