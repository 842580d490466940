"""The offline training loop of the uncertainty head over cached backbone features.

:func:`train` runs a whole (or resumed) run from a :class:`TrainConfig`:

1. resolve sequences (split by sequence), run the frozen backbone once per window into the
   feature cache (:mod:`.cache`), and precompute per-window scale fits and residuals (:mod:`.data`);
2. train :class:`~vggt_uncertainty_ros.head.UncertaintyHead` with AdamW on random batches of
   windows; the loss is the head's :func:`~vggt_uncertainty_ros.head.pose_uncertainty_loss`
   on residuals in metres, with the translation log-variance converted by the head's scale
   convention (``vggt``: ``log_var_m = log_var_vggt + 2 log s``); frame 0 carries no loss;
3. every ``log_every`` steps log the batch's calibration metrics; every ``val_every`` steps
   validate on held-out sequences, write ``checkpoints/last.safetensors``, update
   ``checkpoints/best.safetensors`` (lowest *calibration score*
   ``|d²_rot − 3| + |d²_trans − 3|`` on validation, among validations at or after
   :func:`selection_start`, so an untrained head is never selected), apply the optional learning-rate drop and
   early stop, and save the resumable state ``state/latest.safetensors``;
4. SIGINT (Ctrl-C) finishes the current step, saves the state and returns; ``--resume``
   continues to the same final weights and metrics as an uninterrupted run.

A run that fails before its first checkpoint (unreadable data, a truncated bag, no windows)
leaves ``failed.json`` (status and error) in its folder, so the folder is not mistaken for a
run; ``--resume`` on it, or on a folder whose run was killed before that point, says why it
cannot continue; a fresh start in the same folder replaces it.
"""

from __future__ import annotations

import json
import logging
import math
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from vggt_uncertainty_ros.calibration import D2_ROT_MEAN, D2_TRANS_MEAN, calibration_metrics
from vggt_uncertainty_ros.errors import CheckpointError, ConfigError
from vggt_uncertainty_ros.head import (
    HeadMetadata,
    UncertaintyHead,
    check_head_backbone,
    pose_uncertainty_loss,
    read_head_metadata,
    save_head,
    scale_translation_log_var,
)
from vggt_uncertainty_ros.model.device import resolve_device
from vggt_uncertainty_ros.trainer.config import TrainConfig, save_run_config
from vggt_uncertainty_ros.trainer.data import WindowSet, build_window_set, split_sequences
from vggt_uncertainty_ros.trainer.logs import MetricLogger
from vggt_uncertainty_ros.trainer.shards import open_feature_cache
from vggt_uncertainty_ros.trainer.state import LoopState, load_state, save_state

_log = logging.getLogger(__name__)

#: calibration target of d² for a 3-DOF block.
D2_TARGET = 3.0
STATE_FILE = Path("state") / "latest.safetensors"
BEST_FILE = Path("checkpoints") / "best.safetensors"
LAST_FILE = Path("checkpoints") / "last.safetensors"
SPEED_FILE = "speed.json"
FINAL_FILE = "final_metrics.json"
#: written when a run fails before its first checkpoint: the folder is not a resumable run
FAILED_FILE = "failed.json"


@dataclass
class SpeedReport:
    """Measured costs (seconds) and their ratio.

    Attributes:
        head_step_s: mean wall time of one optimizer step of the head on cached features.
        backbone_window_s: mean wall time of one backbone forward over one window.
        ratio: ``backbone_window_s / head_step_s``.
        batch_size: windows per head step.
        window_size: frames per window.
        image_hw: (H, W) of the backbone input.
        backbone_source: ``cache build`` (measured while filling the cache in this run) or
            ``timed probe`` (one forward on a random window of the cached shape).
        device: where the head and backbone ran.
    """

    head_step_s: float
    backbone_window_s: float
    ratio: float
    batch_size: int
    window_size: int
    image_hw: tuple[int, int]
    backbone_source: str
    device: str


