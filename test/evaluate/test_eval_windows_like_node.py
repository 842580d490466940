"""The evaluator windows exactly as the node does, and refuses what the node refuses (issue 14, item 3).

* the node's parameter rules (``window_stride < window_size``, integer sizes) apply to
  ``eval --params``: one error line, no traceback (``--debug`` shows it);
* an image-size change restarts the window instead of aborting the sequence.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import numpy as np
import pytest

from vggt_uncertainty_ros.cli.main import main as cli_main
from vggt_uncertainty_ros.data.types import Frame, WarningCounter
from vggt_uncertainty_ros.evaluate import EvalConfig
from vggt_uncertainty_ros.evaluate.config import DEFAULT_PARAMS_YAML
from vggt_uncertainty_ros.evaluate.sources import ModelSource
from vggt_uncertainty_ros.online.estimator import WindowEstimate


def _params(path: Path, size: str, stride: str) -> Path:
    text = DEFAULT_PARAMS_YAML.read_text()
    text = text.replace("window_size: 8", f"window_size: {size}").replace(
        "window_stride: 4", f"window_stride: {stride}"
    )
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("size", "stride", "message"),
    [
        ('"eight"', "4", "window size must be an integer"),
        ("4", "4", r"window_stride \(4\) must be < window_size \(4\)"),
    ],
)
def test_eval_refuses_what_the_node_refuses_without_a_traceback(
    synth_seq, tmp_path, capsys, caplog, size, stride, message
):
    params = _params(tmp_path / "params.yaml", size, stride)
    argv = ["eval", "--data", str(synth_seq.paths["tum"]), "--run-model", "--params", str(params)]
    argv += ["--out", str(tmp_path / "out")]
    assert cli_main(argv) == 1
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and errors[0].exc_info is None, "one line, no traceback"
    assert "ConfigError" in errors[0].getMessage() and re.search(message, errors[0].getMessage())
    assert "Traceback" not in capsys.readouterr().err
    caplog.clear()
    assert cli_main(["--debug", *argv]) == 1
    assert [r.exc_info is not None for r in caplog.records if r.levelname == "ERROR"] == [True]


def test_node_params_refuse_the_same_values():
    from vggt_uncertainty_ros.errors import ConfigError

    ros_params = pytest.importorskip("vggt_uncertainty_ros.ros.params")
    with pytest.raises(ConfigError, match=r"window_stride \(4\) must be < window_size \(4\)"):
        ros_params.NodeParams(window_size=4, window_stride=4)


class _FakeReader:
    """A sequence whose images change size after 6 frames (as a camera reconfigured mid-bag)."""

    def __init__(self, n: int = 16, change_at: int = 6) -> None:
        self.n, self.change_at = n, change_at
        self.warnings = WarningCounter()

    def frames(self):
        for k in range(self.n):
            shape = (6, 8, 3) if k < self.change_at else (8, 6, 3)
            T = np.eye(4)
            T[0, 3] = 0.1 * k
            yield Frame(stamp_ns=(k + 1) * 10**8, image=np.zeros(shape, np.uint8), depth=None, T_world_cam=T, index=k)


class _StubEstimator:
    scale_convention = "vggt"
    head_metadata = None

    def estimate(self, images, stamps_ns=None, frame_ids=None) -> WindowEstimate:
        assert len({im.shape for im in images}) == 1, "a window mixes image sizes"
        n = len(images)
        T = np.tile(np.eye(4), (n, 1, 1))
        T[:, 0, 3] = np.arange(n) * 0.1
        return WindowEstimate(
            T_0_i=T,
            log_var=np.full((n, 6), -4.0),
            pose_enc=np.zeros((n, 9)),
            intrinsics=np.tile(np.eye(3), (n, 1, 1)),
            features=np.zeros((n, 4), np.float32),
        )


def test_an_image_size_change_restarts_the_window(tmp_path, monkeypatch):
    import vggt_uncertainty_ros.evaluate.sources as sources

    monkeypatch.setattr(sources, "open_sequence", lambda *a, **k: contextlib.nullcontext(_FakeReader()))
    params = _params(tmp_path / "params.yaml", "4", "2")
    cfg = EvalConfig(data=tmp_path, out_dir=tmp_path / "out", params=params, plots=False)
    warnings = WarningCounter()
    source = ModelSource(cfg, warnings)
    monkeypatch.setattr(source, "_estimator", lambda: _StubEstimator())
    windows = [m.stamps_ns.tolist() for m in source.windows()]
    stamps = [(k + 1) * 10**8 for k in range(16)]
    # frames 0-5 (size A): windows [0..3], [2..5]; frames 6-15 (size B) start again at 6
    assert windows == [stamps[0:4], stamps[2:6], stamps[6:10], stamps[8:12], stamps[10:14], stamps[12:16]]
    assert warnings.as_dict().get("size_changed") == 1
