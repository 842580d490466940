"""Synthetic sequences: determinism, stamps, motion, geometry of the rendering, CLI."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from vggt_uncertainty_ros.cli.main import main
from vggt_uncertainty_ros.data import open_sequence, synth
from vggt_uncertainty_ros.data.synth import Renderer, plan_sequence
from vggt_uncertainty_ros.errors import DataError


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    kwargs = {"formats": ("tum",), "width": 40, "height": 30}
    a = synth.generate(tmp_path / "a", 5, 4, **kwargs).paths["tum"]
    b = synth.generate(tmp_path / "b", 5, 4, **kwargs).paths["tum"]
    c = synth.generate(tmp_path / "c", 6, 4, **kwargs).paths["tum"]
    da, db, dc = _digest(a), _digest(b), _digest(c)
    assert len(da) == 4 + 4 + 4 and da == db  # rgb, depth, rgb.txt depth.txt groundtruth.txt difficulty.csv
    assert da["groundtruth.txt"] != dc["groundtruth.txt"]
    assert da[next(k for k in da if k.startswith("rgb/"))] != dc[next(k for k in dc if k.startswith("rgb/"))]


def test_stamps_look_like_tum() -> None:
    plan = plan_sequence(3, 200, fps=30.0)
    img = plan.image_stamps_ns
    assert np.all(np.diff(img) > 0) and np.all(img % 1000 == 0)  # microsecond stamps
    assert abs(np.median(np.diff(img)) / 1e9 - 1 / 30) < 2e-3
    assert 1.3e18 < img[0] < 1.4e18
    mocap = plan.mocap_stamps_ns
    assert np.all(np.diff(mocap) > 0) and np.all(mocap % 100_000 == 0)  # 0.1 ms, like TUM's 4 decimals
    assert abs(np.median(np.diff(mocap)) / 1e9 - 0.01) < 5e-4
    assert mocap[0] < img[0] and mocap[-1] > img[-1]


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_motion_is_smooth_varied_and_stays_in_the_room(seed: int) -> None:
    plan = plan_sequence(seed, 300)  # 10 s of motion (poses only, nothing rendered)
    stamps = np.arange(plan.mocap_stamps_ns[0], plan.mocap_stamps_ns[-1], 10_000_000)
    T = plan.poses_at(stamps)
    R = T[:, :3, :3]
    np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), R.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-12)
    pos = T[:, :3, 3]
    assert np.all(pos >= plan.scene.cam_lo - 0.01) and np.all(pos <= plan.scene.cam_hi + 0.01)
    # speed over 0.2 s windows: near-static stretches and real motion both occur
    speed = np.linalg.norm(pos[20:] - pos[:-20], axis=1) / 0.2
    assert speed.min() < 0.03 and speed.max() > 0.25
    # hand-held smoothness: no jumps between 10 ms samples
    assert np.linalg.norm(np.diff(pos, axis=0), axis=1).max() < 0.03


def test_depth_points_lie_on_scene_surfaces() -> None:
    plan = plan_sequence(2, 30, 80, 60)
    renderer = Renderer(plan.scene, 80, 60)
    sc = plan.scene
    for T in plan.poses_at(plan.image_stamps_ns[::10]):
        rgb, depth = renderer.render(T)
        assert rgb.shape == (60, 80, 3) and rgb.dtype == np.uint8 and rgb.std() > 5
        assert np.all(np.isfinite(depth)) and depth.min() > 0.1
        v, u = np.mgrid[0:60, 0:80]
        cam = np.stack(
            [(u - plan.K[0, 2]) / plan.K[0, 0] * depth, (v - plan.K[1, 2]) / plan.K[1, 1] * depth, depth], -1
        )
        world = cam.reshape(-1, 3) @ T[:3, :3].T + T[:3, 3]
        on_room = np.min(np.abs(np.concatenate([world - sc.room_lo, world - sc.room_hi], 1)), axis=1) < 1e-4
        inside_room = np.all((world > sc.room_lo - 1e-4) & (world < sc.room_hi + 1e-4), axis=1)
        on_box = np.zeros(len(world), bool)
        for c, h, yaw in zip(sc.box_centres, sc.box_halves, sc.box_yaws):
            rz = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
            local = (world - c) @ rz
            excess = np.abs(local) - h
            on_box |= (np.max(excess, axis=1) > -1e-4) & (np.max(excess, axis=1) < 1e-4)
        assert np.all(inside_room) and np.all(on_room | on_box)
        assert on_box.any() or on_room.all()


def test_generate_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown synthetic output format"):
        synth.generate(tmp_path, 0, 3, formats=("ros3",))
    with pytest.raises(DataError, match="invalid synthetic sequence"):
        synth.generate(tmp_path, 0, 0, formats=("tum",))


def test_cli_synth_writes_readable_output(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    argv = ["synth", "--out", str(out), "--seed", "4", "--frames", "3", "--format", "tum,ros1"]
    assert main([*argv, "--width", "32", "--height", "24"]) == 0
    assert (out / "synth.bag").is_file()
    with open_sequence(out / "tum") as seq:
        frames = list(seq.frames())
    assert len(frames) == 3 and frames[0].image.shape == (24, 32, 3)
    assert all(f.T_world_cam is not None for f in frames)
    with pytest.raises(SystemExit):
        main(["synth", "--out", str(out), "--format", "tum,png"])
    hard = tmp_path / "hard"
    argv = ["synth", "--out", str(hard), "--frames", "2", "--format", "tum", "--difficulty", "0.5"]
    assert main([*argv, "--width", "32", "--height", "24"]) == 0
    assert (synth.read_difficulty(hard / "tum" / "difficulty.csv")["level"] == 0.5).all()


def test_difficulty_file_written_read_back_and_deterministic(tmp_path: Path) -> None:
    kwargs = {"formats": ("tum",), "width": 64, "height": 48, "fps": 5.0, "difficulty": 1.0}
    a = synth.generate(tmp_path / "a", 3, 12, **kwargs)
    b = synth.generate(tmp_path / "b", 3, 12, **kwargs)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    table = synth.read_difficulty(tmp_path / "a" / "difficulty.csv")
    assert set(table) == set(synth.DIFFICULTY_COLUMNS)
    assert (table["frame"] == np.arange(12)).all()
    assert (table["stamp_ns"] == a.image_stamps_ns).all()
    assert (table["level"] == 1.0).all()
    assert (table["blur_px"] >= 0).all() and (table["noise_sigma"] > 0).all() and (table["gain"] > 0).all()
    for varying in ("exposure_s", "noise_sigma", "gain", "light_scale"):  # changes within the sequence
        assert np.ptp(table[varying]) > 0, varying
    tum_copy = synth.read_difficulty(a.paths["tum"] / "difficulty.csv")
    assert all((tum_copy[k] == table[k]).all() for k in table)
    assert b.n_frames == 12


def test_clean_sequence_has_level_zero_difficulty(tmp_path: Path) -> None:
    synth.generate(tmp_path, 3, 4, formats=("tum",), width=40, height=30)
    table = synth.read_difficulty(tmp_path / "difficulty.csv")
    assert (table["level"] == 0).all() and (table["blur_px"] == 0).all() and (table["gain"] == 1).all()
    assert (table["angular_speed_dps"] > 0).all()


def test_difficulty_degrades_images_and_varies_across_levels() -> None:
    easy = synth.plan_sequence(4, 20, 64, 48, 5.0, difficulty=0.0)
    hard = synth.plan_sequence(4, 20, 64, 48, 5.0, difficulty=1.0)
    assert len(hard.trajectory.burst_t0) >= len(easy.trajectory.burst_t0) == 0
    assert len(easy.difficulty.lowtex_surfaces) == 0 and len(easy.difficulty.occluders) == 0
    assert hard.difficulty.noise_sigma.max() > easy.difficulty.noise_sigma.max()
    assert np.ptp(np.log(hard.difficulty.gain)) > np.ptp(np.log(easy.difficulty.gain))
    clean = synth.plan_sequence(4, 20, 64, 48, 5.0)
    img_clean, _, _ = synth.render_sequence_frames(clean)
    img_hard, _, cols = synth.render_sequence_frames(hard)
    assert any((a != b).any() for a, b in zip(img_clean, img_hard))
    assert cols["noise_sigma"].shape == (20,)


def test_difficulty_level_out_of_range_is_refused() -> None:
    with pytest.raises(DataError, match="difficulty level"):
        synth.plan_sequence(1, 4, 40, 30, difficulty=1.5)
