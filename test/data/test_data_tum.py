"""TUM text files, TUM's association rule, the folder reader's bad-input reporting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.spatial.transform import Rotation

from vggt_uncertainty_ros.data import (
    associate,
    open_sequence,
    read_tum_trajectory,
    write_tum_trajectory,
)
from vggt_uncertainty_ros.data.tum import (
    format_stamp,
    parse_stamp,
    read_tum_list,
    write_tum_list,
)
from vggt_uncertainty_ros.errors import DataError, MalformedLineError


def _random_poses(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    T = np.tile(np.eye(4), (n, 1, 1))
    T[:, :3, :3] = Rotation.random(n, random_state=seed).as_matrix()
    T[:, :3, 3] = rng.normal(scale=2.0, size=(n, 3))
    return T


def test_stamps_parse_exactly() -> None:
    assert parse_stamp("1305031102.175304") == 1_305_031_102_175_304_000
    assert parse_stamp("1305031102.1753") == 1_305_031_102_175_300_000
    assert parse_stamp("7") == 7_000_000_000
    assert format_stamp(1_305_031_102_175_304_000) == "1305031102.175304"
    assert format_stamp(1_305_031_102_175_304_123) == "1305031102.175304123"
    assert format_stamp(1_305_031_102_100_000_000, 4) == "1305031102.1000"


def test_trajectory_round_trip_exact(tmp_path: Path) -> None:
    stamps = 1_305_031_102_000_000_000 + np.arange(50, dtype=np.int64) * 10_012_300
    T = _random_poses(50)
    path = tmp_path / "groundtruth.txt"
    write_tum_trajectory(path, stamps, T)
    text = path.read_text().splitlines()
    assert text[0].startswith("#") and text[2] == "# timestamp tx ty tz qx qy qz qw"
    s2, T2 = read_tum_trajectory(path)
    np.testing.assert_array_equal(s2, stamps)
    np.testing.assert_allclose(T2, T, atol=1e-12, rtol=0)
    q = np.array([[float(v) for v in line.split()[4:]] for line in text[3:]])
    assert np.all(q[:, 3] >= 0)  # w >= 0


def test_trajectory_reads_tum_sample_with_comments(tmp_path: Path) -> None:
    path = tmp_path / "gt.txt"
    path.write_text(
        "# ground truth trajectory\n# file: 'rgbd_dataset_freiburg1_xyz.bag'\n"
        "# timestamp tx ty tz qx qy qz qw\n"
        "1305031098.6659 1.3563 0.6305 1.6380 0.6132 0.5962 -0.3311 -0.3986\n\n"
        "1305031098.6758 1.3543 0.6306 1.6360 0.6129 0.5966 -0.3316 -0.3980\n"
    )
    stamps, T = read_tum_trajectory(path)
    assert stamps.tolist() == [1_305_031_098_665_900_000, 1_305_031_098_675_800_000]
    q = np.array([0.6132, 0.5962, -0.3311, -0.3986])
    np.testing.assert_allclose(T[0, :3, :3], Rotation.from_quat(q / np.linalg.norm(q)).as_matrix(), atol=1e-12)
    np.testing.assert_allclose(T[0, :3, 3], [1.3563, 0.6305, 1.6380])


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("1305031098.6659 1.3 0.6 1.6 0.6 0.5 -0.3", r"gt\.txt:3: expected 8 fields"),
        ("1305031098.6659 1.3 0.6 1.6 0.6 0.5 -0.3 abc", r"gt\.txt:3: could not convert"),
        ("13050x1098.6659 1.3 0.6 1.6 0.6 0.5 -0.3 0.1", r"gt\.txt:3: not a number"),
        ("1305031098.6659 1.3 0.6 1.6 0 0 0 0", r"gt\.txt:3: non-finite values or zero quaternion"),
    ],
)
def test_malformed_trajectory_line_names_file_and_line(tmp_path: Path, line: str, match: str) -> None:
    path = tmp_path / "gt.txt"
    path.write_text("# header\n1305031098.6 0 0 0 0 0 0 1\n" + line + "\n")
    with pytest.raises(MalformedLineError, match=match):
        read_tum_trajectory(path)


def test_malformed_list_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "rgb.txt"
    path.write_text("# color images\n1305031102.175304 rgb/1305031102.175304.png\n1305031102.211214\n")
    with pytest.raises(MalformedLineError, match=r"rgb\.txt:3: expected 2 fields"):
        read_tum_list(path)


def _tum_associate_reference(first: dict[float, str], second: dict[float, str], offset: float, max_diff: float):
    """TUM's associate.py rule written out over float seconds (independent of ours)."""
    first_keys, second_keys = list(first), list(second)
    potential = sorted(
        (abs(a - (b + offset)), a, b) for a in first_keys for b in second_keys if abs(a - (b + offset)) < max_diff
    )
    matches = []
    for _, a, b in potential:
        if a in first_keys and b in second_keys:
            first_keys.remove(a)
            second_keys.remove(b)
            matches.append((a, b))
    return sorted(matches)


