"""The report says how much of the recording it rests on (issue 14, item 3)."""

from __future__ import annotations

import numpy as np
from conftest import POSE_TOPIC, write_pose_bag
from test_eval_poses_topic import _node_like_messages

from vggt_uncertainty_ros.data.types import WarningCounter
from vggt_uncertainty_ros.evaluate import EvalConfig, evaluate
from vggt_uncertainty_ros.evaluate.coverage import MIN_ATE_POSES, StampSpan, coverage_section

S = 10**9


def test_full_coverage_has_no_warning():
    warnings = WarningCounter()
    stamps = np.arange(100) * S // 10
    cov = coverage_section(stamps, StampSpan.of(stamps), StampSpan.of(stamps), 100, warnings)
    assert cov["ok"] and warnings.as_dict() == {}
    assert cov["fraction_of_image_frames"] == 1.0 and cov["fraction_of_span"] == 1.0


def test_thin_coverage_warns_on_each_threshold():
    warnings = WarningCounter()
    images = StampSpan.of(np.arange(100) * S // 10)
    cov = coverage_section(np.array([0, S // 10, S // 5]), images, images, 3, warnings)
    assert not cov["ok"]
    assert cov["fraction_of_image_frames"] == 0.03 and cov["span_s"] == 0.2
    assert set(warnings.as_dict()) == {"low_frame_coverage", "low_span_coverage", "ate_few_poses"}


def test_a_trajectory_file_is_compared_by_span_only():
    warnings = WarningCounter()
    gt = StampSpan.of(np.arange(1000) * S // 100)  # 100 Hz mocap over 10 s
    stamps = np.arange(300) * S // 30  # 30 Hz images over the same 10 s
    cov = coverage_section(stamps, None, gt, MIN_ATE_POSES, warnings, ground_truth_is_trajectory=True)
    assert cov["fraction_of_ground_truth_frames"] is None and cov["ok"] and warnings.as_dict() == {}


def test_report_on_three_poses_says_so(synth_seq, tmp_path):
    tum = synth_seq.paths["tum"]
    messages = _node_like_messages(tum, seed=11)
    full = evaluate(
        EvalConfig(
            data=write_pose_bag(tmp_path / "full", messages),
            out_dir=tmp_path / "out_full",
            source="poses-topic",
            poses_topic=POSE_TOPIC,
            gt=tum / "groundtruth.txt",
            plots=False,
        )
    )
    thin = evaluate(
        EvalConfig(
            data=write_pose_bag(tmp_path / "thin", messages[:3]),
            out_dir=tmp_path / "out_thin",
            source="poses-topic",
            poses_topic=POSE_TOPIC,
            gt=tum / "groundtruth.txt",
        )
    )
    assert full.report["coverage"]["fraction_of_span"] > 0.8
    cov = thin.report["coverage"]
    assert cov["n_evaluated_frames"] == 3 and not cov["ok"]
    assert "low_span_coverage" in thin.report["warnings"]
    md = thin.files["report_md"].read_text()
    assert "## Coverage" in md and "rest on little data" in md
    assert "none" not in md.split("## Warnings")[1].split("##")[0]
    traj = thin.report["trajectory"]
    assert traj is None or traj["ate_reliable"] is False
