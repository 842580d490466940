"""Resumable training state in one safetensors file, without pickle.

Tensors (head weights, AdamW moments, torch RNG states) are safetensors entries; everything
else (step, learning-rate schedule, best score, optimizer hyper-parameters, Python and numpy
RNG states) is JSON in the file's metadata. One file means one atomic ``os.replace``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from vggt_uncertainty_ros.errors import CheckpointError

_log = logging.getLogger(__name__)

STATE_FORMAT_VERSION = 1
_META_KEY = "vggt_uncertainty_train_state"


@dataclass
class LoopState:
    """Scalar bookkeeping of the loop (JSON part of the state file).

    Attributes:
        step: optimizer steps done.
        lr_scale: current multiplier of ``optim.lr`` (drops divide it).
        lr_drops: learning-rate drops done.
        best_score: best validation calibration score so far (lower is better).
        best_step: step of ``best_score`` (-1: none yet).
        settled: consecutive validations with the score below the early-stop tolerance.
        wall_s_before: wall seconds spent by previous invocations of this run.
        last_val: latest validation metrics.
    """

    step: int = 0
    lr_scale: float = 1.0
    lr_drops: int = 0
    best_score: float = float("inf")
    best_step: int = -1
    settled: int = 0
    wall_s_before: float = 0.0
    last_val: dict[str, float] = field(default_factory=dict)


def _python_rng_to_json() -> list[Any]:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _python_rng_from_json(value: list[Any]) -> tuple[Any, ...]:
    version, internal, gauss = value
    return (version, tuple(internal), gauss)


def _numpy_rng_to_json() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"name": name, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)}


def _numpy_rng_from_json(value: dict[str, Any]) -> tuple[Any, ...]:
    keys = np.asarray(value["keys"], dtype=np.uint32)
    return (value["name"], keys, value["pos"], value["has_gauss"], value["cached"])


def save_state(
    path: str | Path,
    *,
    head: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    sampler: torch.Generator,
    loop: LoopState,
) -> Path:
    """Write the full training state atomically to ``path``.

    Args:
        path: destination ``.safetensors`` file.
        head: trained module.
        optimizer: its optimizer (AdamW moments and step counters are saved).
        sampler: generator that draws the training batches.
        loop: scalar loop bookkeeping.

    Raises:
        CheckpointError: the file cannot be written.
    """
    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    for name, value in head.state_dict().items():
        tensors[f"head/{name}"] = value.detach().cpu().contiguous()
    opt = optimizer.state_dict()
    for idx, per_param in opt["state"].items():
        for name, value in per_param.items():
            if not torch.is_tensor(value):
                value = torch.tensor(value)
            tensors[f"optim/{idx}/{name}"] = value.detach().cpu().contiguous()
    tensors["rng/torch"] = torch.get_rng_state()
    tensors["rng/sampler"] = sampler.get_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, st in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda/{i}"] = st
    meta = {
        "format_version": STATE_FORMAT_VERSION,
        "loop": asdict(loop),
        "param_groups": opt["param_groups"],
        "rng_python": _python_rng_to_json(),
        "rng_numpy": _numpy_rng_to_json(),
    }
    try:
        blob = json.dumps(meta)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"training state for {path} is not JSON-serialisable: {err}") from err
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={_META_KEY: blob})
        os.replace(tmp, path)
    except OSError as err:
        raise CheckpointError(f"cannot write training state {path}: {err}") from err
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_state(
    path: str | Path,
    *,
    head: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    sampler: torch.Generator,
) -> LoopState:
    """Restore what :func:`save_state` wrote into ``head``, ``optimizer``, ``sampler`` and the
    global Python / numpy / torch RNGs; returns the loop bookkeeping.

    Raises:
        CheckpointError: missing/corrupt file, other format version, or a state that does not
            fit the head/optimizer.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no training state {path} to resume from")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            raw = (fh.metadata() or {}).get(_META_KEY)
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    except (OSError, ValueError, SafetensorError) as err:
        raise CheckpointError(f"training state {path} is unreadable: {err}") from err
    if raw is None:
        raise CheckpointError(f"{path} is not a training state (no {_META_KEY!r} metadata)")
    meta = json.loads(raw)
    if meta.get("format_version") != STATE_FORMAT_VERSION:
        raise CheckpointError(f"{path}: state format {meta.get('format_version')!r}, expected {STATE_FORMAT_VERSION}")
    head_state = {k.removeprefix("head/"): v for k, v in tensors.items() if k.startswith("head/")}
    device = next(head.parameters()).device
    try:
        head.load_state_dict(head_state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: head weights do not fit the configured head: {err}") from err
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim/"):
            _, idx, name = key.split("/", 2)
            # AdamW keeps `step` on the CPU unless capturable/fused; moments live with the params
            opt_state.setdefault(int(idx), {})[name] = value if name == "step" else value.to(device)
    try:
        optimizer.load_state_dict({"state": opt_state, "param_groups": meta["param_groups"]})
    except (ValueError, KeyError, RuntimeError) as err:
        raise CheckpointError(f"{path}: optimizer state does not fit: {err}") from err
    torch.set_rng_state(tensors["rng/torch"])
    sampler.set_state(tensors["rng/sampler"])
    cuda_states = [tensors[k] for k in sorted(tensors) if k.startswith("rng/cuda/")]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states)
    random.setstate(_python_rng_from_json(meta["rng_python"]))
    np.random.set_state(_numpy_rng_from_json(meta["rng_numpy"]))
    loop = LoopState(**meta["loop"])
    _log.info("restored training state from %s at step %d", path, loop.step)
    return loop
