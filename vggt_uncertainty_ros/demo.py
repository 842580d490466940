"""The newcomer's demo: the whole loop on an embedded default, in one call.

0. **calibration on unseen sequences with the geometric backbone** (CPU, OpenCV): synthesise
   several training, validation and test sequences (each its own scene and seed), train a
   ``relative`` head on the training ones, recalibrate it on the validation ones (robust
   ``quantile`` fit) and print the calibration table of every test sequence, with block-bootstrap
   intervals (``trainer.unseen``, the protocol of ``bench-unseen``). This is the product's
   measured result;
1. synthesise two TUM-style sequences as ROS 2 bags (one to train, one to evaluate);
2. train the uncertainty head on the first (feature cache, a few hundred steps) and draw charts;
3. start the real node (``python -m vggt_uncertainty_ros.ros.node``, real rclpy and DDS on
   localhost) with that head;
4. replay the second bag to the node at its recorded rate and record ``~/relative_pose`` and
   ``~/pose`` into a ROS 2 bag;
5. evaluate that recording (``--poses-topic`` mode) against the sequence's ground truth and
   print the calibration, trajectory and pose-graph tables (``report.md`` keeps the plots).

Steps 1-5 run the node as users run it, by default on the same CPU ``geometric`` backbone
(``DemoConfig.backbone``). With ``tiny`` they are plumbing only (the tiny, randomly initialised
VGGT outputs the same pose for every frame); with ``VGGT_WEIGHTS=<path or HF id>`` (and a GPU)
the same loop runs the real model.

rclpy is imported only inside step 4 (``vggt_uncertainty_ros.ros.replay``), torch, evo and
GTSAM only inside the steps that use them, so this module imports without ROS or torch.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from vggt_uncertainty_ros.calibration.bootstrap import format_summary_table
from vggt_uncertainty_ros.data import DEFAULT_IMAGE_TOPIC as IMAGE_TOPIC
from vggt_uncertainty_ros.data.layout import RGB_INFO_TOPIC
from vggt_uncertainty_ros.data.synth import generate
from vggt_uncertainty_ros.errors import VggtUncertaintyError

_log = logging.getLogger(__name__)

NODE_NAME = "vggt_uncertainty_node"
POSE_TYPE = "geometry_msgs/msg/PoseWithCovarianceStamped"
REPO_CONFIG = Path(__file__).resolve().parents[1] / "config"


#: Step 0's sizes (``trainer.unseen.UnseenConfig`` fields): 4 training, 3 validation and 2 test
#: sequences of 150 frames with the geometric backbone; a few minutes on 2 cores.
DEMO_UNSEEN: dict[str, Any] = {"n_train": 4, "n_val": 3, "n_test": 2, "n_frames": 150, "steps": 800, "n_boot": 500}


class DemoError(VggtUncertaintyError):
    """A demo step failed (the node did not start, produced nothing, ...)."""


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo. The defaults run in a few minutes on 2 CPU cores.

    Attributes:
        out_dir: everything the demo writes goes here (recreated).
        backbone: of steps 1-5: ``geometric`` (CPU, no weights), ``tiny`` (random VGGT,
            plumbing only) or official VGGT weights (local file or Hugging Face id).
        device: ``cpu`` or ``cuda`` (node and trainer).
        train_frames: frames of the training sequence.
        eval_frames: frames of the evaluated sequence.
        fps: frame rate of both sequences; the node must keep up with it in real time
            (``window_stride`` new frames per window).
        width: rendered image width (px); VGGT's preprocessing resizes to 518 anyway.
        height: rendered image height (px).
        window_size: frames per window (node, trainer and evaluator share it).
        window_stride: frames between consecutive windows.
        iterations: head training steps.
        seed: seed of the training sequence (the evaluated one uses ``seed + 100``).
        domain_id: ROS domain id of the node and the replay (``None``: derived from the pid).
        unseen: sizes of step 0 (``trainer.unseen.UnseenConfig`` fields: sequences per split,
            frames, training steps, ...); default :data:`DEMO_UNSEEN`.
        unseen_workers: processes synthesising and scoring step 0's sequences (2 cores: 2).
    """

    out_dir: Path = Path("demo_out")
    backbone: str = "geometric"
    device: str = "cpu"
    train_frames: int = 120
    eval_frames: int = 64
    fps: float = 3.0
    width: int = 320
    height: int = 240
    window_size: int = 8
    window_stride: int = 4
    iterations: int = 300
    seed: int = 7
    domain_id: int | None = None
    unseen: dict[str, Any] = field(default_factory=lambda: dict(DEMO_UNSEEN))
    unseen_workers: int = 2


