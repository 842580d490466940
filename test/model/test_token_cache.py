"""TokenCache: LRU slots in one preallocated buffer."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from vggt_uncertainty_ros.model import TokenCache


def _tokens(images: torch.Tensor) -> torch.Tensor:
    """A stand-in for DINOv2: [N, 3, H, W] -> [N, 2, 3 * H * W / 2]."""
    return images.flatten(1).unflatten(1, (2, -1)) * 2.0


def test_returns_each_frames_tokens_and_evicts_least_recently_used():
    frames = {i: torch.rand(3, 4, 4, generator=torch.Generator().manual_seed(i)) for i in range(6)}
    cache = TokenCache(max_frames=3)
    calls = []

    def compute(images):
        calls.append(images.shape[0])
        return _tokens(images)

    def get(ids):
        out = cache.get_or_compute(ids, torch.stack([frames[i] for i in ids]), compute)
        assert_close(out, _tokens(torch.stack([frames[i] for i in ids])), rtol=0, atol=0)

    get([1, 2, 3])
    get([3, 4])  # 3 is a hit and becomes the newest; 4 takes the slot of 1 (least recent)
    assert (cache.hits, cache.misses, len(cache)) == (1, 4, 3)
    get([2, 3, 4])  # all cached
    assert cache.hits == 4
    get([1])  # evicted earlier: computed again, evicting 2
    get([3, 4, 1])
    assert (cache.hits, cache.misses, calls) == (7, 5, [3, 1, 1])
    storage = cache._buffer
    get([5, 0])  # slots are reused: the buffer is never reallocated for the same shape
    assert cache._buffer is storage and len(cache) == 3


def test_other_image_size_starts_afresh_and_bad_calls_raise():
    cache = TokenCache(max_frames=2)
    cache.get_or_compute([1, 2], torch.rand(2, 3, 4, 4), _tokens)
    out = cache.get_or_compute([1], torch.rand(1, 3, 6, 6), _tokens)  # same id, other size: recomputed
    assert out.shape == (1, 2, 54) and cache.misses == 3 and len(cache) == 1
    with pytest.raises(ValueError, match="unique"):
        cache.get_or_compute([7, 7], torch.rand(2, 3, 4, 4), _tokens)
    with pytest.raises(ValueError, match="do not fit"):
        cache.get_or_compute([1, 2, 3], torch.rand(3, 3, 4, 4), _tokens)
    with pytest.raises(ValueError, match="frame ids for"):
        cache.get_or_compute([1], torch.rand(2, 3, 4, 4), _tokens)
