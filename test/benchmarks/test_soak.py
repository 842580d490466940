"""Short form of the soak benchmark (issue 14, item 6): the real node over DDS at 4x over-rate.

The long form's targets (RSS slope < 1 MiB per 1,000 images over >= 10,000 images) need a long
run; this one checks what a short run can: the figures are produced, every image is received or
counted lost by the node, no window goes unbridged and nothing resets.
"""

from __future__ import annotations

import math
import os

import pytest

from benchmarks import soak


@pytest.mark.slow
def test_short_soak_at_four_times_over_rate_keeps_the_chain(capsys):
    domain = 1 + (os.getpid() * 7 + 37) % 100
    result = soak.run_soak(
        soak.SoakConfig(images=160, over_rate=4, width=128, height=96, window=4, stride=2, domain=domain),
        log=lambda *_: None,
    )
    # every image published was received or counted lost by the node itself (sequence gaps)
    assert result.accounted and result.node_lost == result.dds_lost
    assert result.counters["windows_dropped"] > 0, "4x over-rate must make the queue drop windows"
    assert result.counters["windows_rebased"] > 0
    assert result.gaps == 0 and result.resets == 0
    assert result.poses > 0 and 0 < result.latency_p50_s <= result.latency_p95_s <= result.latency_max_s
    assert math.isfinite(result.rss_slope_mib_per_1000)
    assert any(line.startswith("RSS") and "per 1,000 images" in line for line in result.lines())
