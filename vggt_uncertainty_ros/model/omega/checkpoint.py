"""Load VGGT-Ω weights strictly: the official ``.pt`` files, ``.safetensors``, or Hugging Face.

Sources (``BackboneSpec.weights``):

* ``"tiny"``: the deterministic small model (tests, plumbing);
* a local file: ``.safetensors``, or a PyTorch file read with ``torch.load(weights_only=True)``
  (the official ``vggt_omega_1b_512.pt`` is a plain state_dict; a ``{"model": state_dict}``
  wrapper is accepted too); a directory holding one of :data:`CHECKPOINT_FILES`;
* a Hugging Face id: ``facebook/VGGT-Omega`` (file :data:`DEFAULT_HF_FILE`) or
  ``facebook/VGGT-Omega:vggt_omega_1b_416_reproduce.pt``, downloaded with ``huggingface_hub``
  (the official repository is gated: accept its licence and log in first).

Keys under :data:`DROPPED_PREFIXES` (the dense and text-alignment heads) are dropped; all other
keys must equal our ``aggregator.*`` + ``camera_head.*`` names and shapes exactly (parameters
and buffers). Problems raise :class:`CheckpointError` naming the file and the first offending keys.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from pathlib import Path

import torch

from vggt_uncertainty_ros.errors import CheckpointError
from vggt_uncertainty_ros.model.checkpoint import (
    check_keys,
    compact_matrix_weights,
    hub_client,
    local_checkpoint,
    read_checkpoint,
)
from vggt_uncertainty_ros.model.omega.config import OMEGA_PRESETS, get_omega_config
from vggt_uncertainty_ros.model.omega.model import VGGTOmega

logger = logging.getLogger(__name__)

#: Heads of the official model that we do not implement; their keys are dropped.
DROPPED_PREFIXES = ("dense_head.", "text_alignment_head.")
#: Hugging Face repository of the official checkpoints and its recommended file.
DEFAULT_HF_REPO = "facebook/VGGT-Omega"
DEFAULT_HF_FILE = "vggt_omega_1b_512.pt"
#: File names tried inside a local directory, in order.
CHECKPOINT_FILES = ("model.safetensors", DEFAULT_HF_FILE, "vggt_omega_1b_416_reproduce.pt", "model.pt")

_RESOLUTION_IN_NAME = re.compile(r"vggt_omega_\w*?_(\d{3})(?:_|\.)")
_HF_ID = re.compile(r"^(?P<repo>[\w.-]+/[\w.-]+)(?::(?P<file>[\w./-]+))?$")


def resolve_weights(spec: str | os.PathLike) -> Path:
    """The local file that ``spec`` (file, directory or Hugging Face id) names, downloading it if needed.

    Raises:
        CheckpointError: nothing found, or the download failed.
    """
    local = local_checkpoint(spec, CHECKPOINT_FILES)
    if local is not None:
        return local
    text = str(spec)
    match = _HF_ID.match(text)
    if match is None or text.startswith((".", "/", "~")):
        raise CheckpointError(f"{text}: no such file or directory, and not a Hugging Face id (repo/name[:file])")
    hub = hub_client(text)
    repo, filename = match["repo"], match["file"] or DEFAULT_HF_FILE
    try:
        return Path(hub.hf_hub_download(repo_id=repo, filename=filename))
    except Exception as err:  # noqa: BLE001 - the hub raises many types; all mean "not downloaded"
        raise CheckpointError(
            f"{repo}:{filename}: could not download from Hugging Face ({type(err).__name__}: {err}); "
            f"{DEFAULT_HF_REPO} is gated: accept its licence on the model page and log in (HF_TOKEN)"
        ) from err


def check_omega_keys(path: Path | str, found: dict[str, tuple[int, ...]], expected: dict[str, tuple[int, ...]]) -> None:
    """Raise :class:`CheckpointError` unless ``found`` (minus dropped heads) equals ``expected`` exactly."""
    check_keys(path, found, expected, model="VGGT-Omega", dropped=DROPPED_PREFIXES)


def expected_shapes(config: str) -> dict[str, tuple[int, ...]]:
    """``{key: shape}`` of our model's state_dict for a preset (built on the meta device)."""
    return {k: tuple(v.shape) for k, v in VGGTOmega(config, init="meta").state_dict().items()}


def load_omega_state_dict(path: str | os.PathLike, config: str | None = None) -> tuple[str, dict[str, torch.Tensor]]:
    """Read and validate a VGGT-Ω checkpoint file (no pickle is executed; see ``read_checkpoint``).

    Returns:
        ``(preset name, state_dict)`` without the dropped heads.

    Raises:
        CheckpointError: missing, unreadable, truncated, pickled code, or mismatched names/shapes.
    """
    return read_checkpoint(
        path,
        config,
        presets=OMEGA_PRESETS,
        expected_shapes=expected_shapes,
        model="VGGT-Omega",
        dropped=DROPPED_PREFIXES,
    )


def load_omega(
    spec: str | os.PathLike = "tiny", device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> VGGTOmega:
    """Build a frozen VGGT-Ω in eval mode from ``spec`` (see the module docstring).

    ``dtype`` other than float32 runs the aggregator under autocast (weights stored in that
    dtype on CUDA); the camera head stays float32. The preprocessing resolution
    (``model.config.image_resolution``) is read from an official file name
    (``vggt_omega_1b_416_reproduce.pt`` -> 416), else 512.

    Raises:
        CheckpointError: the weights cannot be found, read or matched.
    """
    device = torch.device(device)
    if str(spec) == "tiny":
        model, source = VGGTOmega("tiny"), "tiny"
    else:
        path = resolve_weights(spec)
        config, state = load_omega_state_dict(path)
        cfg = get_omega_config(config)
        found = _RESOLUTION_IN_NAME.search(path.name)
        if found is not None:
            cfg = dataclasses.replace(cfg, image_resolution=int(found.group(1)))
        model = VGGTOmega(cfg, init="meta")
        model.load_state_dict({k: v.contiguous() for k, v in state.items()}, strict=True, assign=True)
        model.aggregator.reset_constants()
        source = str(path)
    model = model.to(device=device, dtype=torch.float32).eval()
    if dtype != torch.float32:
        model.amp_dtype = dtype
        if device.type == "cuda":  # autocast casts them anyway: store the aggregator's matrices in dtype
            compact_matrix_weights(model.aggregator, dtype)
    for p in model.parameters():
        p.requires_grad_(False)
    logger.info("loaded VGGT-Omega %s (%s) on %s, %s", source, model.config.name, device, dtype)
    return model
