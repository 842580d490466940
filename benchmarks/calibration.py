"""Synthetic heteroscedastic benchmark: does a head parameterization learn calibrated σ?

Windows of ``S`` frames get per-frame latents ``z = [u, a, b, c, nuisance…]``: ``u`` is
the window's motion level (a quarter of the windows are near-static), ``a, b, c`` stand
for appearance (texture, blur, …), the nuisance latents affect the features but not the
noise. The features are a fixed random embedding of ``z`` (random Fourier features) plus
isotropic noise (the stand-in for a frozen backbone's 2048-d camera token). Residuals are
drawn from ``N(0, σ(z)²)`` with a known nonlinear ``σ(z)``: rotation σ spans about 0.002–0.06 rad and
translation σ about 0.5–15 cm (below 1 cm for near-static windows, where the
``sqrt_info`` clamp √λ ≤ 100 must bite).

Both parameterizations train with the same budget (AdamW, cosine learning rate, every step
a fresh minibatch of windows, frame 0 masked) and are scored on held-out windows with the
package's calibration metrics, plus the excess NLL over the oracle that knows σ(z).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vggt_uncertainty_ros.calibration import block_metrics
from vggt_uncertainty_ros.head import (
    LOG_VAR_BOUNDS,
    ROT,
    SQRT_INFO_MAX,
    TRANS,
    Parameterization,
    UncertaintyHead,
    pose_uncertainty_loss,
)

_log = logging.getLogger(__name__)

#: File written by :func:`write_json` inside the output directory.
JSON_NAME = "bench_calibration.json"
BLOCKS: dict[str, slice] = {"rot": ROT, "trans": TRANS}
#: Per-axis offsets of log σ (rotation x, y, z, translation x, y, z).
_AXIS_LOG_OFFSET = np.array([0.1, 0.0, -0.1, 0.0, -0.1, 0.1])
#: Motion level ``u`` of near-static windows is drawn from [0, this).
_STATIC_U_MAX = 0.08


@dataclass(frozen=True)
class BenchConfig:
    """Size of the benchmark and the shared training budget.

    Attributes:
        feature_dim: size of the synthetic per-frame feature (2048 like VGGT's camera token).
        hidden: head hidden width.
        window_size: frames per window (frame 0 carries no loss).
        n_test_windows: held-out windows (``(window_size − 1) ×`` this frames are scored).
        static_fraction: fraction of near-static windows (translation σ < 1 cm).
        n_nuisance: latent dimensions that shape the features but not the noise.
        feature_noise: std of the isotropic feature noise (signal std ≈ 1 per dimension).
        sigma_rot_range: (min, max) rotation σ, rad.
        sigma_trans_range: (min, max) translation σ, m.
        steps: optimizer steps for each parameterization.
        batch_windows: windows per minibatch.
        lr: AdamW peak learning rate (cosine decay to ``lr / 20``).
        weight_decay: AdamW weight decay.
        seed: seeds data and initialisation.
    """

    feature_dim: int = 2048
    hidden: int = 1024
    window_size: int = 8
    n_test_windows: int = 4000
    static_fraction: float = 0.25
    n_nuisance: int = 4
    feature_noise: float = 0.1
    sigma_rot_range: tuple[float, float] = (0.002, 0.05)
    sigma_trans_range: tuple[float, float] = (0.005, 0.10)
    steps: int = 1500
    batch_windows: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    input_norm: bool = True

    @classmethod
    def small(cls, **overrides: Any) -> BenchConfig:
        """A seconds-long variant (smaller features and head) with the same data model."""
        values: dict[str, Any] = {
            "feature_dim": 256,
            "hidden": 128,
            "batch_windows": 256,
            "steps": 800,
            "lr": 2e-3,
        }
        values.update(overrides)
        return cls(**values)


@dataclass(frozen=True)
class SyntheticWindows:
    """Windows of the benchmark (torch tensors, CPU).

    Attributes:
        latents: [B, S, k] float32 latents ``z`` (``u, a, b, c``, nuisance).
        residual: [B, S, 6] float32 residuals (rot rad, trans m); frame 0 is zero.
        log_var_true: [B, S, 6] float32 oracle log σ² (rad², m²).
    """

    latents: torch.Tensor
    residual: torch.Tensor
    log_var_true: torch.Tensor

    def __len__(self) -> int:
        return int(self.latents.shape[0])


def true_log_var(z: np.ndarray, cfg: BenchConfig) -> np.ndarray:
    """The oracle log σ² [..., 6] (rot rad², trans m²) of latents ``z`` [..., ≥ 4].

    ``z[..., 0]`` is the window motion level ``u`` in [0, 1]; ``z[..., 1:4]`` are standard
    normal appearance latents ``a, b, c``. Translation σ grows with motion and is
    modulated by ``a`` and ``b``; rotation σ is a nonlinear function of ``a, b`` gated by
    motion; ``c`` shifts the translation-z axis.
    """
    u, a, b, c = z[..., 0], z[..., 1], z[..., 2], z[..., 3]
    g_trans = u * (0.8 + 0.2 * np.tanh(a)) + 0.1 / (1.0 + np.exp(-2.0 * b))
    g_rot = (0.3 + 0.7 * u) / (1.0 + np.exp(-(1.5 * a + np.sin(2.0 * b))))
    lo_r, hi_r = np.log(cfg.sigma_rot_range)
    lo_t, hi_t = np.log(cfg.sigma_trans_range)
    log_sigma = np.empty(z.shape[:-1] + (6,), dtype=np.float64)
    log_sigma[..., ROT] = (lo_r + (hi_r - lo_r) * g_rot)[..., None]
    log_sigma[..., TRANS] = (lo_t + (hi_t - lo_t) * g_trans)[..., None]
    log_sigma += _AXIS_LOG_OFFSET
    log_sigma[..., 5] += 0.05 * np.tanh(c)
    return 2.0 * log_sigma


def make_windows(cfg: BenchConfig, n_windows: int, rng: np.random.Generator) -> SyntheticWindows:
    """Draw ``n_windows`` windows: latents and residuals ~ N(0, σ(z)²).

    Args:
        cfg: benchmark configuration.
        n_windows: number of windows B.
        rng: random generator (consumed).
    """
    s = cfg.window_size
    static = rng.random(n_windows) < cfg.static_fraction
    u_window = np.where(static, rng.uniform(0.0, _STATIC_U_MAX, n_windows), rng.uniform(_STATIC_U_MAX, 1.0, n_windows))
    u = np.clip(u_window[:, None] + rng.normal(0.0, 0.01, (n_windows, s)), 0.0, 1.0)
    other = rng.standard_normal((n_windows, s, 3 + cfg.n_nuisance))
    z = np.concatenate([u[..., None], other], axis=-1)
    log_var = true_log_var(z, cfg)
    residual = np.exp(0.5 * log_var) * rng.standard_normal(log_var.shape)
    residual[:, 0] = 0.0
    return SyntheticWindows(
        latents=torch.from_numpy(z.astype(np.float32)),
        residual=torch.from_numpy(residual.astype(np.float32)),
        log_var_true=torch.from_numpy(log_var.astype(np.float32)),
    )


class FeatureEmbedding:
    """Fixed random map latents [..., k] → features [..., D]: random Fourier features + noise.

    ``f = √2 cos(W z' + b) + noise · ε`` with ``z'`` the standardised latents, ``W`` ~
    N(0, 1/ℓ²) and ``b`` ~ U(0, 2π): a smooth embedding with unit variance per dimension and
    an almost constant norm (the stand-in for a frozen backbone's token); ``ε`` ~ N(0, 1) is
    drawn afresh at every call, like sensor noise.

    Args:
        rng: generator for ``W`` and ``b``.
        n_latent: k.
        feature_dim: D.
        noise: feature noise std.
        length_scale: ℓ, in latent standard deviations.
    """

    def __init__(
        self, rng: np.random.Generator, n_latent: int, feature_dim: int, noise: float, length_scale: float = 1.5
    ) -> None:
        self.weight = torch.from_numpy((rng.standard_normal((feature_dim, n_latent)) / length_scale).astype(np.float32))
        self.phase = torch.from_numpy(rng.uniform(0.0, 2.0 * math.pi, feature_dim).astype(np.float32))
        self.noise = float(noise)

    def __call__(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Features [..., D] (float32) of latents ``z`` [..., k]."""
        z_std = z.clone()
        z_std[..., 0] = (z[..., 0] - 0.5) * math.sqrt(12.0)  # u ~ U(0, 1) to unit variance
        f = math.sqrt(2.0) * torch.cos(z_std @ self.weight.T + self.phase)
        if self.noise > 0:
            f = f + self.noise * torch.randn(f.shape, generator=generator)
        return f


def make_dataset(cfg: BenchConfig) -> tuple[FeatureEmbedding, SyntheticWindows]:
    """The feature embedding and the held-out windows, drawn from ``cfg.seed``.

    Training draws its own windows as it goes (:func:`train_head`), from another stream.
    """
    rng = np.random.default_rng(cfg.seed)
    embedding = FeatureEmbedding(rng, 4 + cfg.n_nuisance, cfg.feature_dim, cfg.feature_noise)
    test = make_windows(cfg, cfg.n_test_windows, rng)
    return embedding, test


def train_head(
    cfg: BenchConfig,
    parameterization: Parameterization | str,
    embedding: FeatureEmbedding,
    progress: Callable[[int, float], None] | None = None,
) -> UncertaintyHead:
    """Train a fresh head with the benchmark's budget.

    Every step draws ``cfg.batch_windows`` new windows (an endless stream, like a long
    recording), so no window is seen twice: the benchmark measures what a parameterization
    can learn, not how well it memorises. A fixed training set seen for several epochs makes
    the head over-confident on held-out windows (d² creeps above the ANEES bound).

    Args:
        cfg: benchmark configuration (steps, batch, lr, weight decay, seed).
        parameterization: ``log_var`` or ``sqrt_info``.
        embedding: latent → feature map.
        progress: optional callback ``(step, loss)`` after each step.

    Returns:
        The trained head in eval mode.
    """
    torch.manual_seed(cfg.seed)
    head = UncertaintyHead(cfg.feature_dim, cfg.hidden, parameterization, input_norm=cfg.input_norm)
    optimizer = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(cfg.steps, 1), eta_min=cfg.lr / 20)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    rng = np.random.default_rng(cfg.seed + 3)  # the training stream, independent of the held-out windows
    head.train()
    for step in range(cfg.steps):
        batch = make_windows(cfg, cfg.batch_windows, rng)
        out = pose_uncertainty_loss(batch.residual, head(embedding(batch.latents, gen)))
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()
        scheduler.step()
        if progress is not None:
            progress(step, float(out.loss.detach()))
    return head.eval()


def _predict(head: UncertaintyHead, features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Predictions for frames 1..S-1 of features [B, S, D]: (log σ² [N, 6], native [N, 6])."""
    with torch.no_grad():
        native = head.forward_native(features[:, 1:]).reshape(-1, 6)
        log_var = head.native_to_log_var(native)
    return log_var.double().numpy(), native.double().numpy()


def evaluate_head(head: UncertaintyHead, data: SyntheticWindows, features: torch.Tensor) -> dict[str, dict[str, Any]]:
    """Score ``head`` on held-out windows (frames 1..S-1), per block.

    Args:
        head: trained head.
        data: held-out windows.
        features: their features [B, S, D].

    Returns:
        ``{"rot"|"trans": {d2_mean, anees_bounds_95, coverage{"68","95","99"}, spearman,
        clamp_hit, excess_nll_per_dof, sigma_min, sigma_max, n}}``; ``clamp_hit`` is the
        fraction of components at a log σ² bound (``log_var``) or at the √λ upper clamp
        (``sqrt_info``); ``excess_nll_per_dof`` is in nats per degree of freedom.
    """
    r = data.residual[:, 1:].reshape(-1, 6).double().numpy()
    lv_true = data.log_var_true[:, 1:].reshape(-1, 6).double().numpy()
    log_var, _ = _predict(head, features)
    result: dict[str, dict[str, Any]] = {}
    for i, (name, sl) in enumerate(BLOCKS.items()):
        var = np.exp(log_var[:, sl])
        if head.parameterization is Parameterization.SQRT_INFO:
            m = block_metrics(r[:, sl], var, sqrt_info_bound=SQRT_INFO_MAX[i])
        else:
            m = block_metrics(r[:, sl], var, log_var_bounds=LOG_VAR_BOUNDS)
        oracle = block_metrics(r[:, sl], np.exp(lv_true[:, sl]))
        result[name] = {
            "d2_mean": float(m.d2_mean),
            "anees_bounds_95": [float(v) for v in m.anees_bounds_95],
            "coverage": {k: float(v) for k, v in m.coverage.items()},
            "spearman": float(m.spearman),
            "clamp_hit": float(m.clamp_hit_low + m.clamp_hit_high),
            "excess_nll_per_dof": float(m.nll_per_dof - oracle.nll_per_dof),
            "sigma_min": float(np.sqrt(var.min())),
            "sigma_max": float(np.sqrt(var.max())),
            "n": int(m.n),
        }
    return result


@dataclass(frozen=True)
class BenchResult:
    """Outcome of :func:`run_bench`.

    Attributes:
        config: the configuration used.
        metrics: ``{parameterization: {block: metrics}}`` (see :func:`evaluate_head`).
        oracle: the oracle's d² and coverage per block (the floor of what is achievable).
        train_seconds: wall time of training per parameterization.
    """

    config: BenchConfig
    metrics: dict[str, dict[str, dict[str, Any]]]
    oracle: dict[str, dict[str, Any]] = field(default_factory=dict)
    train_seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: the metrics at the top level plus ``config``/``oracle``/timings."""
        out: dict[str, Any] = {k: v for k, v in self.metrics.items()}
        out["oracle"] = self.oracle
        out["config"] = asdict(self.config)
        out["train_seconds"] = self.train_seconds
        return out


def run_bench(
    cfg: BenchConfig,
    parameterizations: tuple[str, ...] = ("log_var", "sqrt_info"),
    progress: Callable[[str, int, float], None] | None = None,
) -> BenchResult:
    """Generate the data, train every parameterization with the same budget, evaluate.

    Args:
        cfg: benchmark configuration.
        parameterizations: which head parameterizations to train.
        progress: optional callback ``(parameterization, step, loss)``.
    """
    embedding, test = make_dataset(cfg)
    test_features = embedding(test.latents, torch.Generator().manual_seed(cfg.seed + 2))
    r = test.residual[:, 1:].reshape(-1, 6).double().numpy()
    lv_true = test.log_var_true[:, 1:].reshape(-1, 6).double().numpy()
    oracle: dict[str, dict[str, Any]] = {}
    for name, sl in BLOCKS.items():
        m = block_metrics(r[:, sl], np.exp(lv_true[:, sl]))
        oracle[name] = {"d2_mean": float(m.d2_mean), "coverage": {k: float(v) for k, v in m.coverage.items()}}
    metrics: dict[str, dict[str, dict[str, Any]]] = {}
    seconds: dict[str, float] = {}
    for p in parameterizations:
        t0 = time.perf_counter()
        cb = (lambda step, loss, _p=p: progress(_p, step, loss)) if progress else None
        head = train_head(cfg, p, embedding, cb)
        seconds[p] = time.perf_counter() - t0
        metrics[Parameterization(p).value] = evaluate_head(head, test, test_features)
        _log.info("%s trained in %.1f s", p, seconds[p])
    return BenchResult(config=cfg, metrics=metrics, oracle=oracle, train_seconds=seconds)


def log_var_targets_met(block: dict[str, Any]) -> dict[str, bool]:
    """The benchmark's targets for one block of a ``log_var`` head.

    d² inside the ANEES 95 % bounds, coverage within 2 points of nominal at 68/95/99 %,
    no clamp hit, excess NLL ≤ 0.05 nats/DOF.
    """
    lo, hi = block["anees_bounds_95"]
    return {
        "d2_in_bounds": lo <= block["d2_mean"] <= hi,
        "coverage_within_2pt": all(abs(block["coverage"][k] - int(k) / 100.0) <= 0.02 for k in ("68", "95", "99")),
        "no_clamp_hit": block["clamp_hit"] == 0.0,
        "excess_nll_le_0.05": block["excess_nll_per_dof"] <= 0.05,
    }


def format_report(result: BenchResult) -> str:
    """Human-readable table of :class:`BenchResult` (one row per parameterization and block)."""
    header = (
        f"{'param':<10}{'block':<6}{'d2':>7}{'ANEES 95% bounds':>18}{'cov68':>7}{'cov95':>7}{'cov99':>7}"
        f"{'spearman':>9}{'clamp':>7}{'xsNLL/dof':>10}  sigma range"
    )
    lines = [header, "-" * len(header)]
    for p, blocks in result.metrics.items():
        for b, m in blocks.items():
            lo, hi = m["anees_bounds_95"]
            cov = m["coverage"]
            lines.append(
                f"{p:<10}{b:<6}{m['d2_mean']:7.3f}{f'[{lo:.3f}, {hi:.3f}]':>18}"
                f"{cov['68']:7.3f}{cov['95']:7.3f}{cov['99']:7.3f}{m['spearman']:9.3f}"
                f"{m['clamp_hit']:7.3f}{m['excess_nll_per_dof']:10.4f}  "
                f"{m['sigma_min']:.4f}..{m['sigma_max']:.4f}"
            )
    for b, m in result.oracle.items():
        cov = m["coverage"]
        lines.append(f"{'oracle':<10}{b:<6}{m['d2_mean']:7.3f}{'':>18}{cov['68']:7.3f}{cov['95']:7.3f}{cov['99']:7.3f}")
    if "log_var" in result.metrics:
        for b, m in result.metrics["log_var"].items():
            met = log_var_targets_met(m)
            status = "all met" if all(met.values()) else "MISSED: " + ", ".join(k for k, v in met.items() if not v)
            lines.append(f"log_var targets ({b}): {status}")
    lines.append("train seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in result.train_seconds.items()))
    return "\n".join(lines)


def write_json(result: BenchResult, out_dir: str | os.PathLike[str]) -> Path:
    """Write ``out_dir/bench_calibration.json`` atomically; returns its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / JSON_NAME
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result.to_dict(), indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


__all__ = [
    "JSON_NAME",
    "BenchConfig",
    "BenchResult",
    "FeatureEmbedding",
    "SyntheticWindows",
    "evaluate_head",
    "format_report",
    "log_var_targets_met",
    "make_dataset",
    "make_windows",
    "run_bench",
    "train_head",
    "true_log_var",
    "write_json",
]
