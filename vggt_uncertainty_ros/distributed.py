"""torch.distributed helpers shared by the cache builder and the batch evaluator.

A command started by ``torchrun`` (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT`` in the environment) joins the process group here; the same command started
plainly runs as a world of one without touching torch.distributed. CUDA devices use NCCL
(one GPU per local rank), the CPU uses gloo.

Work is split by a deterministic owner rule (:func:`owner`), so every rank knows, without
talking to the others, which items are its own; results go to per-item files written
atomically (:func:`atomic_write`), which is what lets an interrupted run resume by skipping
finished items. Only barriers cross processes.

This module sits at the ``online`` layer: it may import ``model``/``data``, never the
trainer or the evaluator.
"""

from __future__ import annotations

import datetime
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from vggt_uncertainty_ros.errors import ConfigError

__all__ = ["DistContext", "atomic_write", "barrier", "init_distributed", "owner", "shutdown"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in the job.

    Attributes:
        rank: global rank, ``0 … world_size-1``.
        world_size: number of processes (1 when not launched by torchrun).
        local_rank: rank on this node (selects the GPU).
        device: torch device this rank computes on.
        backend: ``nccl``, ``gloo``, or ``""`` for a world of one without a process group.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str = ""

    @property
    def is_main(self) -> bool:
        """True on rank 0 (the rank that merges and writes shared files)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when a process group is active."""
        return bool(self.backend)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as err:
        raise ConfigError(f"environment variable {name}={raw!r} is not an integer") from err


#: how long a collective waits for the slowest rank: ranks finish their shards at different
#: times, and torch's defaults (10 to 30 min) are shorter than an uneven cache build.
DEFAULT_TIMEOUT_S = 6 * 3600.0


def init_distributed(device: torch.device | str = "cpu", timeout_s: float = DEFAULT_TIMEOUT_S) -> DistContext:
    """Join the torchrun job described by the environment, or return a world of one.

    Args:
        device: the device the caller would use alone. A CUDA device becomes
            ``cuda:LOCAL_RANK`` under torchrun and selects NCCL; anything else uses gloo.
        timeout_s: longest wait of a barrier or collective for the other ranks, seconds.

    Raises:
        ConfigError: the environment is inconsistent (rank outside the world, more local ranks
            than GPUs).
    """
    device = torch.device(device)
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local = _env_int("LOCAL_RANK", 0)
    if world <= 1:
        return DistContext(device=device)
    if not 0 <= rank < world:
        raise ConfigError(f"RANK={rank} is outside WORLD_SIZE={world}")
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK={local} but only {torch.cuda.device_count()} CUDA device(s) are visible")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(
            backend=backend, rank=rank, world_size=world, timeout=datetime.timedelta(seconds=timeout_s)
        )
    _log.info("rank %d/%d (local %d) on %s, backend %s", rank, world, local, device, backend)
    return DistContext(rank=rank, world_size=world, local_rank=local, device=device, backend=backend)


def shutdown(ctx: DistContext) -> None:
    """Leave the process group (no-op for a world of one)."""
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    """Wait until every rank gets here (no-op for a world of one)."""
    if not ctx.distributed:
        return
    if ctx.backend == "nccl":
        dist.barrier(device_ids=[ctx.device.index or 0])
    else:
        dist.barrier()


def all_ok(ctx: DistContext, ok: bool) -> bool:
    """True when ``ok`` holds on every rank (a collective: every rank must call it)."""
    if not ctx.distributed:
        return ok
    flag = torch.tensor([0 if ok else 1], dtype=torch.int64, device=ctx.device)
    dist.all_reduce(flag, op=dist.ReduceOp.SUM)
    return int(flag.item()) == 0


def owner(item: int, world_size: int, offset: int = 0) -> int:
    """Rank that owns work item ``item``: round-robin ``(item + offset) mod world_size``.

    Deterministic and communication-free; ``offset`` (e.g. a sequence index) staggers
    independent lists so their first items do not all land on rank 0.
    """
    if world_size < 1:
        raise ConfigError(f"world size must be >= 1, got {world_size}")
    return (int(item) + int(offset)) % int(world_size)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Write ``path`` through ``write(tmp)`` on a temporary file in the same folder, then rename.

    A reader (or a resumed run) sees either no file or the complete file, never a partial one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
