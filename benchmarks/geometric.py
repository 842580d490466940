"""Geometric backbone benchmark: CPU speed per window, and how its errors follow its quality cues.

Run as a script (not installed; ``python -m benchmarks.geometric``, repository root on the path):

* speed: milliseconds per ``S``-frame window of ``W x H`` renders on the CPU, cold (every frame
  detected) and sliding (stride 4: half the frames' keypoints reused through ``frame_ids``);
* cues: over a few synthetic sequences of different difficulty levels, every non-reference
  frame's rotation error (degrees, against ground truth) and the Spearman correlation of that
  error with each feature column (issue 12 quoted +0.63...+0.70 for optical flow and
  -0.64...-0.71 for the match count), plus the share of frames flagged invalid.

Images are rendered in memory (:func:`vggt_uncertainty_ros.data.synth.render_sequence_frames`),
nothing is written.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr

from vggt_uncertainty_ros.data.synth import plan_sequence, render_sequence_frames
from vggt_uncertainty_ros.model.geometric import FEATURE_NAMES, GeometricBackbone, GeometricConfig


@dataclass(frozen=True)
class SpeedResult:
    """Milliseconds per window (median over windows)."""

    cold_ms: float
    sliding_ms: float
    cold_cpu_ms: float  # process CPU time (all threads): robust to other load on the machine
    windows: int
    frames: int
    width: int
    height: int


def speed(
    width: int = 640, height: int = 480, frames: int = 8, windows: int = 4, seed: int = 0, detector: str = "orb"
) -> SpeedResult:
    """Time :meth:`GeometricBackbone.predict` on renders of one clean sequence."""
    n = frames + 4 * (windows - 1)
    plan = plan_sequence(seed, n, width, height, 30.0)
    images, _, _ = render_sequence_frames(plan)
    bb = GeometricBackbone(GeometricConfig(detector=detector, K=tuple(map(tuple, plan.K))))
    cold, cold_cpu, sliding = [], [], []
    for w in range(windows):
        idx = list(range(4 * w, 4 * w + frames))
        t, c = time.perf_counter(), time.process_time()
        GeometricBackbone(bb.config).predict([images[k] for k in idx])
        cold.append(time.perf_counter() - t)
        cold_cpu.append(time.process_time() - c)
        t = time.perf_counter()
        bb.predict([images[k] for k in idx], frame_ids=idx)
        sliding.append(time.perf_counter() - t)
    return SpeedResult(
        1e3 * statistics.median(cold),
        1e3 * statistics.median(sliding[1:] or sliding),
        1e3 * statistics.median(cold_cpu),
        windows,
        frames,
        width,
        height,
    )


def rotation_errors_deg(T_pred: np.ndarray, T_gt: np.ndarray) -> np.ndarray:
    """Geodesic angle (degrees) between predicted and true ``R_0_i`` (NaN where the prediction is NaN)."""
    dR = np.swapaxes(T_gt[:, :3, :3], 1, 2) @ T_pred[:, :3, :3]
    cos = np.clip((np.trace(dR, axis1=1, axis2=2) - 1.0) / 2.0, -1.0, 1.0)
    return np.degrees(np.arccos(cos))


def cue_study(
    seeds: Sequence[int],
    levels: Sequence[float],
    n_frames: int = 60,
    width: int = 320,
    height: int = 240,
    fps: float = 10.0,
    frames: int = 8,
    stride: int = 4,
) -> dict:
    """Rotation error of every frame i > 0 of every window, against each cue (Spearman)."""
    errs, feats, per_seq = [], [], {}
    n_invalid = n_total = 0
    for seed, level in zip(seeds, levels):
        plan = plan_sequence(seed, n_frames, width, height, fps, difficulty=level)
        images, T_world, _ = render_sequence_frames(plan)
        bb = GeometricBackbone(GeometricConfig(K=tuple(map(tuple, plan.K))))
        seq_err, seq_feat = [], []
        for start in range(0, n_frames - frames + 1, stride):
            idx = list(range(start, start + frames))
            pred = bb.predict([images[k] for k in idx], frame_ids=idx)
            T_gt = np.linalg.inv(T_world[idx[0]])[None] @ T_world[idx]
            e = rotation_errors_deg(pred.T_0_i, T_gt)
            n_total += frames - 1
            n_invalid += int((~pred.valid[1:]).sum())
            ok = pred.valid.copy()
            ok[0] = False
            seq_err.append(e[ok])
            seq_feat.append(pred.features[ok])
        e_all, f_all = np.concatenate(seq_err), np.concatenate(seq_feat)
        per_seq[f"seed{seed}_level{level:g}"] = {
            "frames": int(len(e_all)),
            "invalid": int(bb.stats["frames_invalid"]),
            "rot_err_deg_median": float(np.median(e_all)) if len(e_all) else float("nan"),
            "rot_err_deg_p90": float(np.percentile(e_all, 90)) if len(e_all) else float("nan"),
            "spearman_flow": _rho(e_all, f_all[:, FEATURE_NAMES.index("flow_median")]),
            "spearman_inliers": _rho(e_all, f_all[:, FEATURE_NAMES.index("inliers")]),
            "spearman_matches": _rho(e_all, f_all[:, FEATURE_NAMES.index("matches")]),
        }
        errs.append(e_all)
        feats.append(f_all)
    e_all, f_all = np.concatenate(errs), np.concatenate(feats)
    return {
        "frames": int(len(e_all)),
        "invalid_fraction": n_invalid / max(n_total, 1),
        "rot_err_deg_median": float(np.median(e_all)),
        "spearman_pooled": {name: _rho(e_all, f_all[:, k]) for k, name in enumerate(FEATURE_NAMES)},
        "sequences": per_seq,
    }


def _rho(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or np.ptp(b) == 0 or np.ptp(a) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def main(argv: Sequence[str] | None = None) -> None:
    """Print the speed figure and the cue study as JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=4, help="timed windows (default 4)")
    ap.add_argument("--detector", default="orb", choices=("orb", "sift"))
    ap.add_argument("--no-cues", action="store_true", help="speed only")
    ap.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13, 14])
    ap.add_argument("--levels", type=float, nargs="+", default=[0.0, 0.35, 0.7, 1.0])
    ap.add_argument("--frames", type=int, default=60, help="frames per cue-study sequence (default 60)")
    ap.add_argument("--fps", type=float, default=10.0, help="image rate of the cue-study sequences (default 10)")
    ap.add_argument("--size", type=int, nargs=2, default=[320, 240], metavar=("W", "H"))
    args = ap.parse_args(argv)
    s = speed(windows=args.windows, detector=args.detector)
    print(
        f"geometric ({args.detector}): {s.cold_ms:.0f} ms per {s.frames}-frame {s.width}x{s.height} window "
        f"(cold; {s.cold_cpu_ms:.0f} ms of CPU time), {s.sliding_ms:.0f} ms sliding with stride 4 (keypoints reused)"
    )
    if not args.no_cues:
        if len(args.levels) != len(args.seeds):
            ap.error("--seeds and --levels need the same length")
        print(
            json.dumps(
                cue_study(
                    args.seeds, args.levels, n_frames=args.frames, width=args.size[0], height=args.size[1], fps=args.fps
                ),
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