@dataclass
class TrainResult:
    """What a call to :func:`train` did.

    Attributes:
        run_dir: the run directory.
        status: ``completed``, ``early_stopped``, ``interrupted`` (SIGINT) or ``paused``
            (``train.stop_after`` steps done in this call).
        step: optimizer steps done in total.
        val_metrics: latest validation metrics (calibration names + ``loss/pose_uncertainty_nll``).
        best_score: best validation calibration score and its step.
        best_step: step of ``best_score``.
        cache_hits: cached sequences found on disk.
        cache_misses: sequences that went through the backbone in this call.
        speed: measured speed.
        n_train_windows: training windows.
        n_val_windows: validation windows.
    """

    run_dir: Path
    status: str
    step: int
    val_metrics: dict[str, float]
    best_score: float
    best_step: int
    cache_hits: int
    cache_misses: int
    speed: SpeedReport | None
    n_train_windows: int = 0
    n_val_windows: int = 0


def calibration_score(metrics: dict[str, float]) -> float:
    """``|d²_rot − 3| + |d²_trans − 3|`` (lower is better; 0 is perfect mean calibration).

    A block with no scored frame (NaN: e.g. every validation window excluded from translation
    by the scale protocol) contributes nothing; no scored block at all gives ``inf``.
    """
    terms = [abs(metrics.get(k, math.nan) - D2_TARGET) for k in (D2_ROT_MEAN, D2_TRANS_MEAN)]
    terms = [t for t in terms if math.isfinite(t)]
    return float(sum(terms)) if terms else math.inf


def selection_start(cfg: TrainConfig) -> int:
    """First step whose validation may become ``best`` (validation-selection rule).

    ``train.select_after`` when set (> 0), else 20 % of ``train.iterations`` (rounded up).
    An untrained head is near its initial σ, which can happen to score well on a validation
    set (the issue saw step 25 selected); before this step validations are logged but never
    selected, and the last validation is always eligible.
    """
    if cfg.train.select_after > 0:
        return min(cfg.train.select_after, cfg.train.iterations)
    return max(1, math.ceil(0.2 * cfg.train.iterations))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _SigintFlag:
    """Turns SIGINT into a flag the loop checks after each step (main thread only)."""

    def __init__(self) -> None:
        self.raised = False
        self._previous: Any = None

    def __enter__(self) -> _SigintFlag:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.raised:  # second Ctrl-C: give up immediately
            raise KeyboardInterrupt
        _log.warning("SIGINT: finishing this step, saving state/latest, then stopping (Ctrl-C again aborts)")
        self.raised = True

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class HeadTrainer:
    """Head, optimizer and the maths of one step / one validation (no I/O).

    Args:
        cfg: run configuration.
        in_dim: feature size of the cached windows.
        device: where the head lives.
    """

    def __init__(self, cfg: TrainConfig, in_dim: int, device: torch.device) -> None:
        self.cfg = cfg
        self.device = device
        torch.manual_seed(cfg.train.seed)
        self.head = UncertaintyHead(
            in_dim=in_dim, hidden=cfg.head.hidden, parameterization=cfg.head.parameterization
        ).to(device)
        self.optimizer = torch.optim.AdamW(self.head.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
        self.sampler = torch.Generator(device="cpu")
        self.sampler.manual_seed(cfg.train.seed)
        self.loss_config = cfg.loss

    def set_lr(self, lr: float) -> None:
        """Set the learning rate of every parameter group."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def sample(self, n_windows: int) -> torch.Tensor:
        """Indices of one training batch (without replacement when the set is large enough)."""
        b = self.cfg.train.batch_size
        if b <= n_windows:
            return torch.randperm(n_windows, generator=self.sampler)[:b]
        return torch.randint(n_windows, (b,), generator=self.sampler)

    def predict(
        self, features: torch.Tensor, log_scale: torch.Tensor, log_motion: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Head output and its log-variance in the residual's units.

        Args:
            features: ``[B, S, D]``.
            log_scale: ``[B]`` log of the window scale ``s``.
            log_motion: ``[B]`` log of the window motion ``mean ‖s·t_pred‖`` (``relative`` heads).

        Returns:
            ``(log_var_head [B,S,6], log_var_m [B,S,6])``: the head's log σ² (translation in
            VGGT units for convention ``vggt``) and the one in metres the NLL uses.
        """
        log_var = self.head(features)
        if self.cfg.head.scale_convention == "vggt":
            return log_var, scale_translation_log_var(log_var, torch.exp(log_scale)[:, None])
        if self.cfg.head.scale_convention == "relative":  # σ_trans relative to the window's motion (metres)
            assert log_motion is not None
            return log_var, scale_translation_log_var(log_var, torch.exp(log_motion)[:, None])
        return log_var, log_var

    def step(self, ws: WindowSet, idx: torch.Tensor) -> dict[str, Any]:
        """One AdamW step on windows ``idx`` of ``ws`` (tensors already on the device)."""
        self.head.train()
        log_var, log_var_m = self.predict(ws.features[idx], ws.log_scale[idx], _opt(ws.log_motion, idx))
        out = pose_uncertainty_loss(
            ws.residual[idx], log_var_m, config=self.loss_config, t_gt=ws.t_gt[idx], trans_mask=_opt(ws.trans_ok, idx)
        )
        self.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        if self.cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.head.parameters(), self.cfg.optim.grad_clip)
        self.optimizer.step()
        return {"loss": out, "log_var": log_var.detach(), "log_var_m": log_var_m.detach()}

    @torch.no_grad()
    def evaluate(self, ws: WindowSet, idx: torch.Tensor | None = None) -> dict[str, float]:
        """Loss and calibration metrics of the head on windows ``idx`` (default: all)."""
        self.head.eval()
        sel = slice(None) if idx is None else idx
        log_var, log_var_m = self.predict(ws.features[sel], ws.log_scale[sel], _opt(ws.log_motion, sel))
        out = pose_uncertainty_loss(
            ws.residual[sel], log_var_m, config=self.loss_config, t_gt=ws.t_gt[sel], trans_mask=_opt(ws.trans_ok, sel)
        )
        return window_metrics(self.cfg.head.parameterization, ws, sel, log_var, log_var_m, out.components)


