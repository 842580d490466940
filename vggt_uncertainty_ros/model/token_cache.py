"""Per-frame cache of DINOv2 patch tokens for sliding windows.

DINOv2 sees each frame alone, so its patch tokens depend only on the frame's pixels (and
the weights). A stride-1 window of S frames shares S-1 frames with the previous window;
with this cache only the new frame goes through the 24 DINOv2 blocks (about a quarter of
VGGT's work per frame). Frame ids are the caller's (e.g. ``stamp_ns``); the cache also keys
on the image size, dtype and device and is emptied with :meth:`TokenCache.clear` when the
weights change.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence

import torch

logger = logging.getLogger(__name__)


class TokenCache:
    """LRU cache ``frame id -> [P, C]`` DINOv2 patch tokens, in one preallocated buffer.

    The tokens live in slots of a single ``[max_frames, P, C]`` tensor allocated on first use
    (and again when the image size, dtype or device changes), so a long stream neither grows
    nor fragments host or device memory.

    Args:
        max_frames: Frames kept (least recently used evicted first); keep it >= the window size.
    """

    def __init__(self, max_frames: int = 32) -> None:
        if max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {max_frames}")
        self.max_frames = max_frames
        self._slots: OrderedDict[Hashable, int] = OrderedDict()  # frame id -> slot, LRU first
        self._buffer: torch.Tensor | None = None  # [max_frames, P, C]
        self._shape_key: tuple | None = None
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._slots)

    def clear(self) -> None:
        """Drop every cached frame (call after changing the backbone weights)."""
        self._slots.clear()

    def get_or_compute(
        self,
        frame_ids: Sequence[Hashable],
        images: torch.Tensor,
        compute: Callable[[torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        """Patch tokens of ``S`` frames, computing only the frames not in the cache.

        Args:
            frame_ids: ``S`` ids, one per frame of ``images`` (unique within the call).
            images: ``[S, 3, H, W]`` frames in [0, 1].
            compute: ``[N, 3, H, W] -> [N, P, C]`` (the aggregator's DINOv2 pass).

        Returns:
            ``[S, P, C]`` tokens in frame order.
        """
        if len(frame_ids) != images.shape[0]:
            raise ValueError(f"{len(frame_ids)} frame ids for {images.shape[0]} frames")
        if len(set(frame_ids)) != len(frame_ids):
            raise ValueError(f"frame ids of one call must be unique, got {list(frame_ids)}")
        if len(frame_ids) > self.max_frames:
            raise ValueError(f"{len(frame_ids)} frames do not fit a cache of {self.max_frames}")
        shape_key = (tuple(images.shape[-2:]), images.dtype, str(images.device))
        if shape_key != self._shape_key:
            self._slots.clear()  # another image size, dtype or device: nothing cached applies
            self._buffer = None
            self._shape_key = shape_key
        missing = [i for i, fid in enumerate(frame_ids) if fid not in self._slots]
        self.hits += len(frame_ids) - len(missing)
        self.misses += len(missing)
        for fid in frame_ids:
            if fid in self._slots:
                self._slots.move_to_end(fid)  # the frames of this call are the newest: never evicted below
        if missing:
            if missing == list(range(missing[0], missing[-1] + 1)):
                batch = images[missing[0] : missing[-1] + 1]  # a view: no index tensor
            else:
                batch = images[missing]
            fresh = compute(batch)  # [N, P, C]
            if self._buffer is None or self._buffer.shape[1:] != fresh.shape[1:] or self._buffer.dtype != fresh.dtype:
                self._buffer = fresh.new_empty((self.max_frames, *fresh.shape[1:]))
                self._slots.clear()
            for j, i in enumerate(missing):
                slot = self._free_slot()
                self._buffer[slot].copy_(fresh[j])
                self._slots[frame_ids[i]] = slot
        assert self._buffer is not None
        return torch.stack([self._buffer[self._slots[fid]] for fid in frame_ids])

    def _free_slot(self) -> int:
        """A slot for a new frame: an unused one, else the least recently used frame's.

        The frames of the current call were moved to the recent end, so with at most
        ``max_frames`` frames per call they are never the ones evicted.
        """
        if len(self._slots) < self.max_frames:
            used = set(self._slots.values())
            return next(k for k in range(self.max_frames) if k not in used)
        return self._slots.popitem(last=False)[1]
