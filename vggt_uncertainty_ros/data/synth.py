"""Synthetic TUM-style sequences: the project's own test data.

A closed room of procedurally textured walls, floor and ceiling holding a few textured,
yawed boxes is ray-cast (vectorised numpy, analytic plane/slab intersections) along a smooth
hand-held-like trajectory whose speed varies, with near-static stretches and a small hand
tremor. Everything is a deterministic function of the seed.

World frame: z up, metres (the "motion-capture" frame). Poses are ``T_world_cam`` of the RGB
optical frame (OpenCV axes). Depth is metric z-depth along the optical axis, float32 metres.
Intrinsics follow TUM's ROS default: ``fx = fy = 525 * W / 640``, principal point at
``((W - 1) / 2, (H - 1) / 2)`` in pixel-centre coordinates, no distortion.

Stamps imitate TUM: images at ``fps`` with ~1 ms jitter on a microsecond grid starting near
``1305031102.175304``; motion capture at 100 Hz on a 0.1 ms grid, covering the images.
Depth images share the RGB stamps and are rendered at the RGB pose, i.e. registered to the
RGB image as TUM's are (the bags still label them with TUM's depth frame name).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from vggt_uncertainty_ros.data.writers import Ros1SequenceWriter, Ros2SequenceWriter, TumFolderWriter
from vggt_uncertainty_ros.errors import DataError

__all__ = [
    "DIFFICULTY_COLUMNS",
    "FORMATS",
    "DifficultyPlan",
    "Renderer",
    "Scene",
    "SequenceWriter",
    "SynthPlan",
    "SynthResult",
    "Trajectory",
    "generate",
    "intrinsics_for",
    "make_scene",
    "make_trajectory",
    "plan_difficulty",
    "plan_sequence",
    "read_difficulty",
    "render_sequence_frames",
    "write_difficulty",
]

_log = logging.getLogger(__name__)

#: Output formats: TUM folder, ROS 1 bag, ROS 2 bag (``ros2_storage``), ROS 2 bag in mcap.
FORMATS: tuple[str, ...] = ("tum", "ros1", "ros2", "ros2-mcap")

_TEX = 512  # texture side, texels
_MAX_QUEUED = 64  # pose/image writes waiting for the writer thread (images: ~40 % of them)
_NS = 1_000_000_000


def intrinsics_for(width: int, height: int) -> np.ndarray:
    """TUM-like ``[3, 3]`` camera matrix for an image size (pixels)."""
    f = 525.0 * width / 640.0
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


# --------------------------------------------------------------------------- textures


def _periodic_noise(rng: np.random.Generator, cells: int, channels: int) -> np.ndarray:
    """Periodic bilinear value noise, ``[_TEX, _TEX, channels]`` in [0, 1]."""
    grid = rng.random((cells, cells, channels), dtype=np.float32)
    x = np.arange(_TEX) * cells / _TEX
    i0 = np.floor(x).astype(int)
    i1 = (i0 + 1) % cells
    w = (x - i0).astype(np.float32)[:, None, None]
    rows = grid[i0] * (1 - w) + grid[i1] * w  # [TEX, cells, C]
    w2 = (x - i0).astype(np.float32)[None, :, None]
    return rows[:, i0] * (1 - w2) + rows[:, i1] * w2


def _fbm(rng: np.random.Generator, channels: int, base_cells: int = 4, octaves: int = 5) -> np.ndarray:
    out = np.zeros((_TEX, _TEX, channels), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        out += amp * _periodic_noise(rng, base_cells * 2**o, channels)
        total += amp
        amp *= 0.55
    return out / total


def _stamp_shapes(rng: np.random.Generator, tex: np.ndarray, n: int, max_size: int) -> None:
    """Paint random rectangles, discs and striped panels (posters, tiles) into ``tex`` (wrapping)."""
    for _ in range(n):
        cx, cy = (int(c) for c in rng.integers(0, _TEX, 2))
        sx, sy = (int(c) for c in rng.integers(max_size // 6, max_size, 2))
        colour = rng.random(3)
        kind = rng.integers(0, 3)
        r = max(sx, sy)
        offs = np.arange(-r, r + 1)
        rows, cols = (cy + offs) % _TEX, (cx + offs) % _TEX
        dy, dx = offs[:, None], offs[None, :]
        sub = tex[np.ix_(rows, cols)]
        if kind == 0:
            sub[(np.abs(dx) < sx) & (np.abs(dy) < sy)] = colour
        elif kind == 1:
            sub[dx**2 + dy**2 < sx**2] = colour
        else:
            mask = (np.abs(dx) < sx) & (np.abs(dy) < sy)
            period = int(rng.integers(6, 24))
            stripes = ((dx + dy * rng.choice([-1, 0, 1])) // period) % 2 == 0
            sub[mask & stripes] = colour
            sub[mask & ~stripes] = 1.0 - colour
        tex[np.ix_(rows, cols)] = sub


def _speckle(rng: np.random.Generator, tex: np.ndarray, n: int) -> None:
    """Paint ``n`` small (2-9 texel) random-coloured rectangles and discs: unique corners for feature matchers."""
    half = rng.integers(1, 5, (n, 2))
    centre = rng.integers(5, _TEX - 5, (n, 2))
    colour = rng.random((n, 3)).astype(np.float32)
    disc = rng.random(n) < 0.4
    for (hx, hy), (cx, cy), c, d in zip(half.tolist(), centre.tolist(), colour, disc.tolist()):
        patch = tex[cy - hy : cy + hy + 1, cx - hx : cx + hx + 1]
        if d:
            yy, xx = np.ogrid[-hy : hy + 1, -hx : hx + 1]
            patch[(xx * xx) * hy * hy + (yy * yy) * hx * hx <= hx * hx * hy * hy] = c
        else:
            patch[...] = c


def _make_texture(rng: np.random.Generator, kind: str, detail: np.random.Generator | None = None) -> np.ndarray:
    """Texture of a surface kind; ``detail`` (its own stream) adds small high-contrast marks."""
    base = rng.uniform(0.25, 0.85, 3)
    noise = _fbm(rng, 3)
    if kind == "floor":
        tex = base * (0.6 + 0.5 * noise)
        yy, xx = np.mgrid[0:_TEX, 0:_TEX]
        tile = 64
        checker = ((xx // tile + yy // tile) % 2)[..., None]
        tex = tex * (0.8 + 0.3 * checker)
        grout = ((xx % tile) < 2) | ((yy % tile) < 2)
        tex[grout] = 0.15
    elif kind == "ceiling":
        tex = 0.75 + 0.2 * (noise - 0.5)
        yy, xx = np.mgrid[0:_TEX, 0:_TEX]
        tex[((xx % 128) < 3) | ((yy % 128) < 3)] = 0.4
    elif kind == "wall":
        tex = base * (0.7 + 0.6 * (noise - 0.5))
        _stamp_shapes(rng, tex, n=int(rng.integers(20, 36)), max_size=80)
        tex *= 0.6 + 0.8 * _fbm(rng, 1, base_cells=32, octaves=4)  # fine grain everywhere
    else:  # box
        tex = _fbm(rng, 3, base_cells=8, octaves=4)
        tex = 0.15 + 0.85 * (tex - tex.min()) / max(np.ptp(tex), 1e-6)
        _stamp_shapes(rng, tex, n=int(rng.integers(12, 24)), max_size=60)
        tex *= 0.6 + 0.8 * _fbm(rng, 1, base_cells=32, octaves=4)
    if detail is not None:
        _speckle(detail, tex, n={"wall": 400, "floor": 300, "ceiling": 150}.get(kind, 250))
    return np.clip(tex, 0.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------- scene


@dataclass(frozen=True)
class Scene:
    """A room ``[lo, hi]`` (metres, world z up) with yawed boxes and textures.

    Attributes:
        room_lo: ``[3]`` room minimum corner.
        room_hi: ``[3]`` room maximum corner.
        box_centres: ``[B, 3]`` box centres.
        box_halves: ``[B, 3]`` half extents in the box frame.
        box_yaws: ``[B]`` rotation about world z, radians.
        textures: ``[6 + B, TEX, TEX, 3]`` float32 in [0, 1]: room faces (-x, +x, -y, +y,
            floor, ceiling) then one per box.
        texel_m: ``[6 + B]`` texel size of each texture, metres.
        light: ``[3]`` point light position.
        cam_lo: ``[3]`` lower corner of the region the camera stays in.
        cam_hi: ``[3]`` upper corner of that region.
    """

    room_lo: np.ndarray
    room_hi: np.ndarray
    box_centres: np.ndarray
    box_halves: np.ndarray
    box_yaws: np.ndarray
    textures: np.ndarray
    texel_m: np.ndarray
    light: np.ndarray
    cam_lo: np.ndarray
    cam_hi: np.ndarray


def make_scene(rng: np.random.Generator, n_boxes: int = 5, detail: np.random.Generator | None = None) -> Scene:
    """Random room, boxes outside the camera region, and textures.

    ``detail``: a separate random stream for small high-contrast marks on every texture (so a
    feature matcher finds unique corners at 320x240 too); None leaves them out.
    """
    half = np.array([rng.uniform(2.6, 3.4), rng.uniform(2.1, 2.8)])
    height = rng.uniform(2.5, 3.0)
    room_lo = np.array([-half[0], -half[1], 0.0])
    room_hi = np.array([half[0], half[1], height])
    cam_lo = np.array([-1.0, -0.8, 1.0])
    cam_hi = np.array([1.0, 0.8, 1.7])
    centres: list[np.ndarray] = []
    halves: list[np.ndarray] = []
    yaws: list[float] = []
    keep_out_lo, keep_out_hi = cam_lo[:2] - 0.6, cam_hi[:2] + 0.6
    while len(centres) < n_boxes:
        h = np.array([rng.uniform(0.15, 0.5), rng.uniform(0.15, 0.5), rng.uniform(0.2, 0.7)])
        r = float(np.hypot(h[0], h[1]))
        xy = rng.uniform(room_lo[:2] + r + 0.05, room_hi[:2] - r - 0.05)
        if np.all(xy + r > keep_out_lo) and np.all(xy - r < keep_out_hi):
            continue  # would enter the camera's region
        if any(np.hypot(*(xy - c[:2])) < r + max(hh[:2]) * 1.5 for c, hh in zip(centres, halves)):
            continue
        stacked = rng.random() < 0.25
        z = h[2] + (rng.uniform(0.6, 1.2) if stacked else 0.0)
        centres.append(np.array([xy[0], xy[1], z]))
        halves.append(h)
        yaws.append(rng.uniform(-np.pi, np.pi))
    kinds = ["wall", "wall", "wall", "wall", "floor", "ceiling"] + ["box"] * n_boxes
    textures = np.stack([_make_texture(rng, k, detail) for k in kinds])
    texel = np.array([0.01] * 4 + [0.008, 0.012] + [0.004] * n_boxes)
    light = np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), height - 0.2])
    return Scene(
        room_lo,
        room_hi,
        np.array(centres),
        np.array(halves),
        np.array(yaws),
        textures,
        texel,
        light,
        cam_lo,
        cam_hi,
    )


# --------------------------------------------------------------------------- trajectory


def _rot_z(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    out = np.zeros((*np.shape(a), 3, 3))
    out[..., 0, 0], out[..., 0, 1], out[..., 1, 0], out[..., 1, 1], out[..., 2, 2] = c, -s, s, c, 1.0
    return out


@dataclass(frozen=True)
class Trajectory:
    """Smooth hand-held-like camera motion ``T_world_cam(t)``.

    A random speed profile (segments of 0.8-2.5 s, about a quarter of them near-static)
    drives a phase ``s(t)``; position and viewing angles are sums of sinusoids of ``s``;
    a sub-millimetre / sub-0.2-degree tremor of 3-9 Hz in real time is added on top.
    """

    grid_t: np.ndarray
    grid_s: np.ndarray
    centre: np.ndarray
    pos_amp: np.ndarray  # [K, 3]
    pos_freq: np.ndarray  # [K, 3]
    pos_phase: np.ndarray  # [K, 3]
    ang_amp: np.ndarray  # [K, 3] yaw, pitch, roll
    ang_freq: np.ndarray
    ang_phase: np.ndarray
    yaw0: float
    yaw_rate: float
    tremor_amp: np.ndarray  # [6] (m, m, m, rad, rad, rad)
    tremor_freq: np.ndarray  # [6] Hz
    tremor_phase: np.ndarray  # [6]
    #: fast-rotation bursts (whip pans): start (s), duration (s) and yaw change (rad) of each;
    #: the yaw follows a raised-cosine step over the burst. Empty for plain sequences.
    burst_t0: np.ndarray = field(default_factory=lambda: np.zeros(0))
    burst_dur: np.ndarray = field(default_factory=lambda: np.zeros(0))
    burst_yaw: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def pose_at(self, t_s: np.ndarray) -> np.ndarray:
        """``[N, 4, 4]`` ``T_world_cam`` at times ``t_s`` (seconds from the sequence start)."""
        t = np.atleast_1d(np.asarray(t_s, dtype=np.float64))
        s = np.interp(t, self.grid_t, self.grid_s)[:, None, None]  # [N,1,1]
        tremor = self.tremor_amp * np.sin(2 * np.pi * self.tremor_freq * t[:, None] + self.tremor_phase)
        pos = self.centre + (self.pos_amp * np.sin(self.pos_freq * s + self.pos_phase)).sum(1) + tremor[:, :3]
        ang = (self.ang_amp * np.sin(self.ang_freq * s + self.ang_phase)).sum(1) + tremor[:, 3:]
        yaw = self.yaw0 + self.yaw_rate * s[:, 0, 0] + ang[:, 0]
        for t0, dur, amp in zip(self.burst_t0, self.burst_dur, self.burst_yaw):
            u = np.clip((t - t0) / dur, 0.0, 1.0)
            yaw = yaw + amp * (0.5 - 0.5 * np.cos(np.pi * u))
        pitch = -0.12 + ang[:, 1]
        roll = ang[:, 2]
        fwd = np.stack([np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), np.sin(pitch)], axis=1)
        right = np.cross(fwd, np.array([0.0, 0.0, 1.0]))
        right /= np.linalg.norm(right, axis=1, keepdims=True)
        down = np.cross(fwd, right)
        R = np.stack([right, down, fwd], axis=2) @ _rot_z(roll)  # columns: optical x, y, z in world
        T = np.tile(np.eye(4), (len(t), 1, 1))
        T[:, :3, :3] = R
        T[:, :3, 3] = pos
        return T


def make_trajectory(rng: np.random.Generator, scene: Scene, duration_s: float) -> Trajectory:
    """Random :class:`Trajectory` of at least ``duration_s`` seconds inside the camera region."""
    dt = 0.005
    grid_t = np.arange(0.0, duration_s + 1.0, dt)
    # speed profile: piecewise levels blended with raised cosines
    knots_t, levels = [0.0], []
    while knots_t[-1] < grid_t[-1]:
        knots_t.append(knots_t[-1] + rng.uniform(0.8, 2.5))
    for _ in knots_t:
        levels.append(rng.uniform(0.0, 0.04) if rng.random() < 0.25 else rng.uniform(0.35, 1.5))
    # every sequence of a few seconds gets at least one near-static and one brisk stretch
    n_in = sum(k < duration_s - 0.8 for k in knots_t)
    if n_in >= 3:
        static_k, fast_k = (int(k) for k in rng.choice(np.arange(1, n_in), 2, replace=False))
        if min(levels[:n_in]) > 0.04:
            levels[static_k] = rng.uniform(0.0, 0.04)
        if max(levels[:n_in]) < 0.9:
            levels[fast_k] = rng.uniform(0.9, 1.5)
    knots = np.array(knots_t)
    seg = np.clip(np.searchsorted(knots, grid_t, side="right") - 1, 0, len(knots) - 2)
    frac = (grid_t - knots[seg]) / (knots[seg + 1] - knots[seg])
    blend = 0.5 - 0.5 * np.cos(np.pi * np.clip((frac - 0.7) / 0.3, 0.0, 1.0))
    lv = np.array(levels)
    speed = lv[seg] * (1 - blend) + lv[seg + 1] * blend
    grid_s = np.concatenate([[0.0], np.cumsum(0.5 * (speed[1:] + speed[:-1]) * dt)])
    k = 3
    centre = 0.5 * (scene.cam_lo + scene.cam_hi)
    half = 0.5 * (scene.cam_hi - scene.cam_lo)
    w = rng.dirichlet(np.ones(k), size=3).T  # [K, 3], columns sum to 1 -> stays in region
    pos_amp = w * half * 0.95
    pos_freq = rng.uniform(0.25, 0.9, (k, 3))
    pos_phase = rng.uniform(0, 2 * np.pi, (k, 3))
    ang_amp = np.stack([rng.uniform(0.2, 0.6, k), rng.uniform(0.05, 0.15, k), rng.uniform(0.02, 0.06, k)], 1)
    ang_freq = rng.uniform(0.3, 1.2, (k, 3))
    ang_phase = rng.uniform(0, 2 * np.pi, (k, 3))
    tremor_amp = np.concatenate([rng.uniform(2e-4, 8e-4, 3), rng.uniform(5e-4, 2.5e-3, 3)])
    return Trajectory(
        grid_t,
        grid_s,
        centre,
        pos_amp,
        pos_freq,
        pos_phase,
        ang_amp,
        ang_freq,
        ang_phase,
        float(rng.uniform(-np.pi, np.pi)),
        float(rng.choice([-1.0, 1.0]) * rng.uniform(0.15, 0.35)),
        tremor_amp,
        rng.uniform(3.0, 9.0, 6),
        rng.uniform(0, 2 * np.pi, 6),
    )


# --------------------------------------------------------------------------- renderer


class Renderer:
    """Vectorised ray caster for a :class:`Scene` at a fixed image size.

    Works on per-axis float32 planes (structure of arrays): the room is intersected for every
    pixel, each box only inside its projected bounding rectangle; textures are sampled
    bilinearly from packed RGBA words.

    Args:
        scene: What to render.
        width: Image width, pixels.
        height: Image height, pixels.
    """

    def __init__(self, scene: Scene, width: int, height: int) -> None:
        self.scene = scene
        self.width, self.height = int(width), int(height)
        self.K = intrinsics_for(self.width, self.height)
        # normalised image coordinates; ray direction (x, y, 1) makes the ray parameter z-depth
        self._xn = ((np.arange(self.width) - self.K[0, 2]) / self.K[0, 0]).astype(np.float32)[None, :]
        self._yn = ((np.arange(self.height) - self.K[1, 2]) / self.K[1, 1]).astype(np.float32)[:, None]
        b = len(scene.box_centres)
        rgba = np.zeros((*scene.textures.shape[:-1], 4), np.uint8)
        rgba[..., :3] = np.clip(np.rint(scene.textures * 255.0), 0, 255).astype(np.uint8)
        self._tex = rgba.reshape(-1, 4).view(np.uint32).reshape(-1)  # one word per texel
        self._box_rot = _rot_z(scene.box_yaws)  # [B,3,3] world_from_box
        n_surf = 6 + 6 * b
        rng = np.random.default_rng(0)  # fixed per-surface texture offsets (scene-independent)
        surf_tex = np.concatenate([np.arange(6), 6 + np.repeat(np.arange(b), 6)]).astype(np.int32)
        self._surf_base = surf_tex * np.int32(_TEX * _TEX)
        self._surf_scale = (1.0 / scene.texel_m[surf_tex]).astype(np.float32)
        self._surf_off_u = rng.uniform(0, _TEX, n_surf).astype(np.float32)
        self._surf_off_v = rng.uniform(0, _TEX, n_surf).astype(np.float32)
        normals = np.zeros((n_surf, 3))
        for axis in range(3):
            normals[2 * axis, axis] = 1.0  # the lo wall seen from inside faces +axis
            normals[2 * axis + 1, axis] = -1.0
        for i in range(b):
            for axis in range(3):
                for side, sign in ((0, -1.0), (1, 1.0)):
                    n = np.zeros(3)
                    n[axis] = sign
                    normals[6 + 6 * i + 2 * axis + side] = self._box_rot[i] @ n
        self._normals = normals.astype(np.float32).T.copy()  # [3, n_surf]

    def render(self, T_world_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Render one view.

        Args:
            T_world_cam: ``[4, 4]`` pose of the optical frame in the world, metres.

        Returns:
            ``(rgb [H, W, 3] uint8, depth [H, W] float32 z-depth in metres)``.
        """
        rgb, depth, _ = self.render_surfaces(T_world_cam)
        return rgb, depth

    def render_surfaces(
        self, T_world_cam: np.ndarray, light_scale: float = 1.0
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`render` plus the surface id of each pixel, with the point light scaled by ``light_scale``.

        Returns:
            ``(rgb [H, W, 3] uint8, depth [H, W] float32 metres, surface [H, W] int32)``; surface
            ids: room faces 0-5 (-x, +x, -y, +y, floor, ceiling), then ``6 + 6 * box + face``.
        """
        sc = self.scene
        R = np.asarray(T_world_cam[:3, :3], dtype=np.float64)
        o = np.asarray(T_world_cam[:3, 3], dtype=np.float64)
        d = [self._dir_plane(R[k]) for k in range(3)]  # world ray direction, per axis [H, W]
        t_ax = []
        pos_ax = []
        for k in range(3):
            pos = d[k] > 0
            dist = np.where(pos, np.float32(sc.room_hi[k] - o[k]), np.float32(sc.room_lo[k] - o[k]))
            t_ax.append(dist / d[k])
            pos_ax.append(pos)
        t = np.minimum(np.minimum(t_ax[0], t_ax[1]), t_ax[2])
        is_x = t_ax[0] <= np.minimum(t_ax[1], t_ax[2])
        is_z = ~is_x & (t_ax[2] <= t_ax[1])
        axis = np.where(is_x, 0, np.where(is_z, 2, 1)).astype(np.int32)
        side = np.where(is_x, pos_ax[0], np.where(is_z, pos_ax[2], pos_ax[1]))
        surf = 2 * axis + side
        px, py, pz = (np.float32(o[k]) + d[k] * t for k in range(3))
        u = np.where(is_x, py, px)
        v = np.where(is_z, py, pz)
        for i in range(len(sc.box_centres)):
            self._hit_box(i, o, R, d, t, surf, u, v)
        colour = self._sample(surf, u, v)  # [H, W, 3] float32 view, 0..255
        # one point light, Lambert + ambient, inverse-square-ish falloff
        if len(sc.box_centres):  # box pixels changed t; recompute the hit point
            px, py, pz = (np.float32(o[k]) + d[k] * t for k in range(3))
        lx, ly, lz = (
            np.float32(sc.light[0]) - px,
            np.float32(sc.light[1]) - py,
            np.float32(sc.light[2]) - pz,
        )
        dist2 = lx * lx + ly * ly + lz * lz
        ndotl = self._normals[0][surf] * lx + self._normals[1][surf] * ly + self._normals[2][surf] * lz
        shade = np.float32(0.35) + np.float32(0.85 * light_scale) * np.maximum(ndotl, 0) / (
            np.sqrt(dist2) * (np.float32(1.0) + np.float32(0.08) * dist2)
        )
        colour *= shade[..., None]
        colour += np.float32(0.5)
        np.clip(colour, 0, 255, out=colour)
        return colour.astype(np.uint8), t, surf

    def _dir_plane(self, row: np.ndarray) -> np.ndarray:
        """One world component of the (x_n, y_n, 1) camera rays, ``[H, W]`` float32, never 0."""
        plane = np.float32(row[0]) * self._xn + (np.float32(row[1]) * self._yn + np.float32(row[2]))
        plane[np.abs(plane) < 1e-9] = np.float32(1e-9)
        return plane

    def _hit_box(
        self,
        i: int,
        o: np.ndarray,
        R: np.ndarray,
        d: list[np.ndarray],
        t: np.ndarray,
        surf: np.ndarray,
        u: np.ndarray,
        v: np.ndarray,
    ) -> None:
        """Intersect box ``i`` inside its projected bounding rectangle; update hits in place."""
        sc = self.scene
        rect = self._screen_rect(i, o, R)
        if rect is None:
            return
        win = np.s_[rect[0] : rect[1], rect[2] : rect[3]]
        rot = self._box_rot[i]
        half = sc.box_halves[i]
        ol = rot.T @ (o - sc.box_centres[i])
        dw = [d[k][win] for k in range(3)]
        t_near, t_far, dl = [], [], []
        for k in range(3):  # slab per box axis
            dk = np.float32(rot[0, k]) * dw[0] + np.float32(rot[1, k]) * dw[1] + np.float32(rot[2, k]) * dw[2]
            dk[np.abs(dk) < 1e-9] = np.float32(1e-9)
            a = np.float32(-half[k] - ol[k]) / dk
            b = np.float32(half[k] - ol[k]) / dk
            t_near.append(np.minimum(a, b))
            t_far.append(np.maximum(a, b))
            dl.append(dk)
        tn = np.maximum(np.maximum(t_near[0], t_near[1]), t_near[2])
        tf = np.minimum(np.minimum(t_far[0], t_far[1]), t_far[2])
        hit = (tn <= tf) & (tn > 0) & (tn < t[win])
        if not hit.any():
            return
        tnh = tn[hit]
        is_x = t_near[0][hit] >= np.maximum(t_near[1][hit], t_near[2][hit])
        is_z = ~is_x & (t_near[2][hit] >= t_near[1][hit])
        ax = np.where(is_x, 0, np.where(is_z, 2, 1))
        dh = [dl[k][hit] for k in range(3)]
        d_ax = np.where(is_x, dh[0], np.where(is_z, dh[2], dh[1]))
        p = [np.float32(ol[k]) + dh[k] * tnh for k in range(3)]
        t[win][hit] = tnh
        surf[win][hit] = 6 + 6 * i + 2 * ax + (d_ax < 0)
        u[win][hit] = np.where(is_x, p[1], p[0])
        v[win][hit] = np.where(is_z, p[1], p[2])

    def _screen_rect(self, i: int, o: np.ndarray, R: np.ndarray) -> tuple[int, int, int, int] | None:
        """Pixel rectangle covering box ``i`` (None when it is not in front of the camera)."""
        sc = self.scene
        signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)
        corners = sc.box_centres[i] + (signs * sc.box_halves[i]) @ self._box_rot[i].T
        pc = (corners - o) @ R  # camera coordinates (R = R_world_cam)
        if np.all(pc[:, 2] <= 0.05):
            return None
        if np.any(pc[:, 2] <= 0.05):
            return 0, self.height, 0, self.width
        uu = self.K[0, 0] * pc[:, 0] / pc[:, 2] + self.K[0, 2]
        vv = self.K[1, 1] * pc[:, 1] / pc[:, 2] + self.K[1, 2]
        c0, c1 = int(max(np.floor(uu.min()) - 1, 0)), int(min(np.ceil(uu.max()) + 2, self.width))
        r0, r1 = int(max(np.floor(vv.min()) - 1, 0)), int(min(np.ceil(vv.max()) + 2, self.height))
        if c0 >= c1 or r0 >= r1:
            return None
        return r0, r1, c0, c1

    def _sample(self, surf: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Bilinear, wrapping texture lookup; ``[H, W, 3]`` float32 in [0, 255]."""
        tu = u * self._surf_scale[surf] + self._surf_off_u[surf]
        tv = v * self._surf_scale[surf] + self._surf_off_v[surf]
        x0f, y0f = np.floor(tu), np.floor(tv)
        fx, fy = (tu - x0f)[..., None], (tv - y0f)[..., None]
        mask = np.int32(_TEX - 1)
        x0 = x0f.astype(np.int32) & mask
        y0 = y0f.astype(np.int32) & mask
        x1, y1 = (x0 + 1) & mask, (y0 + 1) & mask
        base = self._surf_base[surf]
        row0, row1 = base + y0 * np.int32(_TEX), base + y1 * np.int32(_TEX)

        def texel(idx: np.ndarray) -> np.ndarray:  # [H, W, 4] float32 (contiguous: fast to convert)
            return np.take(self._tex, idx).view(np.uint8).reshape(*idx.shape, 4).astype(np.float32)

        top = texel(row0 + x0)
        top += (texel(row0 + x1) - top) * fx
        bottom = texel(row1 + x0)
        bottom += (texel(row1 + x1) - bottom) * fx
        top += (bottom - top) * fy
        return top[..., :3]


# --------------------------------------------------------------------------- difficulty

#: Columns of ``difficulty.csv`` (one row per image, in image order).
DIFFICULTY_COLUMNS: tuple[str, ...] = (
    "frame",  # image index
    "stamp_ns",  # image stamp
    "level",  # the sequence's difficulty level (0 = clean render)
    "exposure_s",  # shutter time, seconds (motion blur = image speed x exposure)
    "blur_px",  # motion-blur streak length, pixels
    "noise_sigma",  # sensor noise std, grey levels (of 255)
    "gain",  # exposure / auto-gain multiplier of the image
    "light_scale",  # point-light intensity multiplier (lighting change; ambient unchanged)
    "lowtex_fraction",  # fraction of pixels on low-texture surfaces
    "occluder_fraction",  # fraction of pixels covered by a near occluder
    "angular_speed_dps",  # ground-truth camera angular speed, degrees per second
    "in_burst",  # 1 during a fast-rotation burst (whip pan)
)


@dataclass(frozen=True)
class DifficultyPlan:
    """Per-frame image degradations of a sequence, from ``(seed, level)`` alone.

    Every parameter varies within the sequence (smooth random processes plus events) and its
    range grows with ``level`` in [0, 1], so it also varies across sequences of different
    levels. Arrays are per image (``[N]``).

    Attributes:
        level: difficulty level in [0, 1].
        exposure_s: shutter time, seconds.
        noise_sigma: additive Gaussian noise std, grey levels.
        gain: image brightness multiplier (exposure changes with auto-exposure lag).
        light_scale: point-light multiplier (lighting changes).
        occluders: ``(frame, cx, cy, radius, r, g, b)`` rows, pixels in fractions of the image
            (centre and radius over the image height), colour in [0, 255]: a flat near blob.
        lowtex_surfaces: surface ids (see :meth:`Renderer.render_surfaces`) made low-texture.
    """

    level: float
    exposure_s: np.ndarray
    noise_sigma: np.ndarray
    gain: np.ndarray
    light_scale: np.ndarray
    occluders: np.ndarray
    lowtex_surfaces: np.ndarray


def _smooth_process(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """A smooth random signal in [0, 1] (three sinusoids of 0.05-0.8 Hz)."""
    freq = rng.uniform(0.05, 0.8, 3)
    phase = rng.uniform(0, 2 * np.pi, 3)
    amp = rng.dirichlet(np.ones(3))
    return 0.5 + 0.5 * (amp[:, None] * np.sin(2 * np.pi * freq[:, None] * t[None] + phase[:, None])).sum(0)


def _poisson_times(rng: np.random.Generator, rate_hz: float, duration_s: float) -> np.ndarray:
    """Start times of a Poisson process of ``rate_hz`` on [0, duration_s)."""
    n = int(rng.poisson(rate_hz * duration_s))
    return np.sort(rng.uniform(0.0, duration_s, n))


def plan_difficulty(seed: int, level: float, t_s: np.ndarray, n_surfaces: int) -> tuple[DifficultyPlan, np.ndarray]:
    """Draw the degradations of a sequence; also returns ``[K, 3]`` bursts (t0 s, duration s, yaw rad).

    Uses its own random stream (``SeedSequence([seed, 0xD1FF])``): scene, motion and stamps are
    the same as the clean sequence of that seed, apart from the bursts added to the yaw.
    """
    if not 0.0 <= level <= 1.0:
        raise DataError(f"difficulty level must be in [0, 1]; got {level}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xD1FF]))
    dur = float(t_s[-1] - t_s[0]) + 1e-3 if len(t_s) else 1e-3
    tt = t_s - (t_s[0] if len(t_s) else 0.0)
    exposure = 0.001 * 40.0 ** (level * _smooth_process(rng, tt))  # 1 ms .. 40 ms
    noise = 0.5 + level * 12.0 * _smooth_process(rng, tt) ** 2
    log_gain = level * 0.6 * (2.0 * _smooth_process(rng, tt) - 1.0)
    for t_jump in _poisson_times(rng, 0.4 * level, dur):  # exposure jumps, decaying over ~0.6 s
        size = rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 0.8)
        after = tt >= t_jump
        log_gain[after] += size * np.exp(-(tt[after] - t_jump) / 0.6)
    gain = np.exp(log_gain)
    light = 1.0 + level * 0.8 * (2.0 * _smooth_process(rng, tt) - 1.0)
    occ_rows = []
    for t_start in _poisson_times(rng, 0.3 * level, dur):  # a blob crossing the view (a hand, a person)
        length = rng.uniform(0.5, 2.0)
        radius = rng.uniform(0.15, 0.45)
        y = rng.uniform(0.2, 0.8)
        direction = rng.choice([-1.0, 1.0])
        colour = rng.uniform(20, 200, 3)
        inside = np.flatnonzero((tt >= t_start) & (tt < t_start + length))
        for f in inside:
            u = (tt[f] - t_start) / length
            cx = 0.5 + direction * (1.0 + radius) * (2.0 * u - 1.0) * 0.75
            occ_rows.append([f, cx, y, radius, *colour])
    occluders = np.array(occ_rows, dtype=np.float64).reshape(-1, 7)
    lowtex = np.flatnonzero(rng.random(n_surfaces) < 0.4 * level)
    bursts = []
    for t0 in _poisson_times(rng, 0.25 * level, dur):
        bursts.append([t0, rng.uniform(0.3, 0.7), rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.2)])
    plan = DifficultyPlan(float(level), exposure, noise, gain, light, occluders, lowtex)
    return plan, np.array(bursts, dtype=np.float64).reshape(-1, 3)


def _low_texture(textures: np.ndarray, surfaces: np.ndarray, rng_seed: int) -> np.ndarray:
    """Copy of ``textures`` whose listed textures keep 8-30 % of their contrast (near-uniform paint)."""
    out = textures.copy()
    rng = np.random.default_rng(np.random.SeedSequence([rng_seed, 0x7E7]))
    for k in surfaces:
        mean = out[k].mean(axis=(0, 1), keepdims=True)
        out[k] = mean + rng.uniform(0.08, 0.3) * (out[k] - mean)
    return out


def _blur_kernel(length_px: float, angle_rad: float) -> np.ndarray | None:
    """Normalised linear motion-blur kernel (None below one pixel)."""
    if not length_px >= 1.0:
        return None
    size = int(min(np.ceil(length_px), 61)) | 1
    k = np.zeros((size, size), np.float32)
    c = size // 2
    n = max(2 * size, 8)
    for a in np.linspace(-0.5, 0.5, n):
        x = c + a * min(length_px, size - 1) * np.cos(angle_rad)
        y = c + a * min(length_px, size - 1) * np.sin(angle_rad)
        k[int(round(y)), int(round(x))] += 1.0
    return k / k.sum()


def degrade(
    rgb: np.ndarray,
    depth: np.ndarray,
    frame: int,
    plan: DifficultyPlan,
    blur_px: float,
    blur_angle: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Apply gain, occluder, motion blur and noise of ``frame``; returns ``(rgb, depth, occluded fraction)``.

    The occluder is a near object (0.3 m): depth there is set to 0.3.
    """
    import cv2  # lazy: only difficulty renders need OpenCV's filters

    h, w = rgb.shape[:2]
    img = rgb.astype(np.float32) * np.float32(plan.gain[frame])
    depth = depth.copy()
    occ = plan.occluders[plan.occluders[:, 0] == frame] if len(plan.occluders) else plan.occluders
    covered = np.zeros((h, w), bool)
    if len(occ):
        yy, xx = np.mgrid[0:h, 0:w]
        for _, cx, cy, radius, r, g, b in occ:
            mask = (xx - cx * w) ** 2 + ((yy - cy * h) * 1.3) ** 2 < (radius * h) ** 2
            shade = 0.85 + 0.3 * (yy[mask] / h)  # a soft vertical gradient, no texture
            img[mask] = np.array([r, g, b], np.float32)[None] * shade[:, None].astype(np.float32) * plan.gain[frame]
            depth[mask] = 0.3
            covered |= mask
    kernel = _blur_kernel(blur_px, blur_angle)
    if kernel is not None:
        img = np.asarray(cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT), dtype=np.float32)
    img += rng.normal(0.0, plan.noise_sigma[frame], img.shape).astype(np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), depth, float(covered.mean())


def image_motion(K: np.ndarray, T_a: np.ndarray, T_b: np.ndarray, depth_m: float) -> tuple[float, float]:
    """Displacement (pixels) and direction (rad) of the image centre seen at ``depth_m`` between two poses."""
    ray = np.linalg.inv(K) @ np.array([K[0, 2], K[1, 2], 1.0])
    X = T_a[:3, :3] @ (ray * depth_m) + T_a[:3, 3]
    Xb = T_b[:3, :3].T @ (X - T_b[:3, 3])
    if Xb[2] <= 1e-3:
        return 0.0, 0.0
    uv = K @ (Xb / Xb[2])
    d = uv[:2] - np.array([K[0, 2], K[1, 2]])
    return float(np.hypot(*d)), float(np.arctan2(d[1], d[0]))


def write_difficulty(path: str | Path, rows: Sequence[Sequence[float]]) -> None:
    """Write ``difficulty.csv`` (header :data:`DIFFICULTY_COLUMNS`, one row per image)."""
    lines = [",".join(DIFFICULTY_COLUMNS)]
    for row in rows:
        lines.append(",".join(str(int(v)) if k in (0, 1, 11) else f"{float(v):.6g}" for k, v in enumerate(row)))
    Path(path).write_text("\n".join(lines) + "\n")


def read_difficulty(path: str | Path) -> dict[str, np.ndarray]:
    """Read ``difficulty.csv`` into column arrays (``frame``/``stamp_ns``/``in_burst`` int64, others float64).

    Raises:
        DataError: missing file or columns.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"no difficulty file at {p}")
    lines = p.read_text().strip().splitlines()
    header = lines[0].split(",") if lines else []
    missing = [c for c in DIFFICULTY_COLUMNS if c not in header]
    if missing:
        raise DataError(f"{p}: missing difficulty column(s) {', '.join(missing)}")
    rows = [ln.split(",") for ln in lines[1:]]
    if any(len(r) != len(header) for r in rows):
        raise DataError(f"{p}: rows with a number of fields other than {len(header)}")
    out: dict[str, np.ndarray] = {}
    for k, name in enumerate(header):
        if name in ("frame", "stamp_ns", "in_burst"):
            out[name] = np.array([int(r[k]) for r in rows], dtype=np.int64)
        else:
            out[name] = np.array([float(r[k]) for r in rows], dtype=np.float64)
    return out


# --------------------------------------------------------------------------- sequences


@dataclass(frozen=True)
class SynthPlan:
    """Everything needed to render a sequence, derived from the seed alone.

    Attributes:
        seed: The seed.
        width: Image width, pixels.
        height: Image height, pixels.
        fps: Nominal image rate, Hz.
        image_stamps_ns: ``[N]`` strictly increasing image stamps, nanoseconds.
        mocap_stamps_ns: ``[M]`` strictly increasing 100 Hz ground-truth stamps, nanoseconds.
        t0_ns: Stamp at which the trajectory's clock is 0.
        scene: The scene.
        trajectory: The motion.
        difficulty: image degradations (None: clean renders).
    """

    seed: int
    width: int
    height: int
    fps: float
    image_stamps_ns: np.ndarray
    mocap_stamps_ns: np.ndarray
    t0_ns: int
    scene: Scene
    trajectory: Trajectory
    difficulty: DifficultyPlan | None = None

    @property
    def K(self) -> np.ndarray:
        """``[3, 3]`` camera matrix, pixels."""
        return intrinsics_for(self.width, self.height)

    def poses_at(self, stamps_ns: np.ndarray | Sequence[int]) -> np.ndarray:
        """``[N, 4, 4]`` ``T_world_cam`` (RGB optical frame in world, metres) at ``stamps_ns``."""
        t = (np.asarray(stamps_ns, dtype=np.int64) - self.t0_ns) / _NS
        return self.trajectory.pose_at(t)


def plan_sequence(
    seed: int,
    n_frames: int,
    width: int = 640,
    height: int = 480,
    fps: float = 30.0,
    difficulty: float | None = None,
) -> SynthPlan:
    """Draw scene, trajectory and stamps for ``seed`` (deterministic).

    With ``difficulty`` (a level in [0, 1]) also the degradations of :func:`plan_difficulty`:
    low-texture surfaces and fast-rotation bursts change the scene and motion; blur, noise,
    exposure, lighting and occluders are applied per image by :func:`generate`.

    Raises:
        DataError: Non-positive frame count, size or rate; a level outside [0, 1].
    """
    if n_frames < 1 or width < 8 or height < 8 or not fps > 0:
        raise DataError(f"invalid synthetic sequence: {n_frames} frames of {width}x{height} at {fps} Hz")
    if difficulty is not None and not 0.0 <= difficulty <= 1.0:
        raise DataError(f"difficulty level must be in [0, 1]; got {difficulty}")
    rng = np.random.default_rng(np.random.SeedSequence(int(seed)))
    first_us = 1_305_031_100_000_000 + int(rng.integers(0, 10_000_000))
    period_us = 1e6 / fps
    jitter = rng.integers(-1000, 1001, n_frames) if period_us > 4000 else np.zeros(n_frames, int)
    image_us = first_us + np.round(np.arange(n_frames) * period_us).astype(np.int64) + jitter
    image_ns = image_us * 1000
    # motion capture: 100 Hz on a 0.1 ms grid, jitter +-0.2 ms, covering all images
    start_100us = image_us[0] // 100 - 500 - int(rng.integers(0, 100))
    end_100us = image_us[-1] // 100 + 600
    n_mocap = (end_100us - start_100us) // 100 + 1
    mocap_100us = start_100us + 100 * np.arange(n_mocap) + rng.integers(-2, 3, n_mocap)
    mocap_ns = mocap_100us.astype(np.int64) * 100_000
    t0_ns = int(mocap_ns[0])
    scene = make_scene(rng, detail=np.random.default_rng(np.random.SeedSequence([int(seed), 0xDE7A])))
    trajectory = make_trajectory(rng, scene, (int(mocap_ns[-1]) - t0_ns) / _NS)
    diff = None
    if difficulty is not None:
        t_img = (image_ns - t0_ns) / _NS
        diff, bursts = plan_difficulty(int(seed), float(difficulty), t_img, len(scene.textures))
        scene = replace(scene, textures=_low_texture(scene.textures, diff.lowtex_surfaces, int(seed)))
        trajectory = replace(
            trajectory, burst_t0=t_img[0] + bursts[:, 0], burst_dur=bursts[:, 1], burst_yaw=bursts[:, 2]
        )
    return SynthPlan(int(seed), int(width), int(height), float(fps), image_ns, mocap_ns, t0_ns, scene, trajectory, diff)


@dataclass
class SynthResult:
    """What :func:`generate` wrote.

    Attributes:
        paths: Format name (``tum``, ``ros1``, ``ros2``, ``ros2-mcap``) -> written path.
        n_frames: Images written.
        image_stamps_ns: ``[N]`` image stamps, nanoseconds.
        K: ``[3, 3]`` camera matrix, pixels.
        elapsed_s: Wall time of rendering and writing, seconds.
        render_s: Wall time spent rendering (part of ``elapsed_s``), seconds.
    """

    paths: dict[str, Path]
    n_frames: int
    image_stamps_ns: np.ndarray
    K: np.ndarray
    elapsed_s: float = 0.0
    render_s: float = field(default=0.0)


def _events(plan: SynthPlan) -> Iterator[tuple[str, int, int]]:
    """``(kind, index, stamp_ns)`` of poses and images, in stamp order (pose first on ties)."""
    kinds = np.concatenate([np.zeros(len(plan.mocap_stamps_ns), int), np.ones(len(plan.image_stamps_ns), int)])
    idx = np.concatenate([np.arange(len(plan.mocap_stamps_ns)), np.arange(len(plan.image_stamps_ns))])
    stamps = np.concatenate([plan.mocap_stamps_ns, plan.image_stamps_ns])
    for k in np.lexsort((kinds, stamps)).tolist():
        yield ("pose" if kinds[k] == 0 else "image"), int(idx[k]), int(stamps[k])


class SequenceWriter(Protocol):
    """What :func:`generate` needs from a format writer (TUM folder, ROS 1 bag, ROS 2 bag)."""

    def write_pose(self, stamp_ns: int, T_world_cam: np.ndarray) -> None:
        """Ground truth: RGB optical frame in world, metres."""

    def write_rgb(self, stamp_ns: int, rgb: np.ndarray) -> None:
        """``[H, W, 3]`` uint8 RGB image."""

    def write_depth(self, stamp_ns: int, depth_m: np.ndarray) -> None:
        """``[H, W]`` float32 depth, metres."""

    def close(self) -> None:
        """Finish the output."""


def _open_writers(
    out: Path, formats: Sequence[str], ros2_storage: str, K: np.ndarray, size: tuple[int, int]
) -> tuple[dict[str, SequenceWriter], dict[str, Path]]:
    writers: dict[str, SequenceWriter] = {}
    paths: dict[str, Path] = {}
    try:
        for fmt in formats:
            if fmt == "tum":
                paths[fmt] = out / "tum"
                writers[fmt] = TumFolderWriter(paths[fmt])
            elif fmt == "ros1":
                paths[fmt] = out / "synth.bag"
                writers[fmt] = Ros1SequenceWriter(paths[fmt], K, size)
            else:  # ros2, ros2-mcap
                storage = "mcap" if fmt == "ros2-mcap" else ros2_storage
                paths[fmt] = out / ("synth_ros2_mcap" if fmt == "ros2-mcap" else "synth_ros2")
                writers[fmt] = Ros2SequenceWriter(paths[fmt], K, size, storage=storage)
    except BaseException:
        for wr in writers.values():
            wr.close()
        raise
    return writers, paths


def _noise_rng(plan: SynthPlan) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([plan.seed, 0x5EED]))


