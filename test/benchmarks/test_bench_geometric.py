"""The geometric benchmark prints a speed figure and relates rotation errors to the quality cues."""

from __future__ import annotations

import math

from benchmarks import geometric


def test_speed_and_cue_study_on_small_inputs(capsys):
    s = geometric.speed(width=160, height=120, frames=4, windows=2)
    assert s.cold_ms > 0 and s.sliding_ms > 0 and (s.width, s.height, s.frames) == (160, 120, 4)
    study = geometric.cue_study([5], [0.5], n_frames=12, width=160, height=120, fps=5.0, frames=4, stride=4)
    assert study["frames"] + round(study["invalid_fraction"] * 3 * 3) == 3 * 3  # 3 windows x 3 frames i > 0
    assert set(study["spearman_pooled"]) == set(geometric.FEATURE_NAMES)
    assert all(math.isnan(v) or -1.0 <= v <= 1.0 for v in study["spearman_pooled"].values())
    assert "seed5_level0.5" in study["sequences"]
