"""The unseen-sequence protocol's sequence plan: distinct scenes, difficulty stratified per split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vggt_uncertainty_ros.errors import ConfigError
from vggt_uncertainty_ros.trainer.unseen import (
    PlannedSequence,
    UnseenConfig,
    plan_sequences,
    prepare_sequences,
    synthesise_planned,
)


def test_every_split_spans_the_difficulty_range_and_splits_do_not_share_scenes() -> None:
    plan = plan_sequences(UnseenConfig())
    assert [p.split for p in plan].count("val") == 4 and [p.split for p in plan].count("test") == 4
    assert len({p.seed for p in plan}) == len(plan) and len({p.name for p in plan}) == len(plan)
    for split in ("train", "val", "test"):
        levels = np.array([p.level for p in plan if p.split == split])
        n = len(levels)
        # sequence j is drawn in the j-th of n equal bins: easy and hard sequences in every split
        assert ((levels >= np.arange(n) / n) & (levels < (np.arange(n) + 1) / n)).all(), (split, levels)


def test_resizing_one_split_leaves_the_others_unchanged() -> None:
    base = {p.name: p for p in plan_sequences(UnseenConfig()) if p.split != "val"}
    more_val = {p.name: p for p in plan_sequences(UnseenConfig(n_val=6)) if p.split != "val"}
    assert base == more_val
    other_seed = {p.name for p in plan_sequences(UnseenConfig(seed=5))}
    assert not other_seed & set(base)


def test_a_cached_sequence_of_another_length_or_an_interrupted_one_is_rewritten(tmp_path: Path) -> None:
    assert {p.n_frames for p in plan_sequences(UnseenConfig())} == {360}
    assert {p.n_frames for p in plan_sequences(UnseenConfig.small())} == {60}
    cfg = UnseenConfig.small(width=64, height=48)
    short = plan_sequences(UnseenConfig.small(n_frames=4))[0]
    path = synthesise_planned(tmp_path / "seq", short, cfg)

    def frames() -> int:
        return sum(1 for line in (path / "rgb.txt").read_text().splitlines() if not line.startswith("#"))

    assert frames() == 4
    sentinel = tmp_path / "seq" / "sentinel"
    sentinel.touch()  # survives only if the copy is reused
    assert synthesise_planned(tmp_path / "seq", short, cfg) == path and sentinel.exists()
    longer = plan_sequences(UnseenConfig.small(n_frames=6))[0]
    assert synthesise_planned(tmp_path / "seq", longer, cfg) == path and frames() == 6 and not sentinel.exists()
    (tmp_path / "seq" / ".complete").unlink()  # interrupted: files written, no marker
    sentinel.touch()
    assert synthesise_planned(tmp_path / "seq", longer, cfg) == path and frames() == 6 and not sentinel.exists()


@pytest.mark.slow  # 2 worker processes (spawn: each imports torch), 3 short sequences, 4 windows
def test_worker_processes_score_exactly_what_one_process_scores(tmp_path: Path) -> None:
    cfg = UnseenConfig.small(n_frames=40)
    plan = [
        PlannedSequence("train", "a", seed=3, level=0.2, n_frames=40),
        PlannedSequence("test", "b", seed=4, level=0.8, n_frames=40),
        PlannedSequence("val", "too_short", seed=5, level=0.0, n_frames=4),  # no window: skipped, reported
    ]
    lines: list[str] = []
    parallel, skipped_p = prepare_sequences(cfg, plan, tmp_path, workers=2, progress=lines.append)  # writes them
    serial, skipped_s = prepare_sequences(cfg, plan, tmp_path, workers=1)  # reuses them
    assert skipped_p == skipped_s == ["too_short"] and set(parallel) == set(serial) == {"a", "b"}
    assert lines == ["a scored (1/3)", "b scored (2/3)", "too_short scored (3/3)"]
    for name in ("a", "b"):
        p, s = parallel[name], serial[name]
        assert p.name == name and p.counts == s.counts and p.n_windows == s.n_windows >= 2
        for key in ("features", "residual", "rot_mask", "trans_mask", "log_motion", "T_scaled", "stamps_ns"):
            np.testing.assert_array_equal(getattr(p, key), getattr(s, key), err_msg=f"{name}.{key}")
    assert parallel["a"].rot_mask.any() and not np.array_equal(parallel["a"].residual, parallel["b"].residual)
    with pytest.raises(ConfigError, match="workers"):
        prepare_sequences(cfg, plan, tmp_path, workers=0)
