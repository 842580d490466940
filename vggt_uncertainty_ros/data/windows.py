"""The one windowing rule shared by trainer, evaluator and node.

Frames are pushed in stream order. Every ``keyframe_every``-th pushed frame is a keyframe
candidate; a candidate closer than ``min_keyframe_gap_s`` to the previous keyframe is skipped.
A window is ``size`` consecutive keyframes; after a window is emitted the builder keeps its
last ``size - stride`` keyframes, so consecutive windows overlap by ``size - stride`` frames
and window ``k`` starts at keyframe ``k * stride``. Frame 0 of each window is its reference.

Stamps must increase: a duplicated stamp is ignored, a stamp going backwards (a bag loop)
resets the builder before the frame is taken; both are counted in :attr:`WindowBuilder.warnings`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import yaml

from vggt_uncertainty_ros.data.types import WarningCounter
from vggt_uncertainty_ros.errors import ConfigError

__all__ = [
    "NODE_NAME",
    "PARAM_KEYS",
    "Window",
    "WindowBuilder",
    "WindowConfig",
    "iter_windows",
    "load_window_config",
    "window_indices",
]

_log = logging.getLogger(__name__)

T = TypeVar("T")

#: Node name under which ``config/params.yaml`` keeps the window parameters.
NODE_NAME = "vggt_uncertainty_node"
#: ``params.yaml`` key -> :class:`WindowConfig` field.
PARAM_KEYS: dict[str, str] = {
    "window_size": "size",
    "window_stride": "stride",
    "keyframe_every": "keyframe_every",
    "keyframe_min_gap_s": "min_keyframe_gap_s",
}


@dataclass(frozen=True)
class WindowConfig:
    """How frames are grouped into windows.

    Attributes:
        size: Keyframes per window (VGGT's window; 8 in the original analysis), >= 2.
        stride: Keyframes between the starts of consecutive windows, ``1 <= stride <= size``.
        keyframe_every: Take every n-th pushed frame as a keyframe candidate (frame skip), >= 1.
        min_keyframe_gap_s: Minimum time between consecutive keyframes, seconds, >= 0.
    """

    size: int = 8
    stride: int = 4
    keyframe_every: int = 1
    min_keyframe_gap_s: float = 0.0

    def __post_init__(self) -> None:
        if not _is_int(self.size) or self.size < 2:
            raise ConfigError(f"window size must be an integer >= 2, got {self.size!r}")
        if not _is_int(self.stride) or not 1 <= self.stride <= self.size:
            raise ConfigError(f"window stride must be an integer in [1, size={self.size}], got {self.stride!r}")
        if not _is_int(self.keyframe_every) or self.keyframe_every < 1:
            raise ConfigError(f"keyframe_every must be an integer >= 1, got {self.keyframe_every!r}")
        gap = self.min_keyframe_gap_s
        if isinstance(gap, bool) or not isinstance(gap, (int, float)) or not np.isfinite(gap) or gap < 0:
            raise ConfigError(f"min_keyframe_gap_s must be a finite number >= 0, got {gap!r}")

    def require_chainable(self) -> WindowConfig:
        """The node's extra rule: consecutive windows must overlap (``stride < size``).

        The node chains windows through shared frames, so it refuses ``stride == size``; the
        evaluator windows exactly as the node does and applies the same rule.

        Returns:
            ``self``.

        Raises:
            ConfigError: if ``stride >= size``.
        """
        if self.stride >= self.size:
            raise ConfigError(
                f"window_stride ({self.stride}) must be < window_size ({self.size}): "
                "consecutive windows must overlap so ~/pose can chain them"
            )
        return self

    @property
    def overlap(self) -> int:
        """Keyframes shared by consecutive windows (``size - stride``)."""
        return self.size - self.stride


def _is_int(value: Any) -> bool:
    """An integer (numpy integers included), not a bool, not a float or a string."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def load_window_config(params_yaml: str | Path, node_name: str = NODE_NAME) -> WindowConfig:
    """Read the window parameters from the node's ROS 2 parameter file.

    Expects ``<node_name>: ros__parameters: {window_size, window_stride, keyframe_every,
    keyframe_min_gap_s, ...}`` (``/**`` is accepted as the node name); missing keys keep the
    :class:`WindowConfig` defaults, other parameters are ignored. The node's rules apply:
    the values' types and ranges, and ``window_stride < window_size``
    (:meth:`WindowConfig.require_chainable`), so a file the node refuses is refused here too.

    Raises:
        ConfigError: The file is missing, not YAML, lacks the node section, or a value is invalid.
    """
    path = Path(params_yaml)
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ConfigError(f"cannot read window parameters from {path}: {err}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from err
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    section: Any = None
    for key in (node_name, f"/{node_name}", "/**"):
        if isinstance(doc.get(key), dict) and isinstance(doc[key].get("ros__parameters"), dict):
            section = doc[key]["ros__parameters"]
            break
    if section is None:
        raise ConfigError(f"{path}: no '{node_name}: ros__parameters:' section (found keys {sorted(doc)})")
    kwargs = {field_: section[key] for key, field_ in PARAM_KEYS.items() if key in section}
    try:
        return WindowConfig(**kwargs).require_chainable()
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err


@dataclass(frozen=True)
class Window(Generic[T]):
    """``size`` keyframes; ``items[0]`` is the reference frame.

    Attributes:
        items: The pushed items (frames, images, indices, ...), in stream order.
        stamps_ns: ``[size]`` int64 stamps of the items, nanoseconds.
        index: 0-based count of windows emitted since construction or the last reset.
        push_indices: ``[size]`` int64 position of each item in the pushed stream
            (counting every push since construction or the last reset).
    """

    items: tuple[T, ...]
    stamps_ns: np.ndarray
    index: int
    push_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.items)


class WindowBuilder(Generic[T]):
    """Incremental window builder (see the module docstring for the rule)."""

    def __init__(self, cfg: WindowConfig | None = None) -> None:
        self.cfg = cfg or WindowConfig()
        self.warnings = WarningCounter()
        self.reset()

    def reset(self) -> None:
        """Forget all pending keyframes; the next window gets index 0 (warnings are kept)."""
        self._items: list[T] = []
        self._stamps: list[int] = []
        self._push_idx: list[int] = []
        self._n_pushed = 0
        self._last_stamp: int | None = None
        self._last_key_stamp: int | None = None
        self._n_windows = 0

    @property
    def n_pending(self) -> int:
        """Keyframes collected towards the next window."""
        return len(self._items)

    def push(self, item: T, stamp_ns: int) -> Window[T] | None:
        """Offer one frame; returns a window when ``size`` keyframes are collected.

        Args:
            item: Anything (a Frame, an image, an index).
            stamp_ns: The item's stamp, integer nanoseconds.

        Returns:
            The completed :class:`Window`, or ``None``.
        """
        stamp_ns = int(stamp_ns)
        if self._last_stamp is not None:
            if stamp_ns == self._last_stamp:
                self.warnings.add("duplicate_stamps", f"window builder ignored repeated stamp {stamp_ns} ns")
                return None
            if stamp_ns < self._last_stamp:
                self.warnings.add(
                    "stamps_backwards",
                    f"stamp {stamp_ns} ns < previous {self._last_stamp} ns; window builder reset",
                )
                self.reset()
        self._last_stamp = stamp_ns
        push_index = self._n_pushed
        self._n_pushed += 1
        if push_index % self.cfg.keyframe_every:
            return None
        gap_ns = round(self.cfg.min_keyframe_gap_s * 1e9)
        if self._last_key_stamp is not None and stamp_ns - self._last_key_stamp < gap_ns:
            return None
        self._last_key_stamp = stamp_ns
        self._items.append(item)
        self._stamps.append(stamp_ns)
        self._push_idx.append(push_index)
        if len(self._items) < self.cfg.size:
            return None
        window = Window(
            items=tuple(self._items),
            stamps_ns=np.asarray(self._stamps, dtype=np.int64),
            index=self._n_windows,
            push_indices=np.asarray(self._push_idx, dtype=np.int64),
        )
        self._n_windows += 1
        keep = self.cfg.overlap
        self._items = self._items[len(self._items) - keep :] if keep else []
        self._stamps = self._stamps[len(self._stamps) - keep :] if keep else []
        self._push_idx = self._push_idx[len(self._push_idx) - keep :] if keep else []
        return window


def iter_windows(items: Iterable[T], cfg: WindowConfig | None = None, *, stamp_of: Any = None) -> Iterator[Window[T]]:
    """Stream windows over a sequence (e.g. ``reader.frames()``) without holding it all.

    Args:
        items: Items in stream order; each must have a ``stamp_ns`` attribute unless
            ``stamp_of`` is given.
        cfg: Window rule; defaults to :class:`WindowConfig` ().
        stamp_of: Optional ``callable(item) -> stamp_ns``.

    Yields:
        Each completed window; a trailing partial window is dropped.
    """
    builder: WindowBuilder[T] = WindowBuilder(cfg)
    for item in items:
        stamp = stamp_of(item) if stamp_of is not None else item.stamp_ns  # type: ignore[attr-defined]
        window = builder.push(item, stamp)
        if window is not None:
            yield window


def window_indices(stamps_ns: Sequence[int] | np.ndarray, cfg: WindowConfig | None = None) -> list[np.ndarray]:
    """Offline helper: frame indices of every window over a stamp sequence.

    Args:
        stamps_ns: ``[N]`` stamps of the sequence's frames, nanoseconds, in stream order.
        cfg: Window rule.

    Returns:
        One ``[size]`` int64 array of indices into ``stamps_ns`` per window.
    """
    builder: WindowBuilder[int] = WindowBuilder(cfg)
    out = []
    for i, stamp in enumerate(np.asarray(stamps_ns, dtype=np.int64).tolist()):
        window = builder.push(i, stamp)
        if window is not None:
            out.append(np.asarray(window.items, dtype=np.int64))
    return out
