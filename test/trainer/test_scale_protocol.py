"""Scale protocol in training (masked, counted windows) and the validation-selection rule."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from vggt_uncertainty_ros.calibration import D2_ROT_MEAN, D2_TRANS_MEAN
from vggt_uncertainty_ros.errors import DataError
from vggt_uncertainty_ros.geometry import se3_exp
from vggt_uncertainty_ros.head import pose_uncertainty_loss
from vggt_uncertainty_ros.trainer import loop as loop_mod
from vggt_uncertainty_ros.trainer.cache import CachedSequence
from vggt_uncertainty_ros.trainer.config import TrainConfig
from vggt_uncertainty_ros.trainer.data import build_window_set
from vggt_uncertainty_ros.trainer.state import LoopState

S = 5
HW = (60, 80)


def _cached(step_m: float, pred_unit: float, n_windows: int = 1, name: str = "seq") -> CachedSequence:
    """Windows moving ``step_m`` metres per frame along x (small rotations), predicted in a unit
    ``pred_unit`` metres per backbone unit with a little rotation noise."""
    rng = np.random.default_rng(0)
    T_gt = np.stack(
        [np.stack([se3_exp(np.array([0.01 * i, 0, 0, step_m * i, 0, 0])) for i in range(S)]) for _ in range(n_windows)]
    )
    T_pred = T_gt.copy()
    T_pred[..., :3, 3] /= pred_unit
    T_pred = T_pred @ se3_exp(np.concatenate([rng.normal(0, 1e-3, (n_windows, S, 3)), np.zeros((n_windows, S, 3))], -1))
    T_pred[:, 0] = np.eye(4)
    feats = rng.normal(size=(n_windows, S, 4)).astype(np.float32)
    return CachedSequence(
        name=name,
        camera_features=feats,
        camera_trunk_features=feats,
        T_0_i_pred=T_pred,
        valid=np.ones((n_windows, S), bool),
        T_0_i_gt=T_gt,
        stamps_ns=np.zeros((n_windows, S), np.int64),
        frame_index=np.zeros((n_windows, S), np.int64),
        image_hw=HW,
        backbone_s_per_window=0.0,
        key=name,
    )


def test_windows_without_motion_are_masked_and_counted_not_given_unit_scale(caplog) -> None:
    moving = _cached(0.05, 0.5, name="moving")
    static = _cached(0.002, 0.5, name="static")  # < 2 cm: no trustworthy scale
    with caplog.at_level(logging.INFO, logger="vggt_uncertainty_ros.trainer.data"):
        ws = build_window_set([moving, static], "camera_features", 0.02)
    assert ws.trans_ok.tolist() == [True, False]
    assert "1 of 2 windows have no trustworthy scale (low_motion 1)" in caplog.text
    assert float(torch.exp(ws.log_scale[0])) == pytest.approx(0.5, rel=1e-3)
    assert torch.all(ws.residual[1, :, 3:] == 0)  # stored as 0, never a residual under a made-up s = 1
    assert torch.all(ws.residual[1, 1:, :3].abs() > 0)  # rotation still scored
    # relative convention: the window's motion in metres, mean over frames 1..S-1
    assert float(torch.exp(ws.log_motion[0])) == pytest.approx(0.05 * np.mean(np.arange(1, S)), rel=1e-3)


def test_windows_with_invalid_frames_are_left_out_before_scoring_and_none_left_is_a_clear_error() -> None:
    """A backbone that loses frames (geometric: NaN poses) never reaches the residual maths."""
    seq = _cached(0.05, 0.5, n_windows=3)
    seq.valid[1, 2] = False
    seq.T_0_i_pred[1, 2] = np.nan
    ws = build_window_set([seq], "camera_features", 0.02)
    assert ws.n_windows == 2 and torch.isfinite(ws.residual).all()
    seq.valid[:, 1] = False
    with pytest.raises(DataError, match="no window left"):
        build_window_set([seq], "camera_features", 0.02)


def test_masked_translation_carries_no_loss_and_no_gradient() -> None:
    r = torch.randn(2, S, 6, dtype=torch.float64)
    r[1, :, 3:] = 0.0
    lv = torch.zeros(2, S, 6, dtype=torch.float64, requires_grad=True)
    out = pose_uncertainty_loss(r, lv, trans_mask=torch.tensor([True, False]))
    out.loss.backward()
    assert torch.all(lv.grad[1, :, 3:] == 0) and torch.all(lv.grad[1, 1:, :3] != 0)
    assert torch.all(lv.grad[0, 1:] != 0)
    # the same loss as the unmasked one minus the masked block
    full = pose_uncertainty_loss(r, lv.detach())
    nll_masked = 0.5 * (r[1, 1:, 3:] ** 2).sum() / (2 * (S - 1))
    assert float(out.loss) == pytest.approx(float(full.loss) - float(nll_masked))
    with pytest.raises(ValueError, match="trans_mask"):
        pose_uncertainty_loss(r, lv.detach(), trans_mask=torch.ones(3, dtype=torch.bool))


class _PerfectHead:
    """A 'trainer' whose validation is always perfectly calibrated (d² = 3 for both blocks)."""

    def evaluate(self, ws) -> dict[str, float]:
        return {D2_ROT_MEAN: 3.0, D2_TRANS_MEAN: 3.0, "loss/pose_uncertainty_nll": 0.0}


class _NullLogger:
    def log(self, *args, **kwargs) -> None:
        pass


def test_validation_selection_never_picks_a_head_before_select_after(monkeypatch, tmp_path: Path) -> None:
    saved: list[int] = []
    monkeypatch.setattr(loop_mod, "_save_head", lambda path, trainer, cfg, info, metrics, step: saved.append(step))
    cfg = TrainConfig().replace(**{"train.iterations": 100, "train.val_every": 10, "data.synthetic.train": 1})
    assert loop_mod.selection_start(cfg) == 20  # default: 20 % of the iterations
    assert loop_mod.selection_start(cfg.replace(**{"train.select_after": 35})) == 35
    state = LoopState()
    for step in (10, 20, 30):
        state.step = step
        loop_mod._validate(cfg, _PerfectHead(), None, state, _NullLogger(), tmp_path, {}, 0.0)
    # the step-10 head scores a perfect 0 but is not eligible; step 20 is the first eligible one
    assert saved == [20] and state.best_step == 20 and state.best_score == 0.0


def test_calibration_score_ignores_a_block_without_scored_frames() -> None:
    assert loop_mod.calibration_score({D2_ROT_MEAN: 4.0, D2_TRANS_MEAN: float("nan")}) == pytest.approx(1.0)
    assert loop_mod.calibration_score({D2_ROT_MEAN: float("nan"), D2_TRANS_MEAN: float("nan")}) == float("inf")