def _opt(value: torch.Tensor | None, sel: Any) -> torch.Tensor | None:
    return None if value is None else value[sel]


def window_metrics(
    parameterization: str,
    ws: WindowSet,
    sel: Any,
    log_var: torch.Tensor,
    log_var_m: torch.Tensor,
    loss_components: dict[str, float],
) -> dict[str, float]:
    """Calibration metrics (analysis names) of frames 1…S-1 of the selected windows, plus losses.

    ``log_var`` (the head's own output) drives the clamp diagnostics, ``log_var_m`` (metres)
    the calibration of the metric residuals.
    """
    r = ws.residual[sel][:, 1:].reshape(-1, 6).double().cpu().numpy()
    lv_m = log_var_m[:, 1:].reshape(-1, 6).double().cpu().numpy()
    lv_head = log_var[:, 1:].reshape(-1, 6).double().cpu().numpy()
    scale = torch.exp(ws.log_scale[sel]).double().cpu().numpy()
    trans_valid = None
    if ws.trans_ok is not None:  # scale protocol: windows without a trustworthy scale score rotation only
        ok = ws.trans_ok.to(ws.features.device)[sel]
        trans_valid = ok[:, None].expand(-1, ws.window_size - 1).reshape(-1).cpu().numpy()
    metrics = calibration_metrics(
        r,
        lv_m,
        parameterization=parameterization,
        log_var_head=lv_head,
        trans_valid=trans_valid,
        scale_fit={
            "scale": scale,
            "n_valid": ws.n_valid[sel.cpu() if torch.is_tensor(sel) else sel].double().numpy(),
            # frame 0 is the window's reference (t = 0): only the scored frames 1..S-1 count
            "t_gt": ws.t_gt[sel][:, 1:].double().cpu().numpy(),
            "t_pred_scaled": ws.t_pred_scaled[sel][:, 1:].double().cpu().numpy(),
        },
    )
    metrics = {k: float(v) for k, v in metrics.items()}
    metrics["loss/pose_uncertainty_nll"] = loss_components["nll"]
    metrics["loss/nll_rot"] = loss_components["nll_rot"]
    metrics["loss/nll_trans"] = loss_components["nll_trans"]
    metrics["loss/total"] = loss_components["nll_weighted"] + loss_components["prior"]
    metrics["loss/prior"] = loss_components["prior"]
    return metrics


