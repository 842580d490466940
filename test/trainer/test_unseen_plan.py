"""The unseen-sequence protocol's sequence plan: distinct scenes, difficulty stratified per split."""

from __future__ import annotations

import numpy as np

from vggt_uncertainty_ros.trainer.unseen import UnseenConfig, plan_sequences


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