@dataclass
class DemoResult:
    """Paths and headline numbers of a demo run."""

    out_dir: Path
    head: Path | None = None
    charts: list[Path] = field(default_factory=list)
    recording: Path | None = None
    recorded: dict[str, int] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    report_md: Path | None = None
    unseen: dict[str, Any] = field(default_factory=dict)
    unseen_table: str = ""


def unseen_calibration(cfg: DemoConfig) -> tuple[dict[str, Any], str]:
    """Step 0: the unseen-sequence protocol with the geometric backbone; returns (doc, table)."""
    from vggt_uncertainty_ros.trainer.unseen import UnseenConfig, jsonable, run_unseen  # torch: only when run

    ucfg = UnseenConfig(**cfg.unseen)
    doc, details = run_unseen(
        ucfg, cfg.out_dir / "unseen", progress=lambda text: _log.info("  %s", text), workers=cfg.unseen_workers
    )
    doc = jsonable(doc)
    (cfg.out_dir / "unseen" / "unseen.json").write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")
    f = doc["recalibration"]["factors"]
    table = "\n".join(
        [
            format_summary_table(
                {"sequences": doc["sequences"], "pooled": doc["pooled"]},
                "Calibration on unseen test sequences (geometric backbone, after recalibration):",
            ),
            f"recalibration factors fitted on {ucfg.n_val} validation sequences: rot x{f['rot']:.3g}, "
            f"trans x{f['trans']:.3g}; head selected at step {details['selected_step']} of {ucfg.steps}",
            "pose graph ATE RMSE (m), uniform / constant_tuned / predicted: "
            + "; ".join(
                f"{n} " + "/".join("n/a" if v is None else f"{v:.3f}" for v in p.values())
                for n, p in doc["pgo"].items()
            ),
        ]
    )
    return doc, table


def _step(n: int, text: str) -> None:
    _log.info("[%d/5] %s", n, text)


@dataclass(frozen=True)
class _Sequence:
    bag: Path  #: ROS 2 bag (TUM topics, ground truth on /tf)
    groundtruth: Path  #: the same ground truth as a TUM file (T_world_cam, metres)


def synthesise(cfg: DemoConfig) -> tuple[_Sequence, _Sequence]:
    """Step 1: the training and the evaluation sequence (ROS 2 bag + TUM ground truth)."""
    sequences = []
    for name, seed, n in (("train", cfg.seed, cfg.train_frames), ("eval", cfg.seed + 100, cfg.eval_frames)):
        with tqdm(total=n, desc=f"synth {name}", unit="frame") as bar:
            written = generate(
                cfg.out_dir / "data" / name,
                seed=seed,
                n_frames=n,
                formats=("ros2", "tum"),
                width=cfg.width,
                height=cfg.height,
                fps=cfg.fps,
                progress=lambda k, bar=bar: bar.update(k - bar.n),
            )
        sequences.append(_Sequence(written.paths["ros2"], written.paths["tum"] / "groundtruth.txt"))
    return sequences[0], sequences[1]


