"""The node with ``backbone.name: vggt-omega`` (tiny weights): poses and covariances as the
in-process estimator computes them, and a VGGT head refused at start-up."""

from __future__ import annotations

import os
import time

import numpy as np
import torch
from node_process import Driver, domain_id, ros_env, start_node, textured_frames, write_params

from vggt_uncertainty_ros.geometry import diag_to_cov, residual_cov_to_ros
from vggt_uncertainty_ros.head import HeadMetadata, UncertaintyHead, save_head
from vggt_uncertainty_ros.model.spec import BackboneSpec
from vggt_uncertainty_ros.online.estimator import build_estimator
from vggt_uncertainty_ros.ros.conversions import rgb_to_image_msg, stamp_to_ns

SIZE, STRIDE, N = 4, 2, 6
T0_NS, DT_NS = 1_700_000_000 * 1_000_000_000, 100_000_000


def _heads(tmp):
    spec = BackboneSpec(name="vggt-omega", device="cpu")
    est = build_estimator(spec, constant_sigma=0.1)
    torch.manual_seed(0)
    head = UncertaintyHead(in_dim=est.backbone.feature_dim, hidden=16, final_init_std=0.5)
    omega = save_head(
        tmp / "omega.safetensors",
        head,
        HeadMetadata.for_head(head, backbone=est.backbone.identity(), backbone_family="vggt-omega"),
    )
    vggt = save_head(tmp / "vggt.safetensors", head, HeadMetadata.for_head(head, backbone="x", backbone_family="vggt"))
    return spec, omega, vggt


def test_node_runs_vggt_omega_and_refuses_a_vggt_head(tmp_path):
    spec, omega_head, vggt_head = _heads(tmp_path)
    # this session's own domain when one is set (ROS_DOMAIN_ID), else a per-pid one
    domain = int(os.environ.get("ROS_DOMAIN_ID") or domain_id(offset=71))
    env = ros_env(tmp_path / "ros_log", domain)
    common = {"backbone.name": "vggt-omega", "backbone.weights": "tiny", "backbone.device": "cpu"}
    bad = write_params(tmp_path / "bad.yaml", **common, head_checkpoint=str(vggt_head))
    good = write_params(
        tmp_path / "good.yaml",
        **common,
        head_checkpoint=str(omega_head),
        window_size=SIZE,
        window_stride=STRIDE,
        image_qos="reliable",
        queue_depth=4,
        publish_relative_pose=True,  # the anchored stream is opt-in
    )
    refused = start_node(bad, env, tmp_path / "bad.log")
    proc = start_node(good, env, tmp_path / "good.log")
    driver = Driver(domain)
    try:
        code = refused.wait(90)
        log = (tmp_path / "bad.log").read_text(errors="replace")
        assert code == 1 and "cannot start" in log, log
        assert "trained on backbone 'vggt'" in log and "uses backbone 'vggt-omega'" in log, log
        driver.wait_for_subscriber(90.0)
        frames = textured_frames(N, 48, 64, seed=3)
        stamps = [T0_NS + k * DT_NS for k in range(N)]
        for frame, stamp in zip(frames, stamps):
            driver.image_pub.publish(rgb_to_image_msg(frame, "rgb8", stamp, "cam"))
            time.sleep(0.1)
        n_windows = (N - SIZE) // STRIDE + 1
        driver.wait_for(lambda: len(driver.relative) >= n_windows * (SIZE - 1), 120.0, "relative poses")
        with driver.lock:
            relative = list(driver.relative)
    finally:
        for p in (refused, proc):
            if p.poll() is None:
                p.kill()
                p.wait()
        driver.close()
    assert [stamp_to_ns(m.header.stamp) for m in relative[: SIZE - 1]] == stamps[1:SIZE]
    est = build_estimator(spec, omega_head).estimate(frames[:SIZE])
    expected = residual_cov_to_ros(est.T_0_i, diag_to_cov(np.exp(est.log_var)))
    for i, msg in enumerate(relative[: SIZE - 1], start=1):
        cov = np.asarray(msg.pose.covariance, dtype=np.float64).reshape(6, 6)
        np.testing.assert_allclose(cov, expected[i], rtol=1e-4, atol=1e-6 * np.abs(expected[i]).max())
        p = msg.pose.pose.position
        np.testing.assert_allclose([p.x, p.y, p.z], est.T_0_i[i, :3, 3], rtol=1e-4, atol=1e-5)
