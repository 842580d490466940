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
    """LRU cache ``frame id -> [P, C]`` DINOv2 patch tokens.

    Args:
        max_frames: Frames kept (least recently used evicted first); keep it >= the window size.
    """

    def __init__(self, max_frames: int = 32) -> None:
        if max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {max_frames}")
        self.max_frames = max_frames
        self._store: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._store)

    def clear(self) -> None:
        """Drop every cached frame (call after changing the backbone weights)."""
        self._store.clear()

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
        shape_key = (tuple(images.shape[-2:]), images.dtype, str(images.device))
        keys = [(fid, shape_key) for fid in frame_ids]
        missing = [i for i, k in enumerate(keys) if k not in self._store]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if missing:
            if missing == list(range(missing[0], missing[-1] + 1)):
                batch = images[missing[0] : missing[-1] + 1]  # a view: no index tensor
            else:
                batch = images[missing]
            fresh = compute(batch)
            for j, i in enumerate(missing):
                self._store[keys[i]] = fresh[j]
        for k in keys:
            self._store.move_to_end(k)
        result = torch.stack([self._store[k] for k in keys])
        while len(self._store) > self.max_frames:
            self._store.popitem(last=False)
        return result