def _to_device(ws: WindowSet, device: torch.device) -> WindowSet:
    return WindowSet(
        features=ws.features.to(device),
        residual=ws.residual.to(device),
        log_scale=ws.log_scale.to(device),
        t_gt=ws.t_gt.to(device),
        t_pred_scaled=ws.t_pred_scaled.to(device),
        n_valid=ws.n_valid,
        names=ws.names,
        trans_ok=None if ws.trans_ok is None else ws.trans_ok.to(device),
        log_motion=None if ws.log_motion is None else ws.log_motion.to(device),
    )


def _probe_backbone(
    model: Any, window_size: int, image_hw: tuple[int, int], device: torch.device, repeats: int = 2
) -> float:
    """Seconds per ``backbone.predict`` over a random window of the cached image size (after warm-up)."""
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (*image_hw, 3), dtype=np.uint8) for _ in range(window_size)]
    times = []
    for _ in range(repeats + 1):
        _sync(device)
        t0 = time.perf_counter()
        model.predict(images)
        _sync(device)
        times.append(time.perf_counter() - t0)
    return float(np.mean(times[1:]))


def prepare_data(cfg: TrainConfig, device: torch.device) -> tuple[WindowSet, WindowSet | None, dict[str, Any]]:
    """Fill/read the feature cache and build the training and validation window sets.

    Returns:
        ``(train, val or None, info)`` with ``info`` holding cache hits/misses, backbone
        identity and the backbone timing.
    """
    train_specs, val_specs = split_sequences(cfg.data, cfg.output.cache_dir, cfg.train.seed)
    _log.info("sequences: %d train, %d validation", len(train_specs), len(val_specs))
    cache = open_feature_cache(cfg, device)
    model, identity = cache.model, cache.identity
    family = model.name
    train_cached = [cache.get(s) for s in train_specs]
    val_cached = [cache.get(s) for s in val_specs]
    test_cached = [cache.get(s) for s in cfg.data.test]
    image_hw = train_cached[0].image_hw
    if len(cache.backbone_window_times_s) > 1:
        backbone_s = float(np.mean(cache.backbone_window_times_s[1:]))
        source = "cache build"
    else:
        backbone_s = _probe_backbone(model, cfg.window.size, image_hw, device)
        source = "timed probe"
    del model, cache.model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    feature, motion = cfg.head.input_feature, cfg.loss.min_motion_m
    train_set = build_window_set(train_cached, feature, motion)
    val_set = build_window_set(val_cached, feature, motion) if val_cached else None
    info = {
        "cache_hits": cache.hits,
        "cache_misses": cache.misses,
        "backbone_identity": identity,
        "backbone_family": family,
        "backbone_window_s": backbone_s,
        "backbone_source": source,
        "image_hw": image_hw,
        "test_set": build_window_set(test_cached, feature, motion) if test_cached else None,
    }
    return train_set, val_set, info


def _check_resumed_backbone(last: Path, family: str, feature_dim: int) -> None:
    """Refuse to resume a head trained on another backbone family (its last checkpoint says which).

    Raises:
        CheckpointError: the run's head was trained on another backbone family or feature size.
    """
    if last.is_file():
        check_head_backbone(read_head_metadata(last), family, feature_dim, str(last))


