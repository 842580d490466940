"""The latency benchmark runs both paths over the same windows and prints comparable figures."""

from __future__ import annotations

import re

from benchmarks import latency


def test_prints_node_path_and_model_alone_with_their_ratio(capsys):
    assert (
        latency.main(
            ["--windows", "3", "--warmup", "1", "--height", "60", "--width", "80", "--size", "4", "--stride", "2"]
        )
        == 0
    )
    out = capsys.readouterr().out
    rows = {m[1]: float(m[2]) for m in re.finditer(r"^(node path|model alone)\s+median\s+([\d.]+) ms", out, re.M)}
    assert set(rows) == {"node path", "model alone"} and all(v > 0 for v in rows.values())
    assert "(n=3)" in out and "ratio of medians" in out
