"""Device and autocast dtype resolution, shared by the node, the trainer and the evaluator."""

from __future__ import annotations

import logging

import torch

from vggt_uncertainty_ros.errors import ConfigError
from vggt_uncertainty_ros.model.spec import DTYPES

_log = logging.getLogger(__name__)

_TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device: str | torch.device | None = "auto", *, fallback_to_cpu: bool = False) -> torch.device:
    """The torch device to run on.

    Args:
        device: ``"auto"``/None (CUDA when available, else CPU), or any torch device string.
        fallback_to_cpu: when CUDA is requested but unavailable, warn and use the CPU (the
            node) instead of raising (offline tools).

    Raises:
        ConfigError: ``device`` is not a torch device, or CUDA is requested, unavailable and
            ``fallback_to_cpu`` is False.
    """
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ConfigError(f"device {device!r} is not a torch device") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        if not fallback_to_cpu:
            raise ConfigError(f"device {device!r} requested but CUDA is not available")
        _log.warning("device %r requested but CUDA is not available: falling back to cpu (slow)", str(device))
        return torch.device("cpu")
    return dev


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """Autocast dtype for ``device``: ``auto`` is bfloat16 on CUDA and float32 on the CPU.

    Half precision asked for on the CPU runs float32, with a warning.

    Raises:
        ConfigError: ``name`` is not one of :data:`~vggt_uncertainty_ros.model.spec.DTYPES`.
    """
    if name not in DTYPES:
        raise ConfigError(f"dtype {name!r} is not one of {', '.join(DTYPES)}")
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    dtype = _TORCH_DTYPES[name]
    if device.type == "cpu" and dtype is not torch.float32:
        _log.warning("dtype %s is not used on the cpu: running float32", name)
        return torch.float32
    return dtype