def train(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    on_step: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train (or resume training) the uncertainty head as configured.

    Args:
        cfg: the run configuration (``output.run_dir`` is the run directory).
        resume: continue from ``run_dir/state/latest.safetensors``.
        on_step: called with the number of steps done after every step (tests, progress).

    Returns:
        A :class:`TrainResult`.

    Raises:
        ConfigError: a fresh run would overwrite an existing run, or a resume lacks state.
        DataError, CheckpointError, ModelError: from data, checkpoints and the backbone.
    """
    run_dir = Path(cfg.output.run_dir)
    state_path = run_dir / STATE_FILE
    if resume and not state_path.is_file():
        raise ConfigError(_why_no_resume(run_dir, state_path))
    if not resume and state_path.exists():
        raise ConfigError(f"{run_dir} already holds a run; pass --resume to continue it or choose another output dir")
    (run_dir / FAILED_FILE).unlink(missing_ok=True)  # a fresh start replaces a failed one
    try:
        return _train(cfg, run_dir, state_path, resume, on_step)
    except BaseException as err:
        if not state_path.exists():  # nothing to resume: say so in the folder
            _mark_failed(run_dir, err)
        raise


def _why_no_resume(run_dir: Path, state_path: Path) -> str:
    """The reason ``--resume`` cannot continue the run in ``run_dir``."""
    failed = run_dir / FAILED_FILE
    if failed.is_file():
        try:
            error = json.loads(failed.read_text()).get("error", "unknown error")
        except (OSError, ValueError):
            error = "unknown error"
        return (
            f"--resume: the run in {run_dir} failed before its first checkpoint ({error}); there is nothing to "
            "resume: fix the cause and start it afresh (same --out, without --resume)"
        )
    if (run_dir / "config.yaml").is_file():
        return (
            f"--resume: the run in {run_dir} has no training state ({state_path} is missing): it stopped before "
            "its first checkpoint (killed?); start it afresh (same --out, without --resume)"
        )
    return f"--resume: {run_dir} holds no run (no {state_path})"


def _mark_failed(run_dir: Path, err: BaseException) -> None:
    """Write ``failed.json`` so a run that died before its first checkpoint does not look like a run."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_json(
            run_dir / FAILED_FILE,
            {"status": "failed", "stage": "before the first checkpoint", "error": f"{type(err).__name__}: {err}"},
        )
    except OSError as io_err:  # the original error matters more
        _log.warning("could not mark %s as failed: %s", run_dir, io_err)


