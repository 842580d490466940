"""The shared window rule: size/stride overlap, frame skip, minimum gap, reset, config file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vggt_uncertainty_ros.data import (
    WindowBuilder,
    WindowConfig,
    iter_windows,
    load_window_config,
    window_indices,
)
from vggt_uncertainty_ros.errors import ConfigError

MS = 1_000_000


def _push_all(builder: WindowBuilder, n: int, dt_ns: int = 33 * MS, start: int = 0):
    out = []
    for i in range(start, start + n):
        w = builder.push(i, i * dt_ns)
        if w is not None:
            out.append(w)
    return out


def test_default_windows_overlap_by_size_minus_stride() -> None:
    windows = _push_all(WindowBuilder(WindowConfig()), 20)
    assert [list(w.items) for w in windows] == [
        list(range(8)),
        list(range(4, 12)),
        list(range(8, 16)),
        list(range(12, 20)),
    ]
    assert [w.index for w in windows] == [0, 1, 2, 3]
    np.testing.assert_array_equal(windows[1].stamps_ns, np.arange(4, 12) * 33 * MS)
    assert windows[1].stamps_ns.dtype == np.int64


@pytest.mark.parametrize(("size", "stride"), [(8, 8), (8, 1), (5, 3), (2, 1)])
def test_stride_rule(size: int, stride: int) -> None:
    windows = _push_all(WindowBuilder(WindowConfig(size=size, stride=stride)), 40)
    for k, w in enumerate(windows):
        assert list(w.items) == list(range(k * stride, k * stride + size))
    assert len(windows) == (40 - size) // stride + 1


def test_keyframe_every_and_min_gap() -> None:
    windows = _push_all(WindowBuilder(WindowConfig(size=3, stride=3, keyframe_every=2)), 13)
    assert [list(w.items) for w in windows] == [[0, 2, 4], [6, 8, 10]]
    assert windows[0].push_indices.tolist() == [0, 2, 4]
    # 33 ms frames, keyframes at least 0.1 s apart -> every 4th frame (132 ms)
    windows = _push_all(WindowBuilder(WindowConfig(size=3, stride=2, min_keyframe_gap_s=0.1)), 30)
    assert list(windows[0].items) == [0, 4, 8] and list(windows[1].items) == [8, 12, 16]


def test_reset_and_bad_stamps() -> None:
    builder = WindowBuilder(WindowConfig(size=3, stride=1))
    assert _push_all(builder, 2) == []
    builder.reset()
    assert builder.n_pending == 0
    windows = _push_all(builder, 3, start=10)
    assert list(windows[0].items) == [10, 11, 12] and windows[0].index == 0
    assert builder.push(99, 12 * 33 * MS) is None  # duplicated stamp: ignored
    assert builder.warnings["duplicate_stamps"] == 1
    assert builder.push(100, 0) is None  # backwards (bag loop): reset, then start again
    assert builder.warnings["stamps_backwards"] == 1 and builder.n_pending == 1
    w = [builder.push(101 + k, (k + 1) * 33 * MS) for k in range(2)][-1]
    assert w is not None and list(w.items) == [100, 101, 102] and w.index == 0


def test_offline_helpers_agree_with_builder() -> None:
    stamps = np.arange(25) * 33 * MS
    cfg = WindowConfig(size=4, stride=2, keyframe_every=2)
    idx = window_indices(stamps, cfg)
    frames = [type("F", (), {"stamp_ns": int(s), "i": i})() for i, s in enumerate(stamps)]
    via_iter = [[f.i for f in w.items] for w in iter_windows(frames, cfg)]
    assert [list(i) for i in idx] == via_iter and via_iter[0] == [0, 2, 4, 6] and via_iter[1] == [4, 6, 8, 10]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"size": 1},
        {"stride": 0},
        {"stride": 9},
        {"keyframe_every": 0},
        {"min_keyframe_gap_s": -1.0},
        {"size": 2.5},
    ],
)
def test_invalid_config(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        WindowConfig(**kwargs)


def test_load_window_config(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(
        "vggt_uncertainty_node:\n  ros__parameters:\n    window_size: 6\n    window_stride: 2\n"
        "    keyframe_every: 3\n    keyframe_min_gap_s: 0.05\n    image_topic: /camera/rgb/image_color\n"
    )
    assert load_window_config(path) == WindowConfig(6, 2, 3, 0.05)
    path.write_text("/**:\n  ros__parameters:\n    window_stride: 7\n")
    assert load_window_config(path) == WindowConfig(stride=7)
    # the node refuses non-overlapping windows; so does everything that windows like the node
    path.write_text("/**:\n  ros__parameters:\n    window_stride: 8\n")
    with pytest.raises(ConfigError, match=r"window_stride \(8\) must be < window_size \(8\)"):
        load_window_config(path)
    for bad in ('"eight"', "8.5", "true"):
        path.write_text(f"/**:\n  ros__parameters:\n    window_size: {bad}\n")
        with pytest.raises(ConfigError, match="window size must be an integer"):
            load_window_config(path)
    path.write_text("other_node:\n  ros__parameters: {}\n")
    with pytest.raises(ConfigError, match="no 'vggt_uncertainty_node: ros__parameters:' section"):
        load_window_config(path)
    path.write_text("vggt_uncertainty_node:\n  ros__parameters:\n    window_stride: 20\n")
    with pytest.raises(ConfigError, match=r"params\.yaml: window stride"):
        load_window_config(path)


def test_load_shipped_params() -> None:
    import yaml

    shipped = Path(__file__).resolve().parents[2] / "config" / "params.yaml"
    params = yaml.safe_load(shipped.read_text())["/**"]["ros__parameters"]
    cfg = load_window_config(shipped)
    assert (cfg.size, cfg.stride, cfg.keyframe_every, cfg.min_keyframe_gap_s) == (
        params["window_size"],
        params["window_stride"],
        params["keyframe_every"],
        params["keyframe_min_gap_s"],
    )
