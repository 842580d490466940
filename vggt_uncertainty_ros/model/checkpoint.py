"""Load the official VGGT checkpoint (or a synthetic one with the same names) strictly.

Accepted sources: ``"tiny"`` (deterministic small backbone), a local ``model.safetensors``
or ``model.pt`` (a directory holding one works too), or a Hugging Face model id such as
``"facebook/VGGT-1B"`` (downloaded with ``huggingface_hub``). The official file also holds
the point, depth and track heads; their keys are dropped, everything else must match our
model's names and shapes exactly. Problems raise :class:`CheckpointError` naming the file
and the first offending keys.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import struct
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from vggt_uncertainty_ros.errors import CheckpointError
from vggt_uncertainty_ros.model.config import PRESETS
from vggt_uncertainty_ros.model.vggt import VGGT

logger = logging.getLogger(__name__)

#: Top-level modules of the official checkpoint that we do not implement.
DROPPED_PREFIXES = ("point_head.", "depth_head.", "track_head.")
#: File names tried inside a directory or Hugging Face repository, in order.
CHECKPOINT_FILES = ("model.safetensors", "model.pt")
#: How many offending keys an error message lists.
MAX_LISTED = 5

_HF_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
_SAFETENSORS_DTYPES = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "I32": 4, "U8": 1, "I8": 1, "BOOL": 1}


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:MAX_LISTED])
    more = f" (+{len(keys) - MAX_LISTED} more)" if len(keys) > MAX_LISTED else ""
    return shown + more


def local_checkpoint(spec: str | os.PathLike, names: tuple[str, ...]) -> Path | None:
    """The file ``spec`` names locally: the file itself, or the first of ``names`` in a directory.

    Returns:
        The path, or None when ``spec`` is neither a file nor a directory.

    Raises:
        CheckpointError: a directory that holds none of ``names``.
    """
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        for name in names:
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"{path}: directory holds none of {', '.join(names)}")
    return None


def hub_client(what: str):  # noqa: ANN201 - the huggingface_hub module
    """``huggingface_hub``, imported on first use: only a Hugging Face id needs it (the node
    starts on a robot without it); a clear error when it is not installed."""
    try:
        import huggingface_hub  # lazy: see the docstring
    except ImportError as err:
        raise CheckpointError(f"{what}: a Hugging Face id needs huggingface_hub (pip install huggingface_hub)") from err
    return huggingface_hub


def _resolve(spec: str | os.PathLike) -> Path:
    """Local file for ``spec`` (a file, a directory or a Hugging Face id)."""
    local = local_checkpoint(spec, CHECKPOINT_FILES)
    if local is not None:
        return local
    text = str(spec)
    if _HF_ID.match(text) and not text.startswith((".", "/")):
        hub = hub_client(text)
        errors = []
        for name in CHECKPOINT_FILES:
            try:
                return Path(hub.hf_hub_download(repo_id=text, filename=name))
            except Exception as err:  # noqa: BLE001 - hub raises many types; reported below
                errors.append(f"{name}: {type(err).__name__}: {err}")
        raise CheckpointError(f"{text}: could not download a checkpoint from Hugging Face ({'; '.join(errors)})")
    raise CheckpointError(f"{text}: no such file or directory, and not a Hugging Face model id")


def _safetensors_header(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """Names, shapes and dtypes from a safetensors header, checking that all data is present."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path}: truncated safetensors file ({size} bytes, no header)")
        (n,) = struct.unpack("<Q", head)
        if 8 + n > size:
            raise CheckpointError(f"{path}: truncated safetensors file (header of {n} bytes, file of {size})")
        try:
            header = json.loads(fh.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise CheckpointError(f"{path}: corrupt safetensors header: {err}") from err
    header.pop("__metadata__", None)
    data_size = size - 8 - n
    cut = sorted(
        (info["data_offsets"][1], name) for name, info in header.items() if info["data_offsets"][1] > data_size
    )
    if cut:
        names = [name for _, name in cut]
        raise CheckpointError(
            f"{path}: truncated safetensors file: {len(names)} tensors extend past the end "
            f"({data_size} data bytes), first: {_listing(names)}"
        )
    return {name: (tuple(info["shape"]), info["dtype"]) for name, info in header.items()}


def _read_safetensors(path: Path, keys: list[str]) -> dict[str, torch.Tensor]:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            return {k: fh.get_tensor(k) for k in keys}
    except SafetensorError as err:
        raise CheckpointError(f"{path}: cannot read safetensors file: {err}") from err


def _read_torch(path: Path) -> dict[str, torch.Tensor]:
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as err:
            if "mmap" not in str(err):
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as err:
        raise CheckpointError(f"{path}: cannot read PyTorch checkpoint (truncated or corrupt?): {err}") from err
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: not a state_dict of tensors (got {type(obj).__name__})")
    return obj


def check_keys(
    path: Path | str,
    found: dict[str, tuple[int, ...]],
    expected: dict[str, tuple[int, ...]],
    *,
    model: str = "VGGT",
    dropped: tuple[str, ...] = DROPPED_PREFIXES,
) -> None:
    """Raise :class:`CheckpointError` unless ``found`` has exactly ``expected``'s names and shapes.

    Keys of the heads we do not build (``dropped`` prefixes) in ``found`` are ignored; the error
    names ``path``, ``model`` and the first offending keys.
    """
    kept = {k: v for k, v in found.items() if not k.startswith(dropped)}
    missing = [k for k in expected if k not in kept]
    unexpected = [k for k in kept if k not in expected]
    wrong = [
        f"{k} {tuple(kept[k])} != {tuple(expected[k])}"
        for k in expected
        if k in kept and tuple(kept[k]) != tuple(expected[k])
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {_listing(unexpected)}")
    if wrong:
        problems.append(f"{len(wrong)} shape mismatches: {_listing(wrong)}")
    if problems:
        raise CheckpointError(
            f"{path}: checkpoint does not match the {model} aggregator + camera head: " + "; ".join(problems)
        )


def _expected_shapes(config: str) -> dict[str, tuple[int, ...]]:
    model = VGGT(config, init="meta")
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _infer_config(found: dict[str, tuple[int, ...]], presets: Mapping[str, Any]) -> str:
    """The preset whose width matches ``found`` (by ``aggregator.camera_token``); ``full`` otherwise.

    Only the width is used, so that a damaged file is compared against the right preset
    and the error lists the keys that are actually wrong.
    """
    shape = found.get("aggregator.camera_token")
    for name, cfg in presets.items():
        if shape is not None and tuple(shape) == (1, 2, 1, cfg.embed_dim):
            return name
    return "full"


def read_checkpoint(
    path: str | os.PathLike,
    config: str | None,
    *,
    presets: Mapping[str, Any],
    expected_shapes: Callable[[str], dict[str, tuple[int, ...]]],
    model: str,
    dropped: tuple[str, ...],
) -> tuple[str, dict[str, torch.Tensor]]:
    """Read and validate a camera-network checkpoint (VGGT or VGGT-Ω); no pickle is executed.

    Args:
        path: ``.safetensors`` file, or a PyTorch file read with ``torch.load(weights_only=True)``.
        config: preset the file must match; inferred from the names and shapes when ``None``.
        presets: the family's presets (``name -> config`` with ``embed_dim``).
        expected_shapes: ``preset -> {key: shape}`` of our model.
        model: the family's name, for errors and logs.
        dropped: key prefixes of heads we do not build, removed before the strict check.

    Returns:
        ``(preset name, state_dict)`` with the dropped heads' keys removed.

    Raises:
        CheckpointError: missing, unreadable, truncated or mismatched file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    is_safetensors = path.suffix == ".safetensors"
    if not is_safetensors:
        with path.open("rb") as fh:
            magic = fh.read(9)
        is_safetensors = len(magic) >= 9 and magic[8:9] == b"{"
    if is_safetensors:
        found = {k: shape for k, (shape, _) in _safetensors_header(path).items()}
    else:
        tensors = _read_torch(path)
        found = {k: tuple(v.shape) for k, v in tensors.items()}
    config = config or _infer_config(found, presets)
    expected = expected_shapes(config)
    check_keys(path, found, expected, model=model, dropped=dropped)
    if is_safetensors:
        tensors = _read_safetensors(path, list(expected))
    state = {k: tensors[k] for k in expected}
    logger.info("read %d %s tensors (%s config) from %s", len(state), model, config, path)
    return config, state


def load_vggt_state_dict(path: str | os.PathLike, config: str | None = None) -> tuple[str, dict[str, torch.Tensor]]:
    """Read and validate a VGGT checkpoint file (:func:`read_checkpoint`)."""
    return read_checkpoint(
        path, config, presets=PRESETS, expected_shapes=_expected_shapes, model="VGGT", dropped=DROPPED_PREFIXES
    )


def compact_matrix_weights(module: nn.Module, dtype: torch.dtype) -> None:
    """Store the matrix weights (Linear, Conv2d) of ``module`` in ``dtype``, in place.

    For a module that runs under autocast with ``dtype``: autocast casts those weights to
    ``dtype`` anyway, so outputs are unchanged while weight memory and per-call casts are
    saved. Norms, biases and LayerScales stay float32.
    """
    for sub in module.modules():
        if isinstance(sub, (nn.Linear, nn.Conv2d)):
            sub.weight.data = sub.weight.data.to(dtype)


def load_backbone(
    spec: str | os.PathLike = "tiny",
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> VGGT:
    """Build a VGGT backbone in eval mode.

    Args:
        spec: ``"tiny"`` (deterministic small model, identical everywhere), a local
            checkpoint file/directory, or a Hugging Face id (e.g. ``"facebook/VGGT-1B"``).
        device: Target device.
        dtype: ``torch.float32`` for full precision; ``torch.bfloat16`` (or float16) runs
            the aggregator under autocast as the official model does on GPUs (on CUDA its
            matrix weights are also stored in that dtype to save memory; the camera head
            stays float32).

    Raises:
        CheckpointError: The checkpoint is missing, unreadable, truncated or mismatched.
    """
    device = torch.device(device)
    if str(spec) == "tiny":
        model = VGGT("tiny")
        source = "tiny"
    else:
        path = _resolve(spec)
        config, state = load_vggt_state_dict(path)
        model = VGGT(config, init="meta")
        # contiguous(): a stored broadcast view must not become a stride-0 parameter
        model.load_state_dict({k: v.contiguous() for k, v in state.items()}, strict=True, assign=True)
        model.aggregator.reset_buffers()
        source = str(path)
    model = model.to(device=device, dtype=torch.float32).eval()
    model.aggregator.reset_buffers()
    if dtype != torch.float32:
        model.amp_dtype = dtype
        if device.type == "cuda":
            compact_matrix_weights(model.aggregator, dtype)
    for p in model.parameters():
        p.requires_grad_(False)
    logger.info("loaded VGGT backbone %s (%s) on %s, %s", source, model.config.name, device, dtype)
    return model