def train_head(cfg: DemoConfig, seq: _Sequence) -> tuple[Path, list[Path]]:
    """Step 2: train the head on the training bag and draw its charts.

    The demo has one training sequence, so, as in the original analysis, validation (and the
    choice of the ``best`` checkpoint) uses the training windows; the trainer logs a warning.
    """
    # lazy: this module imports without torch, evo or GTSAM (test_layering); each step loads its stack
    from vggt_uncertainty_ros.trainer import load_config, train
    from vggt_uncertainty_ros.trainer.charts import draw_charts
    from vggt_uncertainty_ros.trainer.loop import BEST_FILE

    run_dir = cfg.out_dir / "train_run"
    bag = str(seq.bag)
    train_cfg = load_config(
        REPO_CONFIG / "train.yaml",
        {
            "data.train": [{"path": bag}],
            "data.val": [],  # as in the original analysis, validation reuses the training windows
            "data.val_count": 0,
            "data.synthetic.train": 0,
            "data.synthetic.val": 0,
            "window.size": cfg.window_size,
            "window.stride": cfg.window_stride,
            **_backbone_overrides(cfg),
            **_head_overrides(cfg),
            "backbone.device": cfg.device,
            "backbone.dtype": "bfloat16" if cfg.device.startswith("cuda") else "float32",
            "optim.lr": 1.0e-3,
            "train.iterations": cfg.iterations,
            "train.val_every": max(cfg.iterations // 6, 1),
            "train.log_every": max(cfg.iterations // 30, 1),
            "output.run_dir": str(run_dir),
            "output.cache_dir": str(cfg.out_dir / "cache"),
        },
    )
    with tqdm(total=cfg.iterations, desc="train head", unit="step") as bar:
        train(train_cfg, on_step=lambda k: bar.update(k - bar.n))
    charts = draw_charts(run_dir, run_dir / "charts")
    return run_dir / BEST_FILE, charts


def _backbone_overrides(cfg: DemoConfig) -> dict[str, str]:
    """``backbone.name`` / ``backbone.weights`` of the node loop: ``geometric`` or VGGT with ``cfg.backbone``."""
    if cfg.backbone == "geometric":
        return {"backbone.name": "geometric", "backbone.weights": "tiny"}  # weights do not apply to it
    return {"backbone.name": "vggt", "backbone.weights": cfg.backbone}


def _head_overrides(cfg: DemoConfig) -> dict[str, Any]:
    """The geometric backbone's head: 42 cues need a small MLP, and σ_trans relative to the
    window's own motion (its translation unit is a triangulated baseline, not VGGT's)."""
    if cfg.backbone == "geometric":
        return {"head.hidden": 64, "head.scale_convention": "relative"}
    return {}


def _node_params(cfg: DemoConfig, head: Path, path: Path) -> Path:
    doc = yaml.safe_load((REPO_CONFIG / "params.yaml").read_text())
    section = doc["/**"]["ros__parameters"]
    section.update(
        window_size=cfg.window_size,
        window_stride=cfg.window_stride,
        head_checkpoint=str(head.resolve()),
        image_qos="reliable",
        queue_depth=2,
        publish_relative_pose=True,  # opt-in: the evaluator judges these measurements
        # the geometric backbone takes the camera's K from camera_info (replayed with the images);
        # for VGGT it is the focal-length check on /diagnostics
        use_camera_info=True,
    )
    section["backbone"].update({k.split(".", 1)[1]: v for k, v in _backbone_overrides(cfg).items()}, device=cfg.device)
    path.write_text(yaml.safe_dump(doc))
    return path


def _ros_env(cfg: DemoConfig) -> dict[str, str]:
    domain = cfg.domain_id if cfg.domain_id is not None else 1 + (os.getpid() * 13) % 100
    env = dict(os.environ)
    env.update(
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",  # DDS traffic stays on this machine
        ROS_DOMAIN_ID=str(domain),
        ROS_LOG_DIR=str((cfg.out_dir / "ros_logs").resolve()),
        PYTHONUNBUFFERED="1",
    )
    return env


def run_node_and_record(cfg: DemoConfig, head: Path, seq: _Sequence) -> tuple[Path, dict[str, int]]:
    """Steps 3-4: start the node, replay the evaluation bag at its recorded rate, record the output."""
    env = _ros_env(cfg)
    os.environ.update({k: env[k] for k in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_DOMAIN_ID", "ROS_LOG_DIR")})
    params = _node_params(cfg, head, cfg.out_dir / "node_params.yaml")
    log_path = cfg.out_dir / "node.log"
    cmd = [
        sys.executable,
        "-m",
        "vggt_uncertainty_ros.ros.node",
        "--ros-args",
        "--params-file",
        str(params),
        "-r",
        f"image:={IMAGE_TOPIC}",
        "-r",
        f"camera_info:={RGB_INFO_TOPIC}",
    ]
    _step(3, f"starting the node (domain {env['ROS_DOMAIN_ID']}, log {log_path})")
    with log_path.open("wb") as log:
        node = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        from vggt_uncertainty_ros.ros.replay import replay_and_record  # lazy: rclpy only in this step

        recording = cfg.out_dir / "node_recording"
        relative_topic, pose_topic = f"/{NODE_NAME}/relative_pose", f"/{NODE_NAME}/pose"
        n_windows = max((cfg.eval_frames - cfg.window_size) // cfg.window_stride + 1, 1)
        _step(4, f"replaying {cfg.eval_frames} frames at {cfg.fps:g} Hz to the node and recording its output")
        with tqdm(total=cfg.eval_frames, desc="replay", unit="image") as bar:
            stats = replay_and_record(
                seq.bag,
                IMAGE_TOPIC,
                companions=(RGB_INFO_TOPIC,),
                record={relative_topic: POSE_TYPE, pose_topic: POSE_TYPE},
                out_bag=recording,
                wait_for_subscribers_s=120.0,
                settle_s=30.0,
                until_recorded={relative_topic: n_windows * (cfg.window_size - 1)},
                progress=lambda k: bar.update(k - bar.n),
            )
    finally:
        node.send_signal(signal.SIGINT)
        try:
            code = node.wait(10)
        except subprocess.TimeoutExpired:
            node.kill()
            code = node.wait()
    _log.info("node exited with %s; recorded %s", code, stats.recorded)
    if not stats.recorded.get(relative_topic):
        raise DemoError(f"the node published no relative pose; see {log_path}")
    return recording, stats.recorded


def evaluate_recording(cfg: DemoConfig, recording: Path, seq: _Sequence) -> tuple[dict[str, Any], Path]:
    """Step 5: the evaluator in ``--poses-topic`` mode on the recording."""
    # lazy: this module imports without torch, evo or GTSAM (test_layering)
    from vggt_uncertainty_ros.evaluate import EvalConfig, SourceKind, evaluate

    result = evaluate(
        EvalConfig(
            data=recording,
            gt=seq.groundtruth,
            out_dir=cfg.out_dir / "eval",
            source=SourceKind.POSES_TOPIC,
            poses_topic=f"/{NODE_NAME}/relative_pose",
            scale_mode="per-window-gt",
        ),
        progress=True,
    )
    if not result.ok:
        raise DemoError(f"no window could be evaluated; warnings {result.report['warnings']}")
    return result.report, result.files["report_md"]


def run_demo(cfg: DemoConfig) -> DemoResult:
    """Run the five steps; returns where everything went and the evaluation report."""
    if cfg.out_dir.exists():
        shutil.rmtree(cfg.out_dir)
    cfg.out_dir.mkdir(parents=True)
    res = DemoResult(out_dir=cfg.out_dir)
    t0 = time.monotonic()
    u = cfg.unseen
    _step(
        0,
        f"geometric backbone: {u.get('n_train')} training, {u.get('n_val')} validation, {u.get('n_test')} "
        "test sequences; train, recalibrate, evaluate the unseen ones",
    )
    res.unseen, res.unseen_table = unseen_calibration(cfg)
    print("\n" + res.unseen_table + "\n", flush=True)
    _step(1, f"synthesising two sequences ({cfg.train_frames} + {cfg.eval_frames} frames, {cfg.width}x{cfg.height})")
    train_seq, eval_seq = synthesise(cfg)
    _step(2, f"training the uncertainty head ({cfg.iterations} steps, backbone {cfg.backbone!r})")
    res.head, res.charts = train_head(cfg, train_seq)
    res.recording, res.recorded = run_node_and_record(cfg, res.head, eval_seq)
    _step(5, "evaluating the node's recorded output against ground truth")
    res.report, res.report_md = evaluate_recording(cfg, res.recording, eval_seq)
    _log.info("demo finished in %.0f s", time.monotonic() - t0)
    return res
