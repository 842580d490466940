"""``--poses-topic``: recorded relative-pose messages judged against ground truth.

The messages are written by the test (node-like: VGGT-unit translations with a per-window
scale, covariances in ROS order in the anchor frame, noise drawn from those covariances), so
the evaluator must find them calibrated; every report number is recomputed from frames.csv,
ATE/RPE are compared with the evo command-line tools.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    N_FRAMES,
    POSE_TOPIC,
    copy_bag_with_poses,
    read_frames_csv,
    write_pose_bag,
)
from scipy import stats

from vggt_uncertainty_ros.calibration import CHI2_3
from vggt_uncertainty_ros.calibration.bootstrap import window_mean_cis
from vggt_uncertainty_ros.cli.main import main as cli_main
from vggt_uncertainty_ros.data.groundtruth import GroundTruth
from vggt_uncertainty_ros.data.tum import read_tum_list, read_tum_trajectory
from vggt_uncertainty_ros.data.types import WarningCounter
from vggt_uncertainty_ros.evaluate import EvalConfig, evaluate
from vggt_uncertainty_ros.geometry import invert_transform, residual_cov_to_ros, se3_exp
from vggt_uncertainty_ros.online.measurements import format_anchor_frame_id

EVO_BIN = Path(sys.executable).parent
MIN_MOTION = 0.002


def _node_like_messages(tum_dir: Path, seed: int, size: int = 8, stride: int = 4):
    """Messages as the node would publish them, with noise drawn from their covariances."""
    rng = np.random.default_rng(seed)
    frame_stamps, _ = read_tum_list(tum_dir / "rgb.txt")
    gt = GroundTruth(*read_tum_trajectory(tum_dir / "groundtruth.txt"), WarningCounter())
    msgs = []
    for start in range(0, len(frame_stamps) - size + 1, stride):
        anchor = int(frame_stamps[start])
        frame_id = format_anchor_frame_id("camera_optical", anchor)
        T_w0 = gt.lookup(anchor)
        rels = [invert_transform(T_w0) @ gt.lookup(int(frame_stamps[i])) for i in range(start + 1, start + size)]
        # a random VGGT unit per window, where the protocol can recover it (>= 2 frames beyond
        # 2 cm); otherwise the protocol falls back to s = 1, so the unit must be metres there
        moving = sum(np.linalg.norm(rel[:3, 3]) > MIN_MOTION for rel in rels)
        s_window = rng.uniform(0.5, 2.0) if moving >= 2 else 1.0  # metres per VGGT unit
        for i, rel in zip(range(start + 1, start + size), rels):
            # rad, VGGT units; translation noise << motion, so the scale fit stays exact
            sigma = np.concatenate([rng.uniform(0.002, 0.02, 3), rng.uniform(0.00005, 0.0002, 3)])
            sigma_m = sigma * np.array([1, 1, 1, s_window, s_window, s_window])
            T_m = rel @ se3_exp(rng.normal(0.0, sigma_m))
            T_pred = T_m.copy()
            T_pred[:3, 3] /= s_window
            msgs.append((int(frame_stamps[i]), frame_id, T_pred, residual_cov_to_ros(T_pred, np.diag(sigma**2))))
    return msgs


def _evo_rmse(tmp: Path, *args: str) -> float:
    res = tmp / "evo_res.zip"
    res.unlink(missing_ok=True)
    subprocess.run(
        [str(EVO_BIN / args[0]), *args[1:], "--save_results", str(res), "--no_warnings"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    with zipfile.ZipFile(res) as z:
        return float(json.loads(z.read("stats.json"))["rmse"])


@pytest.fixture(scope="module")
def pose_run(synth_seq, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("poses")
    tum = synth_seq.paths["tum"]
    bag = write_pose_bag(tmp / "poses_bag", _node_like_messages(tum, seed=11))
    # this short synthetic sequence moves < 2 cm per window: a lower motion threshold scores its translation
    cfg = EvalConfig(
        data=bag,
        out_dir=tmp / "out",
        source="poses-topic",
        poses_topic=POSE_TOPIC,
        gt=tum / "groundtruth.txt",
        min_motion_m=MIN_MOTION,
    )
    return tmp, bag, tum, evaluate(cfg)


def test_report_matches_frames_csv(pose_run) -> None:
    _, _, _, result = pose_run
    report = json.loads(result.files["report_json"].read_text())
    for key in ("source", "scale_mode", "n_windows", "n_frames", "calibration", "trajectory", "pgo", "warnings"):
        assert key in report
    assert report["source"] == "poses-topic" and report["scale_mode"] == "per-window-gt"
    assert report["warnings"] == {}
    f = read_frames_csv(result.files["frames_csv"])
    n_windows = len(np.unique(f["window"]))
    starts = range(0, N_FRAMES - 8 + 1, 4)
    assert report["n_windows"] == n_windows == len(starts)
    assert report["n_frames"] == len(f["stamp_ns"]) == len(starts) * 7
    for block in ("rot", "trans"):
        r = np.stack([f[f"r_{block}_{a}"] for a in "xyz"], axis=1)
        s = np.stack([f[f"sigma_{block}_{a}"] for a in "xyz"], axis=1)
        d2 = np.sum((r / s) ** 2, axis=1)
        np.testing.assert_allclose(d2, f[f"d2_{block}"], rtol=1e-12)
        rows = np.isfinite(d2)  # scale protocol: translation of unscaled windows is not scored
        assert rows.all() or block == "trans"
        r, s, d2 = r[rows], s[rows], d2[rows]
        n_windows = len(np.unique(f["window"][rows]))
        m = report["calibration"][block]
        assert m["d2_mean"] == pytest.approx(d2.mean(), rel=1e-12)
        assert m["d2_median"] == pytest.approx(np.median(d2), rel=1e-12)
        for key, q in CHI2_3.items():
            assert m["coverage"][key] == pytest.approx(np.mean(d2 <= q), abs=1e-15)
        d2_ci, cov_ci = window_mean_cis(d2, f["window"][rows], block_length=m["bootstrap_block_windows"], n_boot=1000)
        assert m["d2_ci95"] == pytest.approx(list(d2_ci), rel=1e-9)
        assert set(m["coverage_ci95"]) == set(CHI2_3)
        for key, (lo_c, hi_c) in cov_ci.items():
            assert m["coverage_ci95"][key] == pytest.approx([lo_c, hi_c], abs=1e-12)
            assert lo_c <= hi_c
        lo, hi = stats.chi2.ppf([0.025, 0.975], 3 * n_windows) / n_windows
        assert m["anees_bounds_95"] == pytest.approx([lo, hi], rel=1e-9)
        nll = 0.5 * ((r / s) ** 2 + np.log(s**2) + np.log(2 * np.pi))
        assert m["nll_per_dof"] == pytest.approx(nll.mean(), rel=1e-12)
        rho = stats.spearmanr(np.sqrt(np.mean(s**2, axis=1)), np.linalg.norm(r, axis=1)).statistic
        assert m["spearman"] == pytest.approx(rho, rel=1e-9)
        assert m["sigma_mean"] == pytest.approx(s.mean(), rel=1e-12)
        assert m["residual_p90"] == pytest.approx(np.percentile(np.linalg.norm(r, axis=1), 90), rel=1e-12)
        assert m["clamp_hit"] == 0.0
        # noise was drawn from the published covariances: calibrated within sampling error
        assert 1.8 < m["d2_mean"] < 4.2, (block, m["d2_mean"])


def test_trajectory_equals_evo_cli(pose_run) -> None:
    tmp, _, _, result = pose_run
    traj = result.report["trajectory"]
    gt, est = str(result.files["traj_gt"]), str(result.files["traj_est"])
    assert _evo_rmse(tmp, "evo_ape", "tum", gt, est, "-as") == pytest.approx(traj["ate_rmse_m"], abs=1e-6)
    assert _evo_rmse(tmp, "evo_rpe", "tum", gt, est, "-as") == pytest.approx(traj["rpe_trans_rmse_m"], abs=1e-6)
    rot = _evo_rmse(tmp, "evo_rpe", "tum", gt, est, "-as", "-r", "angle_deg")
    assert rot == pytest.approx(traj["rpe_rot_rmse_deg"], abs=1e-6)
    n_nodes = result.report["pgo"]["n_nodes"]
    assert traj["n_poses"] == n_nodes == N_FRAMES  # every frame is in a window (8 frames, stride 4)
    for scheme in ("uniform", "constant_tuned", "predicted"):
        for key in ("ate_rmse_m", "ate_rmse_m_huber"):
            assert np.isfinite(result.report["pgo"][scheme][key])
    for name in ("reliability", "d2_hist", "sigma_vs_residual", "trajectory", "d2_over_time"):
        assert result.files[name].stat().st_size > 1000
    assert "![reliability](reliability.png)" in result.files["report_md"].read_text()


def test_scale_mode_none_keeps_d2_and_reports_source_units(pose_run) -> None:
    tmp, bag, tum, result = pose_run
    cfg = EvalConfig(
        data=bag,
        out_dir=tmp / "out_none",
        source="poses-topic",
        poses_topic=POSE_TOPIC,
        gt=tum / "groundtruth.txt",
        scale_mode="none",
        plots=False,
        min_motion_m=MIN_MOTION,
    )
    none = evaluate(cfg)
    assert none.report["scale_mode"] == "none"
    assert "source" in none.report["units"]["trans"]
    np.testing.assert_allclose(none.table.d2_rot, result.table.d2_rot, rtol=1e-9)
    np.testing.assert_allclose(none.table.d2_trans, result.table.d2_trans, rtol=1e-9)
    f = read_frames_csv(result.files["frames_csv"])
    s = np.array([result.report["scale"]["fit_mean"]])
    assert np.all(none.table.scale == 1.0) and np.all(f["scale"] > 0) and s > 0
    np.testing.assert_allclose(
        none.table.residual[:, 3:] * f["scale"][:, None], result.table.residual[:, 3:], rtol=1e-9, atol=1e-12
    )


def _bad_gt(tum: Path, out: Path) -> Path:
    lines = [ln for ln in (tum / "groundtruth.txt").read_text().splitlines() if not ln.startswith("#")]
    n = len(lines)
    gap = set(range(n // 2, n // 2 + 30))  # 0.3 s hole at 100 Hz: frames inside do not associate
    kept = [ln for k, ln in enumerate(lines) if k not in gap]
    kept.insert(10, kept[10])  # one duplicated stamp
    kept[20], kept[21] = kept[21], kept[20]  # one out-of-order pair
    out.write_text("\n".join(kept) + "\n")
    return out


def test_bad_input_is_counted_not_fatal(synth_seq, tmp_path) -> None:
    tum = synth_seq.paths["tum"]
    msgs = _node_like_messages(tum, seed=5)
    good = len(msgs)
    stamp0, fid0, T0, cov0 = msgs[0]
    nan_cov = cov0.copy()
    nan_cov[0, 0] = np.nan
    msgs[1] = (msgs[1][0], msgs[1][1], msgs[1][2], nan_cov)
    msgs[2] = (msgs[2][0], msgs[2][1], msgs[2][2], -np.eye(6))
    msgs.append((stamp0, fid0, T0, cov0))  # duplicate of message 0
    msgs.append((stamp0 + 1000, "camera_optical", T0, cov0))  # frame id without anchor
    msgs[4], msgs[5] = msgs[5], msgs[4]  # out of order within a window
    bag = write_pose_bag(tmp_path / "bad_bag", msgs)
    gt = _bad_gt(tum, tmp_path / "gt_bad.txt")
    cfg = EvalConfig(
        data=bag, out_dir=tmp_path / "out", source="poses-topic", poses_topic=POSE_TOPIC, gt=gt, plots=False
    )
    result = evaluate(cfg)
    w = json.loads(result.files["report_json"].read_text())["warnings"]
    assert w["nan_covariance"] == 1
    assert w["non_pd_covariance"] == 1
    assert w["duplicate_stamps"] == 2  # one message, one ground-truth row
    assert w["bad_frame_id"] == 1
    assert w["out_of_order_stamps"] == 2  # one message, one ground-truth row
    assert w["gt_gaps"] == 1
    assert w["unassociated_gt"] >= 5
    assert result.ok
    assert result.report["n_frames"] < good - 2


def test_missing_topic_writes_report_and_exits_1(synth_seq, tmp_path) -> None:
    tum = synth_seq.paths["tum"]
    bag = write_pose_bag(tmp_path / "bag", _node_like_messages(tum, seed=1)[:3], topic="/other")
    out = tmp_path / "out"
    status = cli_main(
        [
            "eval",
            "--data",
            str(bag),
            "--gt",
            str(tum / "groundtruth.txt"),
            "--poses-topic",
            POSE_TOPIC,
            "--out",
            str(out),
        ]
    )
    assert status == 1
    report = json.loads((out / "report.json").read_text())
    assert report["warnings"] == {"missing_topic": 1}
    assert report["n_windows"] == 0 and report["calibration"] == {"rot": None, "trans": None}


@pytest.mark.parametrize("form", ["ros1", "ros2"])
def test_ground_truth_from_the_recorded_bag_itself(form: str, synth_seq, tmp_path) -> None:
    """Node output recorded next to its input (images + /tf) in either bag format: no --gt needed."""
    msgs = _node_like_messages(synth_seq.paths["tum"], seed=11)
    name = "recorded.bag" if form == "ros1" else "recorded"
    bag = copy_bag_with_poses(synth_seq.paths[form], tmp_path / name, msgs)
    # the motion threshold of pose_run: every window's translation is scored, so nothing warns
    with_file = evaluate(
        EvalConfig(
            data=bag,
            out_dir=tmp_path / "a",
            source="poses-topic",
            poses_topic=POSE_TOPIC,
            gt=synth_seq.paths["tum"] / "groundtruth.txt",
            plots=False,
            min_motion_m=MIN_MOTION,
        )
    )
    from_bag = evaluate(
        EvalConfig(
            data=bag,
            out_dir=tmp_path / "b",
            source="poses-topic",
            poses_topic=POSE_TOPIC,
            plots=False,
            min_motion_m=MIN_MOTION,
        )
    )
    assert from_bag.report["warnings"] == {}
    assert from_bag.report["decode"]["frames"] == N_FRAMES
    assert from_bag.report["n_frames"] == with_file.report["n_frames"] == len(msgs)
    np.testing.assert_allclose(from_bag.table.residual, with_file.table.residual, atol=1e-6)