def _lowtex_mask(plan: SynthPlan) -> np.ndarray:
    """``[n_surfaces]`` bool: surfaces drawn with a low-texture texture."""
    lowtex = [] if plan.difficulty is None else sorted(int(k) for k in plan.difficulty.lowtex_surfaces)
    n_box = len(plan.scene.box_centres)
    surf_tex = np.concatenate([np.arange(6), 6 + np.repeat(np.arange(n_box), 6)])
    return np.isin(surf_tex, lowtex)


def render_sequence_frames(plan: SynthPlan) -> tuple[list[np.ndarray], np.ndarray, dict[str, np.ndarray]]:
    """Render every image of ``plan`` in memory (as :func:`generate` writes them, same bytes).

    Returns:
        ``(rgb images, T_world_cam [N, 4, 4] at the image stamps, difficulty columns)``.
    """
    renderer = Renderer(plan.scene, plan.width, plan.height)
    T = plan.poses_at(plan.image_stamps_ns)
    rng, mask = _noise_rng(plan), _lowtex_mask(plan)
    images, rows = [], []
    for i in range(len(T)):
        rgb, _, row = _render_frame(plan, renderer, i, T[i], mask, rng)
        images.append(rgb)
        rows.append(row)
    table = np.array(rows, dtype=np.float64).reshape(-1, len(DIFFICULTY_COLUMNS))
    cols = {name: table[:, k] for k, name in enumerate(DIFFICULTY_COLUMNS)}
    cols["stamp_ns"] = plan.image_stamps_ns.copy()
    return images, T, cols