@pytest.mark.parametrize("seed", range(5))
def test_associate_matches_tum_rule(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a_us = np.sort(rng.choice(np.arange(0, 3_000_000, 7), 80, replace=False)) + 1_305_031_102_000_000
    b_us = np.sort(rng.choice(np.arange(0, 3_000_000, 11), 120, replace=False)) + 1_305_031_102_000_000
    ia, ib = associate(a_us * 1000, b_us * 1000, max_dt_s=0.02)
    ref = _tum_associate_reference(
        {(x - 1_305_031_102_000_000) / 1e6: "" for x in a_us},
        {(x - 1_305_031_102_000_000) / 1e6: "" for x in b_us},
        0.0,
        0.02,
    )
    ours = [((a_us[i] - 1_305_031_102_000_000) / 1e6, (b_us[j] - 1_305_031_102_000_000) / 1e6) for i, j in zip(ia, ib)]
    assert ours == ref
    assert len(ref) > 10


def test_associate_threshold_is_strict() -> None:
    ia, ib = associate([0, 100_000_000], [20_000_000, 119_999_999], max_dt_s=0.02)
    assert ia.tolist() == [1] and ib.tolist() == [1]


def _write_folder(root: Path, rgb_stamps: list[int], gt_stamps: list[int]) -> None:
    (root / "rgb").mkdir(parents=True)
    names = []
    for k, _ in enumerate(rgb_stamps):
        name = f"rgb/{k:03d}.png"
        Image.fromarray(np.full((4, 6, 3), k, np.uint8)).save(root / name)
        names.append(name)
    write_tum_list(root / "rgb.txt", rgb_stamps, names)
    write_tum_trajectory(root / "groundtruth.txt", gt_stamps, _random_poses(len(gt_stamps), 3))


def test_folder_reports_duplicates_out_of_order_and_unassociated(tmp_path: Path) -> None:
    ms = 1_000_000
    base = 1_305_031_102_000_000_000
    rgb = [base, base + 33 * ms, base + 33 * ms, base + 20 * ms, base + 500 * ms]
    gt = [base + k * 10 * ms for k in range(8)]  # 0..70 ms: the 500 ms image has no ground truth
    _write_folder(tmp_path, rgb, gt)
    with open_sequence(tmp_path) as seq:
        frames = list(seq.frames())
        warnings = seq.warnings.as_dict()
    assert [f.stamp_ns for f in frames] == rgb  # file order kept, nothing dropped or reordered
    assert [int(f.image[0, 0, 0]) for f in frames] == [0, 1, 2, 3, 4]
    assert warnings["duplicate_stamps"] == 1
    assert warnings["out_of_order_stamps"] == 1
    assert warnings["unassociated_gt"] == 1
    assert frames[-1].T_world_cam is None and frames[0].T_world_cam is not None


def test_folder_interpolates_and_reports_gt_gaps(tmp_path: Path) -> None:
    ms = 1_000_000
    base = 1_305_031_102_000_000_000
    gt = [base + k * 10 * ms for k in range(10)] + [base + 400 * ms + k * 10 * ms for k in range(10)]
    _write_folder(tmp_path, [base + 15 * ms, base + 200 * ms], gt)
    _, T_gt = read_tum_trajectory(tmp_path / "groundtruth.txt")
    with open_sequence(tmp_path) as seq:
        frames = list(seq.frames())
        warnings = seq.warnings.as_dict()
    assert warnings["gt_gaps"] == 1 and warnings["unassociated_gt"] == 1
    mid = frames[0].T_world_cam  # halfway between samples 1 and 2
    np.testing.assert_allclose(mid[:3, 3], 0.5 * (T_gt[1, :3, 3] + T_gt[2, :3, 3]), atol=1e-12)
    r_mid = Rotation.from_matrix(mid[:3, :3])
    r1, r2 = Rotation.from_matrix(T_gt[1, :3, :3]), Rotation.from_matrix(T_gt[2, :3, :3])
    half = (r1.inv() * r2).magnitude() / 2
    assert abs((r1.inv() * r_mid).magnitude() - half) < 1e-9


def test_not_a_sequence(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a recognised sequence"):
        open_sequence(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        open_sequence(tmp_path / "missing")


def test_nearest_mode_and_ground_truth_without_decoding(tmp_path: Path) -> None:
    ms = 1_000_000
    base = 1_305_031_102_000_000_000
    gt = [base + k * 10 * ms for k in range(10)]
    _write_folder(tmp_path, [base + 14 * ms, base + 16 * ms], gt)
    _, T_gt = read_tum_trajectory(tmp_path / "groundtruth.txt")
    with open_sequence(tmp_path, gt_mode="nearest") as seq:
        frames = list(seq.frames())
        np.testing.assert_array_equal(seq.ground_truth.stamps_ns, gt)
        np.testing.assert_array_equal(seq.ground_truth.T, T_gt)
    np.testing.assert_array_equal(frames[0].T_world_cam, T_gt[1])
    np.testing.assert_array_equal(frames[1].T_world_cam, T_gt[2])
