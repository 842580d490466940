"""Start-up refusals and SIGTERM of ``vggt_uncertainty_node`` (separate processes, real rclpy)."""

from __future__ import annotations

import signal
import time

import pytest
import torch
from node_process import Driver, domain_id, ros_env, start_node, stop_node, write_params

from vggt_uncertainty_ros.head import HeadMetadata, UncertaintyHead, save_head
from vggt_uncertainty_ros.model import backbone_identity, load_backbone


@pytest.fixture(scope="module")
def heads(tmp_path_factory):
    """Checkpoints: one trained on another backbone, one with a metric scale convention."""
    tmp = tmp_path_factory.mktemp("heads")
    backbone = load_backbone("tiny", torch.device("cpu"), torch.float32)
    head = UncertaintyHead(in_dim=backbone.feature_dim, hidden=16)
    other = tmp / "other_backbone.safetensors"
    save_head(other, head, HeadMetadata.for_head(head, backbone="0123456789abcdef"))
    metric = tmp / "metric.safetensors"
    save_head(
        metric, head, HeadMetadata.for_head(head, backbone=backbone_identity(backbone), scale_convention="metric")
    )
    return {"other": other, "metric": metric}


def test_refuses_bad_heads_and_parameters_with_clear_errors(tmp_path, heads):
    env = ros_env(tmp_path / "ros_log", domain_id(offset=37))
    cases = {
        "other": ({"head_checkpoint": str(heads["other"])}, "trained on backbone '0123456789abcdef'"),
        "metric": ({"head_checkpoint": str(heads["metric"]), "scale_source": "none"}, "scale_convention 'metric'"),
        "stride": ({"window_size": 4, "window_stride": 4}, "window_stride (4) must be < window_size (4)"),
    }
    procs = {}
    for name, (overrides, _) in cases.items():
        params = write_params(tmp_path / f"{name}.yaml", **{"backbone.device": "cpu"}, **overrides)
        procs[name] = start_node(params, env, tmp_path / f"{name}.log")
    for name, (_, message) in cases.items():
        code = procs[name].wait(60)
        log = (tmp_path / f"{name}.log").read_text(errors="replace")
        assert code == 1, f"{name}: exit code {code}\n{log}"
        assert "cannot start" in log and message in log, log


def test_sigterm_exits_zero_and_cuda_falls_back_to_cpu(tmp_path):
    domain = domain_id(offset=53)
    env = ros_env(tmp_path / "ros_log", domain)
    params = write_params(tmp_path / "params.yaml", **{"backbone.device": "cuda"}, diagnostics_period_s=0.2)
    log_path = tmp_path / "node.log"
    proc = start_node(params, env, log_path)
    driver = Driver(domain)
    try:
        driver.wait_for(lambda: bool(driver.diagnostics), 90.0, "the node's first /diagnostics")
        code, waited = stop_node(proc, signal.SIGTERM, 5.0)
    finally:
        if proc.poll() is None:
            proc.kill()
        driver.close()
    log = log_path.read_text(errors="replace")
    assert code == 0 and waited < 5.0, f"exit {code} after {waited:.1f} s\n{log}"
    device = driver.latest_diagnostics()["device"]
    if torch.cuda.is_available():
        assert device.startswith("cuda")
    else:
        assert device == "cpu" and "falling back to cpu" in log


def _wait_for_line(log_path, text: str, proc, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in log_path.read_text(errors="replace"):
        assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text(errors="replace")
        time.sleep(0.02)


@pytest.mark.slow
def test_signals_during_start_up_exit_zero_and_a_misspelt_parameter_is_named(tmp_path):
    """SIGINT during the imports; SIGTERM then SIGINT while the model loads (after the parameters)."""
    env = ros_env(tmp_path / "ros_log", domain_id(offset=59))
    params = write_params(tmp_path / "params.yaml", **{"backbone.device": "cpu"}, window_sise=3)
    logs = {name: tmp_path / f"{name}.log" for name in ("imports", "loading")}
    procs = {name: start_node(params, env, log) for name, log in logs.items()}
    try:
        _wait_for_line(logs["imports"], "starting (signal handlers installed)", procs["imports"])
        t0 = time.monotonic()
        procs["imports"].send_signal(signal.SIGINT)
        codes = {"imports": (procs["imports"].wait(10), time.monotonic() - t0)}
        _wait_for_line(logs["loading"], "unknown parameter 'window_sise' ignored", procs["loading"])
        t0 = time.monotonic()
        procs["loading"].send_signal(signal.SIGTERM)
        procs["loading"].send_signal(signal.SIGINT)
        codes["loading"] = (procs["loading"].wait(10), time.monotonic() - t0)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for name, (code, waited) in codes.items():
        log = logs[name].read_text(errors="replace")
        assert code == 0 and waited < 5.0, f"{name}: exit {code} after {waited:.1f} s\n{log}"
        assert "Traceback" not in log and "KeyboardInterrupt" not in log, log
    assert "(did you mean 'window_size'?)" in logs["loading"].read_text()
