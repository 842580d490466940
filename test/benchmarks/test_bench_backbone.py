"""The backbone benchmark runs on CPU with the tiny config and reports consistent figures."""

from __future__ import annotations

import json

import pytest

from benchmarks.backbone import (
    BackboneBenchConfig,
    dino_flops,
    run_backbone_bench,
    vggt_flops,
)
from vggt_uncertainty_ros.cli import bench as bench_cli
from vggt_uncertainty_ros.cli.main import main
from vggt_uncertainty_ros.errors import ConfigError
from vggt_uncertainty_ros.model.config import get_config


def test_flop_count_matches_hand_count():
    cfg = get_config("full")
    # 8 x 392x518: 28 x 37 patches; the analytic floor is ~30 ms at ~800 TFLOP/s
    total = vggt_flops(cfg, 8, 392, 518)
    assert 20e12 < total < 27e12
    # one DINOv2 frame: 24 blocks x (24 C^2 per token + 4 N^2 C attention) + patch conv
    n = 1 + 4 + 28 * 37
    expected = 24 * (24 * n * 1024**2 + 4 * n * n * 1024) + 2 * 28 * 37 * 3 * 14 * 14 * 1024
    assert dino_flops(cfg, 392, 518) == pytest.approx(expected)
    assert vggt_flops(cfg, 16, 392, 518) > 2 * total  # global attention is quadratic in S


def test_tiny_cpu_bench_prints_figures(capsys):
    result = run_backbone_bench(
        BackboneBenchConfig(config="tiny", device="cpu", frames=3, height=42, width=56, iters=2, warmup=1)
    )
    assert result.latency_ms_min <= result.latency_ms_median
    assert result.sliding_fps_no_cache > 0 and result.sliding_fps_cache > 0
    assert result.peak_memory_bytes > 0 and result.matmul_peak_tflops > 0
    assert 0 < result.achieved_fraction_of_peak < 1
    text = "\n".join(result.lines())
    assert "frames/s with it" in text and "% of peak" in text
    rc = main(["bench", "--frames", "2", "--height", "42", "--width", "56", "--iters", "1", "--warmup", "0", "--json"])
    assert rc == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["config"] == "tiny" and figures["frames"] == 2 and figures["compute_dtype"] == "float32"


def test_cli_rejects_bad_sizes():
    import argparse

    parser = argparse.ArgumentParser()
    bench_cli.add_arguments(parser)
    with pytest.raises(ConfigError, match="--height 50 is not a multiple of 14"):
        bench_cli.run(parser.parse_args(["--height", "50"]))


def test_cli_sdpa_choices_are_the_model_backends():
    import argparse

    from vggt_uncertainty_ros.model.layers import SDPA_BACKENDS

    parser = argparse.ArgumentParser()
    bench_cli.add_arguments(parser)
    action = next(a for a in parser._actions if a.dest == "sdpa_backend")
    assert set(action.choices) == set(SDPA_BACKENDS)
    assert parser.parse_args(["--sdpa-backend", "cudnn"]).sdpa_backend == "cudnn"


def test_omega_flop_count_and_register_saving():
    from benchmarks.backbone import default_input_hw, omega_flops
    from vggt_uncertainty_ros.model.omega import get_omega_config

    cfg = get_omega_config("full")
    assert default_input_hw("vggt-omega") == (448, 592) and default_input_hw("vggt") == (392, 518)
    total = omega_flops(cfg, 8, 448, 592)
    everything_global = omega_flops(cfg, 8, 448, 592, registers=False)
    assert 18e12 < total < everything_global < 26e12
    # one register-only block instead of a global one saves exactly the difference of the two
    n, k, c = 17 + 28 * 37, 17, 1024

    def block(n_seq, seq_len, dim):
        return n_seq * (24 * seq_len * dim**2 + 4 * seq_len**2 * dim)

    saving = 5 * (block(1, 8 * n, c) - block(1, 8 * k, c))
    assert everything_global - total == pytest.approx(saving, rel=1e-9)


@pytest.mark.slow  # two spawned processes (one per backbone, for their own max-RSS figures)
def test_side_by_side_cli_on_cpu(capsys):
    rc = main(
        ["bench", "--backbone", "vggt,vggt-omega", "--frames", "2", "--height", "112", "--width", "112",
         "--iters", "1", "--warmup", "0", "--json"]
    )  # fmt: skip
    assert rc == 0
    figures = json.loads(capsys.readouterr().out)
    assert [f["backbone"] for f in figures] == ["vggt", "vggt-omega"]
    assert all(f["latency_ms_median"] > 0 and f["achieved_fraction_of_peak"] > 0 for f in figures)
    assert figures[1]["flops_saved_by_register_blocks"] > 0 == figures[0]["flops_saved_by_register_blocks"]


def test_cli_rejects_unknown_backbones_and_patch_sizes():
    import argparse

    parser = argparse.ArgumentParser()
    bench_cli.add_arguments(parser)
    with pytest.raises(ConfigError, match="comma-separated list"):
        bench_cli.run(parser.parse_args(["--backbone", "vggt,dino"]))
    with pytest.raises(ConfigError, match="--width 518 is not a multiple of 16"):
        bench_cli.run(parser.parse_args(["--backbone", "vggt-omega", "--width", "518"]))


@pytest.mark.slow  # the GPU check's CPU dry run: both tiny backbones once
def test_omega_gpu_check_dry_run_on_cpu(tmp_path, capsys):
    from benchmarks import omega_gpu_check

    assert omega_gpu_check.main(["--device", "cpu", "--config", "tiny", "--frames", "2", "--iters", "1",
                                 "--out", str(tmp_path)]) == 0  # fmt: skip
    figures = json.loads((tmp_path / "omega_gpu_check.json").read_text())
    assert set(figures["bench"]) == {"vggt", "vggt-omega"}
    assert "0 failed check(s)" in capsys.readouterr().out