def _render_frame(
    plan: SynthPlan,
    renderer: Renderer,
    i: int,
    T_world_cam: np.ndarray,
    surf_lowtex: np.ndarray,
    noise_rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Render image ``i`` with its degradations; returns ``(rgb, depth, difficulty.csv row)``."""
    stamp = int(plan.image_stamps_ns[i])
    near = plan.poses_at(np.array([stamp - 5_000_000, stamp + 5_000_000]))
    dR = near[0, :3, :3].T @ near[1, :3, :3]
    ang_speed = np.degrees(np.arccos(np.clip((np.trace(dR) - 1.0) / 2.0, -1.0, 1.0))) / 0.01
    d = plan.difficulty
    if d is None:
        rgb, depth = renderer.render(T_world_cam)
        return rgb, depth, [i, stamp, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, ang_speed, 0]
    rgb, depth, surf = renderer.render_surfaces(T_world_cam, float(d.light_scale[i]))
    t_s = (stamp - plan.t0_ns) / _NS
    traj = plan.trajectory
    in_burst = int(np.any((t_s >= traj.burst_t0) & (t_s <= traj.burst_t0 + traj.burst_dur)))
    exposure_ns = int(round(float(d.exposure_s[i]) * _NS))
    T_open = plan.poses_at(np.array([stamp - exposure_ns]))[0]
    finite = depth[np.isfinite(depth) & (depth > 0)]
    blur_px, blur_angle = image_motion(plan.K, T_open, T_world_cam, float(np.median(finite)) if finite.size else 2.0)
    lowtex_fraction = float(surf_lowtex[surf].mean()) if surf_lowtex.any() else 0.0
    rgb, depth, occluded = degrade(rgb, depth, i, d, blur_px, blur_angle, noise_rng)
    row = [
        i,
        stamp,
        d.level,
        float(d.exposure_s[i]),
        blur_px,
        float(d.noise_sigma[i]),
        float(d.gain[i]),
        float(d.light_scale[i]),
        lowtex_fraction,
        occluded,
        ang_speed,
        in_burst,
    ]
    return rgb, depth, row


def generate(
    out_dir: str | Path,
    seed: int,
    n_frames: int,
    formats: Sequence[str] = ("tum", "ros1", "ros2"),
    width: int = 640,
    height: int = 480,
    fps: float = 30.0,
    *,
    ros2_storage: str = "sqlite3",
    progress: Callable[[int], None] | None = None,
    difficulty: float | None = None,
) -> SynthResult:
    """Render a synthetic sequence and write it in the requested formats, streaming.

    Output layout under ``out_dir``: ``tum/`` (TUM RGB-D folder), ``synth.bag`` (ROS 1, TUM's
    topics, types and frame names), ``synth_ros2/`` (ROS 2 bag, ``ros2_storage``) and
    ``synth_ros2_mcap/`` (ROS 2 bag in mcap). Ground truth is ``T_world_cam`` of the RGB
    optical frame at 100 Hz (``groundtruth.txt`` / ``/tf``), metres, XYZW.

    Args:
        out_dir: Output folder (created). Existing outputs are not overwritten.
        seed: Everything (scene, motion, stamps) is a deterministic function of it.
        n_frames: Number of RGB(+depth) images.
        formats: Any of :data:`FORMATS`.
        width: Image width, pixels.
        height: Image height, pixels.
        fps: Nominal image rate, Hz.
        ros2_storage: ``sqlite3`` or ``mcap`` for the ``ros2`` format.
        progress: Called with the number of images finished after each image.
        difficulty: None for clean renders, or a level in [0, 1]: motion blur (exposure x image
            motion), sensor noise, exposure and lighting changes, low-texture surfaces,
            fast-rotation bursts and occluders, varying within the sequence (see
            :func:`plan_difficulty`). The per-image parameters go to ``difficulty.csv`` in
            ``out_dir`` (and beside ``groundtruth.txt`` in ``tum/``), columns
            :data:`DIFFICULTY_COLUMNS`; read it with :func:`read_difficulty`. Clean sequences
            get the file too (level 0, no degradation).

    Returns:
        A :class:`SynthResult` with the written paths.

    Raises:
        DataError: Unknown format/storage, invalid sizes, or an output that already exists.
    """
    fmts = list(dict.fromkeys(formats))
    unknown = [f for f in fmts if f not in FORMATS]
    if unknown or not fmts:
        raise DataError(f"unknown synthetic output format(s) {unknown or fmts}; choose from {', '.join(FORMATS)}")
    if ros2_storage not in ("sqlite3", "mcap"):
        raise DataError(f"unknown ROS 2 storage {ros2_storage!r}; choose sqlite3 or mcap")
    t_start = time.perf_counter()
    plan = plan_sequence(seed, n_frames, width, height, fps, difficulty)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    renderer = Renderer(plan.scene, plan.width, plan.height)
    mocap_T = plan.poses_at(plan.mocap_stamps_ns)
    image_T = plan.poses_at(plan.image_stamps_ns)
    render_s = 0.0
    done = 0
    diff_rows: list[list[float]] = []
    noise_rng = _noise_rng(plan)
    surf_lowtex = _lowtex_mask(plan)
    # PNG/zlib and file writes release the GIL: one writer thread (which also owns the writers:
    # sqlite objects are thread-bound) overlaps them with rendering and keeps the write order;
    # at most _MAX_QUEUED writes wait in memory.
    queued: deque[Future[None]] = deque()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="synth-writer") as pool:
        writers, paths = pool.submit(_open_writers, out, fmts, ros2_storage, plan.K, (plan.width, plan.height)).result()

        def write_pose(stamp: int, T: np.ndarray) -> None:
            for wr in writers.values():
                wr.write_pose(stamp, T)

        def write_frame(stamp: int, rgb: np.ndarray, depth: np.ndarray) -> None:
            for wr in writers.values():
                wr.write_rgb(stamp, rgb)
                wr.write_depth(stamp, depth)

        def close_all() -> None:
            for wr in writers.values():
                wr.close()

        try:
            for kind, i, stamp in _events(plan):
                if kind == "pose":
                    queued.append(pool.submit(write_pose, stamp, mocap_T[i]))
                    continue
                t_r = time.perf_counter()
                rgb, depth, row = _render_frame(plan, renderer, i, image_T[i], surf_lowtex, noise_rng)
                diff_rows.append(row)
                render_s += time.perf_counter() - t_r
                queued.append(pool.submit(write_frame, stamp, rgb, depth))
                while len(queued) > _MAX_QUEUED or (queued and queued[0].done()):
                    queued.popleft().result()
                done += 1
                if progress is not None:
                    progress(done)
            while queued:
                queued.popleft().result()
        finally:
            for fut in queued:
                fut.cancel()
            pool.submit(close_all).result()
    write_difficulty(out / "difficulty.csv", diff_rows)
    if "tum" in paths:
        write_difficulty(paths["tum"] / "difficulty.csv", diff_rows)
    elapsed = time.perf_counter() - t_start
    _log.info(
        "synth seed %d: %d frames %dx%d in %.1f s (render %.1f s) -> %s",
        seed,
        done,
        width,
        height,
        elapsed,
        render_s,
        ", ".join(str(p) for p in paths.values()),
    )
    return SynthResult(paths, done, plan.image_stamps_ns.copy(), plan.K, elapsed, render_s)
