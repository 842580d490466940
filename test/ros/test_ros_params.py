"""Tests of the node's parameters: the shipped YAML, validation, the on-set callback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from rclpy.parameter import Parameter

from vggt_uncertainty_ros.data.windows import load_window_config
from vggt_uncertainty_ros.errors import ConfigError
from vggt_uncertainty_ros.ros.params import (
    DESCRIPTIONS,
    NodeParams,
    parameter_defaults,
    refuse_changes,
    unknown_parameter_warnings,
)

PARAMS_YAML = Path(__file__).resolve().parents[2] / "config" / "params.yaml"


def _shipped() -> dict:
    return yaml.safe_load(PARAMS_YAML.read_text())["/**"]["ros__parameters"]


def test_shipped_yaml_declares_exactly_the_node_parameters_and_documents_each():
    values = _shipped()
    flat = {k for k in values if k != "backbone"} | {f"backbone.{k}" for k in values["backbone"]}
    assert flat == set(parameter_defaults())
    text = PARAMS_YAML.read_text().splitlines()
    for name in [*values, *values["backbone"]]:
        line = next(i for i, row in enumerate(text) if row.strip().startswith(f"{name}:"))
        assert text[line - 1].strip().startswith("#"), f"{name} has no comment above it"


def test_shipped_yaml_is_valid_and_matches_defaults():
    params = NodeParams.from_mapping(_shipped())
    assert params == NodeParams()
    assert params.window_size == 8 and params.backbone.device == "cuda" and params.scale_source == "none"
    assert load_window_config(PARAMS_YAML) == params.window_config


def test_default_extrinsic_is_an_optical_frame_looking_forward():
    T = NodeParams().T_base_cam
    np.testing.assert_allclose(T[:3, 2], [1.0, 0.0, 0.0], atol=1e-12)  # camera z = base x
    np.testing.assert_allclose(T[:3, 0], [0.0, -1.0, 0.0], atol=1e-12)  # camera x = base -y


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"window_size": 1}, "window_size"),
        ({"window_stride": 8}, "overlap"),
        ({"scale_source": "gps"}, "scale_source"),
        ({"image_qos": "fast"}, "image_qos"),
        ({"camera_to_base": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]}, "camera_to_base"),
        ({"camera_to_base": [1.0, 2.0]}, "camera_to_base"),
        ({"queue_depth": 0}, "queue_depth"),
        ({"constant_sigma_trans": 0.0}, "constant_sigma_trans"),
        ({"keyframe_min_gap_s": -1.0}, "keyframe_min_gap_s"),
        ({"camera_frame": " "}, "camera_frame"),
        ({"publish_tf": "yes"}, "publish_tf"),
        ({"image_transport": "theora"}, "image_transport"),
        ({"origin_sigma_rot_rad": 0.0}, "origin_sigma_rot_rad"),
        ({"backbone.dtype": "int8"}, "dtype"),
        ({"backbone.preprocess_mode": "stretch"}, "preprocess_mode"),
        ({"backbone.weights": ""}, "weights"),
        ({"window_sise": 8}, "window_sise"),
    ],
)
def test_invalid_values_are_refused_with_the_parameter_name(changes, match):
    with pytest.raises(ConfigError, match=match):
        NodeParams.from_mapping(changes)


def test_every_parameter_has_a_description():
    assert set(DESCRIPTIONS) == set(parameter_defaults())
    assert all(len(d) > 10 for d in DESCRIPTIONS.values())


def test_on_set_callback_refuses_every_change_with_the_reason():
    invalid = refuse_changes([Parameter("image_qos", value="fast")])
    assert not invalid.successful and "image_qos" in invalid.reason
    assert not refuse_changes([Parameter("backbone.dtype", value="int8")]).successful
    valid = refuse_changes([Parameter("keyframe_min_gap_s", value=1)])  # int for a float: coerced, valid
    assert not valid.successful and "restart" in valid.reason
    assert refuse_changes([Parameter("use_sim_time", value=True)]).successful


def test_unknown_parameters_are_reported_with_the_closest_valid_name():
    messages = unknown_parameter_warnings(
        {"window_sise", "backbone.dtyp", "zzz", "window_size", "use_sim_time", "qos_overrides./image.reliability"}
    )
    assert messages == [
        "unknown parameter 'backbone.dtyp' ignored (did you mean 'backbone.dtype'?)",
        "unknown parameter 'window_sise' ignored (did you mean 'window_size'?)",
        "unknown parameter 'zzz' ignored",
    ]


def test_default_outputs_name_only_real_frames_and_leave_tf_alone():
    p = NodeParams()
    assert p.publish_odometry and not p.publish_relative_pose and not p.publish_tf  # REP 105: no second parent
    assert p.tf_child == "base_link" and NodeParams(tf_child_frame="vggt_base_link").tf_child == "vggt_base_link"
    assert p.image_transport == "raw"
    np.testing.assert_allclose(np.diag(p.origin_cov), [1e-6] * 6)
    assert np.linalg.eigvalsh(p.origin_cov).min() > 0