def _train(
    cfg: TrainConfig,
    run_dir: Path,
    state_path: Path,
    resume: bool,
    on_step: Callable[[int], None] | None,
) -> TrainResult:
    """The body of :func:`train` once the run directory's state was checked."""
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    random.seed(cfg.train.seed)
    np.random.seed(cfg.train.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        save_run_config(cfg, run_dir)

    device = resolve_device(cfg.backbone.device)
    t_start = time.perf_counter()
    train_set, val_set, info = prepare_data(cfg, device)
    if val_set is None:
        _log.warning("no validation sequence: validating on the training windows (best/early stop are not held-out)")
    eval_set = _to_device(val_set if val_set is not None else train_set, device)
    train_dev = _to_device(train_set, device)
    _log.info(
        "windows: %d train, %d validation; head input %s [%d]",
        train_set.n_windows,
        eval_set.n_windows,
        cfg.head.input_feature,
        train_set.features.shape[-1],
    )

    trainer = HeadTrainer(cfg, int(train_set.features.shape[-1]), device)
    loop = LoopState()
    if resume:
        _check_resumed_backbone(run_dir / LAST_FILE, info["backbone_family"], int(train_set.features.shape[-1]))
        loop = load_state(state_path, head=trainer.head, optimizer=trainer.optimizer, sampler=trainer.sampler)
        if loop.step > cfg.train.iterations:
            raise CheckpointError(f"state is at step {loop.step}, beyond train.iterations={cfg.train.iterations}")
    trainer.set_lr(cfg.optim.lr * loop.lr_scale)
    logger = MetricLogger(
        run_dir,
        tensorboard=cfg.output.tensorboard,
        wandb=cfg.output.wandb,
        wandb_mode=cfg.output.wandb_mode,
        wandb_project=cfg.output.wandb_project,
        config=cfg.to_dict(),
        resume_step=loop.step if resume else None,
    )
    _log.info(
        "head: %s, %d trainable parameters, %s; AdamW lr %.3g",
        cfg.head.parameterization,
        trainer.head.n_parameters(),
        device,
        cfg.optim.lr * loop.lr_scale,
    )

    wall_before = loop.wall_s_before

    def wall() -> float:
        return wall_before + time.perf_counter() - t_start

    def checkpoint_and_state() -> None:
        loop.wall_s_before = wall()
        _save_head(run_dir / LAST_FILE, trainer, cfg, info, loop.last_val, loop.step)
        save_state(state_path, head=trainer.head, optimizer=trainer.optimizer, sampler=trainer.sampler, loop=loop)

    step_times: list[float] = []
    status = "completed"
    try:
        with (
            _SigintFlag() as sigint,
            tqdm(
                total=cfg.train.iterations, initial=loop.step, desc="train", unit="step", disable=None, leave=False
            ) as bar,
        ):
            while loop.step < cfg.train.iterations:
                _sync(device)
                t0 = time.perf_counter()
                idx = trainer.sample(train_dev.n_windows).to(device)
                out = trainer.step(train_dev, idx)
                _sync(device)
                step_times.append(time.perf_counter() - t0)
                loop.step += 1
                bar.update(1)
                done = loop.step == cfg.train.iterations
                if loop.step % cfg.train.log_every == 0 or done:
                    _log_train(
                        cfg, trainer, train_dev, idx, out, loop.step, logger, wall(), step_times[-cfg.train.log_every :]
                    )
                if loop.step % cfg.train.val_every == 0 or done:
                    stop = _validate(cfg, trainer, eval_set, loop, logger, run_dir, info, wall())
                    checkpoint_and_state()
                    if stop:
                        status = "early_stopped"
                        break
                if on_step is not None:
                    on_step(loop.step)
                if sigint.raised and not done:
                    status = "interrupted"
                    checkpoint_and_state()
                    break
                if cfg.train.stop_after and len(step_times) >= cfg.train.stop_after and not done:
                    status = "paused"
                    checkpoint_and_state()
                    break
    finally:
        speed = _speed_report(cfg, info, step_times, device)
        if speed is not None:
            logger.log(
                loop.step,
                "speed",
                {
                    "time/head_step_ms": 1e3 * speed.head_step_s,
                    "time/backbone_window_ms": 1e3 * speed.backbone_window_s,
                    "time/backbone_over_head": speed.ratio,
                },
                wall(),
            )
        logger.close()
    held_out: dict[str, Any] = {}
    if status in ("completed", "early_stopped") and cfg.train.recalibrate and val_set is not None:
        from vggt_uncertainty_ros.trainer.recalibrate import held_out_evaluation

        held_out = held_out_evaluation(cfg, run_dir, val_set, info.get("test_set"))
    _write_json(
        run_dir / FINAL_FILE,
        {
            "status": status,
            "step": loop.step,
            "best_step": loop.best_step,
            "best_score": loop.best_score,
            "val": loop.last_val,
            **held_out,
        },
    )
    if speed is not None:
        _write_json(run_dir / SPEED_FILE, asdict(speed))
    _log.info(
        "run %s: %s at step %d; best score %.3f at step %d; checkpoints in %s",
        run_dir,
        status,
        loop.step,
        loop.best_score,
        loop.best_step,
        run_dir / "checkpoints",
    )
    return TrainResult(
        run_dir=run_dir,
        status=status,
        step=loop.step,
        val_metrics=dict(loop.last_val),
        best_score=loop.best_score,
        best_step=loop.best_step,
        cache_hits=info["cache_hits"],
        cache_misses=info["cache_misses"],
        speed=speed,
        n_train_windows=train_set.n_windows,
        n_val_windows=eval_set.n_windows,
    )


def _log_train(
    cfg: TrainConfig,
    trainer: HeadTrainer,
    train_set: WindowSet,
    idx: torch.Tensor,
    out: dict[str, Any],
    step: int,
    logger: MetricLogger,
    wall_s: float,
    recent_s: list[float],
) -> None:
    """Log the calibration metrics of the step's batch, the learning rate and timings."""
    metrics = window_metrics(
        cfg.head.parameterization, train_set, idx, out["log_var"], out["log_var_m"], out["loss"].components
    )
    metrics["train/lr"] = trainer.optimizer.param_groups[0]["lr"]
    metrics["time/wall_s"] = wall_s
    metrics["time/head_step_ms"] = 1e3 * float(np.mean(recent_s))
    logger.log(step, "train", metrics, wall_s)


def _validate(
    cfg: TrainConfig,
    trainer: HeadTrainer,
    eval_set: WindowSet,
    loop: LoopState,
    logger: MetricLogger,
    run_dir: Path,
    info: dict[str, Any],
    wall_s: float,
) -> bool:
    """Validate, log, update ``best``, drop the LR / early-stop; returns True to stop."""
    metrics = trainer.evaluate(eval_set)
    score = calibration_score(metrics)
    metrics["calibration/score"] = score
    loop.last_val = metrics
    logger.log(loop.step, "val", metrics, wall_s)
    _log.info(
        "step %d val: nll %.3f, d2 rot %.2f trans %.2f, score %.3f",
        loop.step,
        metrics["loss/pose_uncertainty_nll"],
        metrics[D2_ROT_MEAN],
        metrics[D2_TRANS_MEAN],
        score,
    )
    eligible = loop.step >= selection_start(cfg) or loop.step == cfg.train.iterations
    if eligible and score < loop.best_score:
        loop.best_score, loop.best_step = score, loop.step
        _save_head(run_dir / BEST_FILE, trainer, cfg, info, metrics, loop.step)
    scored = [metrics[k] for k in (D2_ROT_MEAN, D2_TRANS_MEAN) if math.isfinite(metrics[k])]  # NaN: no scored frame
    tol_hit = bool(scored) and all(abs(d2 - D2_TARGET) < cfg.optim.lr_drop_tol for d2 in scored)
    if cfg.optim.lr_drop and tol_hit and loop.lr_drops < cfg.optim.lr_drop_max:
        loop.lr_drops += 1
        loop.lr_scale /= cfg.optim.lr_drop_factor
        trainer.set_lr(cfg.optim.lr * loop.lr_scale)
        _log.info(
            "d² within %.2f of 3: learning rate dropped to %.3g", cfg.optim.lr_drop_tol, cfg.optim.lr * loop.lr_scale
        )
    loop.settled = loop.settled + 1 if eligible and score < cfg.train.early_stop_tol else 0
    if cfg.train.early_stop and loop.settled >= cfg.train.early_stop_patience:
        _log.info("early stop: calibration score < %.2f for %d validations", cfg.train.early_stop_tol, loop.settled)
        return True
    return False


def _save_head(
    path: Path, trainer: HeadTrainer, cfg: TrainConfig, info: dict[str, Any], metrics: dict[str, float], step: int
) -> None:
    clean = {k: float(v) for k, v in metrics.items() if math.isfinite(float(v))}
    clean["step"] = float(step)
    meta = HeadMetadata.for_head(
        trainer.head,
        input_feature=cfg.head.input_feature,
        backbone=info["backbone_identity"],
        backbone_family=info["backbone_family"],
        scale_convention=cfg.head.scale_convention,
        config=cfg.to_dict(),
        metrics=clean,
    )
    save_head(path, trainer.head, meta)


def _speed_report(
    cfg: TrainConfig, info: dict[str, Any], step_times: list[float], device: torch.device
) -> SpeedReport | None:
    if not step_times:
        return None
    timed = step_times[1:] if len(step_times) > 1 else step_times
    head_s = float(np.median(timed))
    report = SpeedReport(
        head_step_s=head_s,
        backbone_window_s=float(info["backbone_window_s"]),
        ratio=float(info["backbone_window_s"]) / head_s,
        batch_size=cfg.train.batch_size,
        window_size=cfg.window.size,
        image_hw=tuple(info["image_hw"]),
        backbone_source=str(info["backbone_source"]),
        device=str(device),
    )
    _log.info(
        "speed: head step %.3f ms on cached features (batch %d x %d frames), backbone %.1f ms per window "
        "(%s, %dx%d, %s) -> a head step is %.0fx cheaper than a backbone window",
        1e3 * report.head_step_s,
        report.batch_size,
        report.window_size,
        1e3 * report.backbone_window_s,
        cfg.backbone.name if cfg.backbone.name == "geometric" else f"{cfg.backbone.name} {cfg.backbone.weights}",
        *report.image_hw,
        report.backbone_source,
        report.ratio,
    )
    return report


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=float, allow_nan=True) + "\n", encoding="utf-8")
    tmp.replace(path)
