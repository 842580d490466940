"""``vggt-uncertainty bench-unseen --small``: the unseen-sequence protocol end to end (issue 12)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from vggt_uncertainty_ros.cli.main import main as cli_main

pytestmark = pytest.mark.slow  # 7 short sequences + a head: ~30 s of CPU time (wall time grows with the load)

BLOCK_KEYS = {"d2_mean", "d2_ci95", "coverage", "coverage_ci95", "spearman", "nll_per_dof", "n_frames"}


def _check_block(block: dict) -> None:
    assert set(block) == BLOCK_KEYS
    assert set(block["coverage"]) == set(block["coverage_ci95"]) == {"68", "95", "99"} and len(block["d2_ci95"]) == 2
    if block["n_frames"]:
        lo, hi = block["d2_ci95"]
        eps = 1e-9 * block["d2_mean"]  # a replicate mean can differ from the mean in the last bit
        assert lo - eps <= block["d2_mean"] <= hi + eps
        assert 0.0 <= block["coverage"]["68"] <= block["coverage"]["95"] <= block["coverage"]["99"] <= 1.0
        for key, (c_lo, c_hi) in block["coverage_ci95"].items():
            assert 0.0 <= c_lo <= c_hi <= 1.0, key


def test_bench_unseen_small_writes_the_issue_schema(tmp_path: Path, capsys) -> None:
    out = tmp_path / "unseen"
    assert cli_main(["bench-unseen", "--backbone", "geometric", "--small", "--out", str(out)]) == 0
    doc = json.loads((out / "unseen.json").read_text())
    assert set(doc) == {"backbone", "sequences", "pooled", "recalibration", "pgo"}
    assert doc["backbone"] == "geometric"
    assert len(doc["sequences"]) >= 1 and set(doc["pgo"]) == set(doc["sequences"])
    for blocks in [*doc["sequences"].values(), doc["pooled"]]:
        assert set(blocks) == {"rot", "trans"}
        for b in blocks.values():
            _check_block(b)
    rec = doc["recalibration"]
    assert set(rec) == {"factors", "before", "after"} and set(rec["factors"]) == {"rot", "trans"}
    assert all(f > 0 and math.isfinite(f) for f in rec["factors"].values())
    assert rec["after"] == doc["pooled"]
    # factors are applied: the pooled rotation d² changes by exactly the factor's inverse
    assert rec["after"]["rot"]["d2_mean"] == pytest.approx(rec["before"]["rot"]["d2_mean"] / rec["factors"]["rot"])
    for v in doc["pgo"].values():
        assert set(v) == {"uniform", "constant_tuned", "predicted"}
    assert doc["pooled"]["rot"]["n_frames"] == sum(s["rot"]["n_frames"] for s in doc["sequences"].values())
    details = json.loads((out / "unseen_details.json").read_text())
    counts = details["scale_protocol"]
    for name, c in counts.items():  # every window is counted in exactly one scale class
        assert sum(v for k, v in c.items() if k.startswith("windows_scale_")) == c["windows"], name
    floor = details["coverage_floor"]
    assert set(floor) == {"validation", "test"} and all(0.0 <= v < 1.0 for v in floor["validation"].values())
    assert floor["validation"] == details["recalibration"]["coverage_floor"]
    text = capsys.readouterr().out
    assert "after recalibration" in text and "pose graph ATE" in text and "targets (issue 12)" in text
    assert "coverage floor" in text
    rot_68 = doc["pooled"]["rot"]["coverage"]["68"]
    assert f"pooled coverage 68 / 95 with 95 % block-bootstrap intervals: rot {rot_68:.2f} [" in text


def test_ctrl_c_while_workers_score_exits_cleanly(tmp_path: Path) -> None:
    """Ctrl-C reaches the whole process group: the CLI says "interrupted" (exit 130), no worker
    prints a traceback, and none outlives it (the pool is terminated and joined before the CLI
    returns; multiprocessing's resource tracker leaves on its own once the CLI is gone)."""
    cmd = [sys.executable, "-m", "vggt_uncertainty_ros.cli.main", "bench-unseen", "--small", "--out", str(tmp_path)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:  # the first finished sequence: both workers are busy with the next ones
        seen.append(line)
        if "scored (1/7)" in line:
            os.killpg(proc.pid, signal.SIGINT)
            break
    rest = proc.stderr.read()
    assert proc.wait() == 130, "".join(seen) + rest
    assert "interrupted" in rest and "Traceback" not in "".join(seen) + rest
    assert not [cmd for cmd in _group_commands(proc.pid) if "spawn_main" in cmd]  # workers joined before exit
    assert not (tmp_path / "unseen.json").exists()


def _group_commands(pgid: int) -> list[str]:
    """Command lines of the live processes in process group ``pgid`` (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "(comm)": state, ppid, pgrp, ...
            if int(fields[2]) == pgid and fields[0] != "Z":
                out.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except (OSError, IndexError, ValueError):  # the process ended while we looked
            continue
    return out
