"""A CPU geometric backbone: ORB features, essential matrices, triangulated window scale (OpenCV).

What it computes for a window of ``S`` RGB frames (frame 0 is the reference):

1. **Features.** ORB (oriented FAST + rotated BRIEF, ``cv2.ORB``) on each grey frame, corners
   refined to sub-pixel (``cv2.cornerSubPix``), once per frame id (overlapping windows reuse
   them). ORB rather than SIFT: about 3x cheaper per window on our CPU (the point of this
   backbone is robots without a GPU; ``benchmarks/geometric.py``), binary descriptors match with
   a Hamming brute force, and with sub-pixel corners and USAC its rotation accuracy on our
   renders is of the same order as SIFT's; SIFT is available with ``detector="sift"``.
2. **Matching** frame 0 <-> frame i (every i > 0): brute-force 2-NN, Lowe ratio test, and one
   frame-0 keypoint per frame-i keypoint (the closest).
3. **Relative rotation** from the essential matrix (``cv2.findEssentialMat`` with
   ``USAC_ACCURATE``: RANSAC with local optimisation, fixed seed; threshold in pixels) and
   ``cv2.recoverPose`` (cheirality): ``x_i ~ R x_0 + t``. When the camera barely translates the
   essential matrix is degenerate: if a RANSAC homography is a pure rotation
   (``K^-1 H K`` orthogonal up to scale, rotation-compensated parallax ``< 2 min_parallax_px``)
   and explains at least as many matches, ``R`` comes from it, the frame stays valid, its
   translation is not observable (``rotation_only`` cue).
   Otherwise ``(R, t)`` is refined by robust least squares over all matches, from USAC's
   answer, the previous frame's and four probe starts (sideways translations); the spread of
   the near-optimal local minima they reach is the pair's ambiguity (``rot_ambiguity``,
   ``tdir_ambiguity``, ``cost_gap``: two motions the data support almost equally well;
   :meth:`GeometricBackbone._refine`).
4. **Window-consistent translation.** Each pair gives ``t`` only up to scale. The *reference
   pair* (0, j) is, among the three valid frames with the largest rotation-compensated
   parallax, the one whose triangulated points the other frames reproject best (a wrong
   two-view solution is not consistent with the rest of the window); its inliers are
   triangulated with ``|t_0j| = 1``, giving 3-D points in camera 0. For every
   other valid frame i the points it also sees (same frame-0 keypoint matched in 0<->i) fix
   the length ``s_i`` of its unit translation direction: with its rotation known, each point
   ``X`` and observation ``x_i`` (normalised) gives the 1-D least-squares
   ``s = -((x_i x t)·(x_i x R X)) / |x_i x t|^2``; ``s_i`` is their median (robust to
   outliers), a negative median flips the direction; then ``t_i`` is re-solved on those points
   with ``R_i`` fixed (linear least squares ``[x_i]_x t = -[x_i]_x R X``, trimmed), kept when
   it lowers the median reprojection error: a short or planar pair's own translation direction
   can be far off. ``R_i`` stays the pair's own, so a reference pair's error does not spread.
   **Window units: the reference pair's baseline is 1** (like VGGT's normalised units, a
   per-window scale must be applied to get metres). When no pair has parallax
   (``< min_parallax_px``) or fewer than ``min_scale_points`` points support a frame, its
   translation is not observable: that frame's translation is set to 0 (the camera barely
   moved relative to the scene depth) and ``aux["translation_valid"]`` is False; its rotation
   stays valid.
5. **Pose** ``T_0_i`` = inverse of ``[R | s t]``: camera i in camera 0, OpenCV axes.

Intrinsics: a configured ``K`` (``GeometricConfig.K``, or :meth:`GeometricBackbone.set_camera_matrix`
from a ``CameraInfo``) when given; otherwise a **default focal guess from the image size**:
``f = (W / 2) / tan(fov / 2)`` with ``fov_deg = 60`` (horizontal), principal point at the image
centre ``((W - 1) / 2, (H - 1) / 2)``. A wrong focal biases rotations by a few percent of
their angle; the feature vector cannot see that, so configure K when it is known.

Failures: a frame with fewer than ``min_matches`` matches or ``min_inliers`` essential-matrix
inliers (blank, black, blurred-out, occluded frames), or a degenerate/non-finite solution, gets
``valid = False``, ``T_0_i`` filled with NaN (never a silent identity) and is counted in
:attr:`GeometricBackbone.stats` (``frames_invalid/<reason>``). Its feature row is still finite
(the cues say why it failed).

Per-frame features (``[S, D]`` float32, :data:`FEATURE_NAMES`, ``D = 42``): counts are
``log1p(n) / log1p(n_features)`` (0..1), pixel quantities ``log1p(px) / log1p(100)``,
angles ``log1p(deg) / log1p(30)``, ratios in 0..1. Frame 0's match cues are 0 and its
``is_frame0`` cue is 1. Every cue is observable at run time (no ground truth).

Deterministic: fixed RANSAC seeds (``cv2.setRNGSeed`` before each call; USAC seeds itself),
fixed ORB settings, no randomness elsewhere; the same images give the same outputs bit for bit
on one machine (tested).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import cv2
import numpy as np
from scipy.optimize import least_squares

from vggt_uncertainty_ros.errors import ConfigError, InvalidWindowError
from vggt_uncertainty_ros.model.backbone import WindowPrediction, check_images, register_backbone
from vggt_uncertainty_ros.model.spec import BackboneSpec

__all__ = [
    "FEATURE_NAMES",
    "GeometricBackbone",
    "GeometricConfig",
    "build_geometric",
    "default_camera_matrix",
]

_log = logging.getLogger(__name__)

#: Names of the per-frame feature columns, in order.
FEATURE_NAMES: tuple[str, ...] = (
    "is_frame0",  # 1 for the reference frame
    "frame_pos",  # i / (S - 1)
    "valid",  # 1 when the pose is estimated
    "kp_0",  # log-count keypoints frame 0
    "kp_i",  # log-count keypoints frame i
    "matches",  # log-count ratio-test + mutual matches
    "inliers",  # log-count essential-matrix inliers
    "inlier_ratio",  # inliers / matches
    "pose_ratio",  # cheirality-passing / essential inliers
    "homography_ratio",  # homography inliers / essential inliers (planar / pure-rotation degeneracy)
    "flow_median",  # log px, inlier displacement x_i - x_0
    "flow_p90",
    "parallax_median",  # log px, rotation-compensated displacement
    "parallax_flow_ratio",  # parallax / flow
    "tri_angle",  # log deg, median triangulation angle of inliers (with the estimated translation)
    "spread_i",  # fraction of 4x4 cells holding inliers in frame i
    "spread_0",
    "hull_i",  # convex hull area of inliers / image area, frame i
    "sampson_median",  # log px, Sampson epipolar residual of inliers
    "sampson_p90",
    "rot_angle",  # log deg, estimated rotation angle
    "scale_points",  # log-count 3-D/2-D points fixing the translation length
    "scale_spread",  # MAD / median of per-point scale estimates (clipped at 2)
    "reproj_median",  # log px, reprojection error of those points with the scaled pose
    "translation_valid",
    "rotation_only",  # pure rotation: R from the homography, translation not observable
    "is_reference",  # the frame j of the triangulated reference pair
    "ref_parallax",  # window-level: parallax_median of the reference pair
    "ref_points",  # window-level: log-count triangulated points
    "grad_i",  # mean gradient magnitude of frame i / 64 (texture)
    "lap_var_i",  # log1p(variance of Laplacian) / log1p(1e4) (blur)
    "brightness_i",  # mean grey / 255
    "brightness_change",  # |mean grey i - mean grey 0| / 255 (exposure changes)
    "sigma_rot",  # first-order σ of the pair's rotation from its inlier residuals (:func:`_pair_sigmas`)
    "sigma_tdir",  # first-order σ of the pair's translation direction (0 for rotation-only pairs)
    "sigma_t_rel",  # σ of the window-unit translation against the 3-D points, relative to |t|
    "ref_sigma_tdir",  # window-level: sigma_tdir of the reference pair (spreads to every translation)
    "rot_jerk",  # angle between R_0i and what its window neighbours predict (an outlier cue)
    "trans_jerk",  # the same for the translation, relative to the window's mean translation
    "rot_ambiguity",  # log deg: rotation spread of the pair's near-optimal local minima (:func:`_ambiguity`)
    "tdir_ambiguity",  # log deg: the same for the translation direction
    "cost_gap",  # robust-cost margin of the best minimum over the best clearly different one (0..1)
)

_METHODS = {"ransac": cv2.RANSAC, "magsac": cv2.USAC_MAGSAC, "usac": cv2.USAC_ACCURATE, "lmeds": cv2.LMEDS}
_F = {name: k for k, name in enumerate(FEATURE_NAMES)}
_LOG_PX = float(np.log1p(100.0))
_LOG_DEG = float(np.log1p(30.0))
_SIGMA_FULL_DEG = 10.0  # sigma cues reach 1 at 10 degrees (see :func:`_sigma_cue`)
#: Probe starts of the refinement: the translation direction along each camera axis.
_PROBE_DIRS = tuple(np.array(v, float) for v in ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)))
_PROBE_NFEV = 15  # function evaluations of a probe's refinement (a main start gets 50)
_PROBE_POINTS = 300  # a probe refines on at most this many matches (evenly spaced); costs use them all
_NEAR_OPTIMAL = 0.2  # a local minimum within 20 % of the best robust cost counts as ambiguous with it
_DISTINCT_DEG = 0.5  # minima whose rotations differ by more are different solutions (cost_gap)


@dataclass(frozen=True)
class GeometricConfig:
    """Settings of :class:`GeometricBackbone`.

    Attributes:
        detector: ``orb`` (default, fast) or ``sift``.
        n_features: keypoints per frame.
        ratio: Lowe ratio-test threshold.
        ransac_px: RANSAC inlier threshold, pixels.
        method: essential-matrix estimator: ``usac`` (``USAC_ACCURATE``, default), ``ransac``,
            ``magsac`` or ``lmeds``.
        subpixel: refine keypoints with ``cv2.cornerSubPix``.
        equalize: detect on a CLAHE-equalised grey image (robust to dark, low-contrast and
            changing exposure; the texture/blur/brightness cues still read the raw image).
        ransac_prob: RANSAC confidence.
        seed: RANSAC RNG seed (``cv2.setRNGSeed``).
        min_matches: fewer matches -> invalid frame.
        min_inliers: fewer essential-matrix (cheirality-passing) inliers -> invalid frame.
        min_parallax_px: below this median rotation-compensated parallax a pair cannot fix the
            window's scale.
        min_scale_points: fewer triangulated points seen by a frame -> its translation is not observable.
        ambiguity_probes: extra starts of the pair refinement, translation along the first n of
            ±x, ±y, ±z (0..6; default the four sideways ones, where translation trades off
            against rotation): they find the other local minima behind the ambiguity cues (and
            the best of all starts is the estimate).
        fov_deg: horizontal field of view of the default focal guess (no ``K`` configured).
        K: optional ``[3][3]`` camera matrix in pixels of the input images.
    """

    detector: str = "orb"
    n_features: int = 2000
    ratio: float = 0.8
    ransac_px: float = 1.0
    ransac_prob: float = 0.999
    seed: int = 0
    min_matches: int = 20
    min_inliers: int = 15
    min_parallax_px: float = 1.0
    min_scale_points: int = 8
    ambiguity_probes: int = 4
    fov_deg: float = 60.0
    subpixel: bool = True
    equalize: bool = True
    method: str = "usac"
    K: tuple[tuple[float, ...], ...] | None = None

    def __post_init__(self) -> None:
        if self.detector not in ("orb", "sift"):
            raise ConfigError(f"geometric detector must be orb or sift; got {self.detector!r}")
        if self.n_features < 50 or self.min_inliers < 8 or self.min_matches < self.min_inliers:
            raise ConfigError("geometric: need n_features >= 50 and min_matches >= min_inliers >= 8")
        if not 0.0 < self.ratio <= 1.0 or not self.ransac_px > 0 or not 0.5 < self.ransac_prob < 1.0:
            raise ConfigError("geometric: ratio in (0, 1], ransac_px > 0, ransac_prob in (0.5, 1)")
        if not 0 <= self.ambiguity_probes <= len(_PROBE_DIRS):
            raise ConfigError(
                f"geometric ambiguity_probes must be in 0..{len(_PROBE_DIRS)}; got {self.ambiguity_probes}"
            )
        if self.method not in _METHODS:
            raise ConfigError(f"geometric method must be one of {', '.join(_METHODS)}; got {self.method!r}")
        if not 10.0 <= self.fov_deg <= 170.0:
            raise ConfigError(f"geometric fov_deg must be in [10, 170]; got {self.fov_deg}")
        if self.K is not None:
            K = np.asarray(self.K, dtype=np.float64)
            if K.shape != (3, 3) or not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
                raise ConfigError(f"geometric K must be a finite 3x3 matrix with positive focals; got {self.K}")


def default_camera_matrix(width: int, height: int, fov_deg: float = 60.0) -> np.ndarray:
    """The focal guess used without a configured K: ``f = (W/2) / tan(fov/2)``, centred principal point."""
    f = 0.5 * width / np.tan(np.radians(fov_deg) / 2.0)
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


@dataclass
class _Frame:
    """Per-frame detection results (cached by frame id)."""

    pts: np.ndarray  # [N, 2] float32 pixels
    desc: np.ndarray | None  # [N, 32] uint8 (ORB) or [N, 128] float32 (SIFT)
    grad: float
    lap_var: float
    brightness: float


@dataclass
class _Pair:
    """Frame 0 <-> frame i result."""

    n_matches: int = 0
    reason: str = ""
    R: np.ndarray | None = None  # x_i ~ R x_0 + t
    t: np.ndarray | None = None  # unit
    idx0: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # inlier frame-0 kp index
    p0: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # inlier pixels
    pi: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    n_ess_inliers: int = 0
    n_h_inliers: int = 0
    parallax: float = 0.0
    rotation_only: bool = False  # rotation from the homography, translation unobservable
    sigma_rot: float = 0.0  # first-order σ (rad) of R and of the direction of t (:func:`_pair_sigmas`)
    sigma_tdir: float = 0.0
    rot_ambiguity: float = 0.0  # degrees; see :func:`_ambiguity`
    tdir_ambiguity: float = 0.0
    cost_gap: float = 1.0


class GeometricBackbone:
    """The ``geometric`` backbone (see the module docstring). CPU only, no weights.

    Args:
        config: settings.

    Attributes:
        stats: counters: ``windows``, ``frames``, ``frames_invalid``, ``frames_invalid/<reason>``
            (``too_few_matches``, ``too_few_inliers``, ``no_essential``, ``degenerate``),
            ``frames_translation_unobservable``, ``windows_without_scale``.
    """

    name = "geometric"
    feature_dim = len(FEATURE_NAMES)

    def __init__(self, config: GeometricConfig | None = None) -> None:
        self.config = config or GeometricConfig()
        self._K = None if self.config.K is None else np.asarray(self.config.K, dtype=np.float64)
        if self.config.detector == "orb":
            self._detector = cv2.ORB_create(nfeatures=self.config.n_features, fastThreshold=10)
            self._norm = cv2.NORM_HAMMING
        else:
            self._detector = cv2.SIFT_create(nfeatures=self.config.n_features)
            self._norm = cv2.NORM_L2
        self._matcher = cv2.BFMatcher(self._norm, crossCheck=False)
        self._clahe = cv2.createCLAHE(clipLimit=3.0, tileGridSize=(4, 4)) if self.config.equalize else None
        self._cache: OrderedDict[tuple[Hashable, tuple[int, ...]], _Frame] = OrderedDict()
        self.stats: Counter[str] = Counter()

    # ------------------------------------------------------------------ protocol

    def identity(self) -> str:
        """Fingerprint of the method and its settings (same string -> same outputs)."""
        blob = json.dumps({"backbone": self.name, "cv2": cv2.__version__, **asdict(self.config)}, sort_keys=True)
        return "geometric-" + hashlib.sha256(blob.encode()).hexdigest()[:16]

    def set_camera_matrix(self, K: np.ndarray | None) -> None:
        """Use ``K`` (pixels of the input images) from now on; None returns to the focal guess."""
        if K is None:
            self._K = None
            return
        K = np.asarray(K, dtype=np.float64)
        if K.shape != (3, 3) or not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
            raise ConfigError(f"camera matrix must be a finite 3x3 with positive focals; got {K.tolist()}")
        self._K = K.copy()

    def camera_matrix(self, width: int, height: int) -> np.ndarray:
        """The K used for images of this size (configured, else the default focal guess)."""
        if self._K is not None:
            return self._K.copy()
        return default_camera_matrix(width, height, self.config.fov_deg)

    def predict(self, images: Sequence[np.ndarray], frame_ids: Sequence[Hashable] | None = None) -> WindowPrediction:
        """Estimate one window; see the module docstring.

        Args:
            images: S RGB ``HxWx3`` uint8 images of one size; frame 0 is the reference.
            frame_ids: optional S ids; frames whose id was in the previous window reuse its keypoints.

        Raises:
            InvalidWindowError: bad images or ids.
        """
        check_images(images)
        s = len(images)
        if frame_ids is not None and len(frame_ids) != s:
            raise InvalidWindowError(f"expected {s} frame ids, got {len(frame_ids)}")
        h, w = images[0].shape[:2]
        K = self.camera_matrix(w, h)
        frames = self._detect_all(images, frame_ids)
        cfg = self.config
        feats = np.zeros((s, self.feature_dim), dtype=np.float32)
        T = np.full((s, 4, 4), np.nan)
        T[0] = np.eye(4)
        valid = np.zeros(s, dtype=bool)
        valid[0] = True
        t_valid = np.zeros(s, dtype=bool)
        t_valid[0] = True
        log_n = np.log1p(cfg.n_features)
        for i, fr in enumerate(frames):
            feats[i, _F["kp_0"]] = np.log1p(len(frames[0].pts)) / log_n
            feats[i, _F["kp_i"]] = np.log1p(len(fr.pts)) / log_n
            feats[i, _F["grad_i"]] = fr.grad / 64.0
            feats[i, _F["lap_var_i"]] = np.log1p(fr.lap_var) / np.log1p(1e4)
            feats[i, _F["brightness_i"]] = fr.brightness / 255.0
            feats[i, _F["brightness_change"]] = abs(fr.brightness - frames[0].brightness) / 255.0
            feats[i, _F["frame_pos"]] = i / max(s - 1, 1)
        feats[0, _F["is_frame0"]] = 1.0
        feats[0, _F["valid"]] = 1.0
        feats[0, _F["translation_valid"]] = 1.0

        pairs: dict[int, _Pair] = {}
        hint: tuple[np.ndarray, np.ndarray] | None = None  # the previous frame's (R, t): a second start
        for i in range(1, s):
            pair = self._pair(frames[0], frames[i], K, hint)
            if not pair.reason and not pair.rotation_only and pair.R is not None and pair.t is not None:
                hint = (pair.R, pair.t)
            pairs[i] = pair
            self._pair_features(feats[i], pair, K, w, h)
            if pair.reason:
                self.stats["frames_invalid"] += 1
                self.stats[f"frames_invalid/{pair.reason}"] += 1
            else:
                valid[i] = True
        self._scale(frames, pairs, K, T, t_valid, feats)
        _neighbour_cues(T, valid, t_valid, feats)
        self.stats["windows"] += 1
        self.stats["frames"] += s
        self.stats["frames_translation_unobservable"] += int((valid & ~t_valid).sum())
        intr = np.repeat(K[None], s, axis=0)
        if not np.isfinite(feats).all():  # cannot happen by construction; never pass NaN features on
            raise InvalidWindowError("geometric backbone produced non-finite features")
        return WindowPrediction(
            T_0_i=T,
            intrinsics=intr,
            features=feats,
            valid=valid,
            aux={"translation_valid": t_valid},
        )

    # ------------------------------------------------------------------ steps

    def _detect_all(self, images: Sequence[np.ndarray], frame_ids: Sequence[Hashable] | None) -> list[_Frame]:
        out: list[_Frame] = []
        fresh: OrderedDict[tuple[Hashable, tuple[int, ...]], _Frame] = OrderedDict()
        for k, im in enumerate(images):
            key = None if frame_ids is None else (frame_ids[k], im.shape)
            fr = self._cache.get(key) if key is not None else None
            if fr is None:
                fr = self._detect(im)
            out.append(fr)
            if key is not None:
                fresh[key] = fr
        self._cache = fresh  # only the last window's frames can be shared with the next one
        return out

    def _detect(self, rgb: np.ndarray) -> _Frame:
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        work = self._clahe.apply(grey) if self._clahe is not None else grey
        kps, desc = self._detector.detectAndCompute(work, None)
        pts = np.array([kp.pt for kp in kps], dtype=np.float32).reshape(-1, 2)
        if self.config.subpixel and len(pts):
            crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_COUNT, 10, 0.01)
            pts = cv2.cornerSubPix(work, pts.reshape(-1, 1, 2).copy(), (3, 3), (-1, -1), crit).reshape(-1, 2)
        g = grey.astype(np.float32)
        gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
        grad = float(np.mean(np.sqrt(gx * gx + gy * gy))) / 8.0  # Sobel gain 8 -> grey levels per pixel
        lap_var = float(cv2.Laplacian(g, cv2.CV_32F).var())
        return _Frame(pts, desc, grad, lap_var, float(g.mean()))

    def _match(self, a: _Frame, b: _Frame) -> tuple[np.ndarray, np.ndarray]:
        """Indices ``(ia, ib)`` of ratio-test + mutual-best matches."""
        if a.desc is None or b.desc is None or len(a.pts) < 2 or len(b.pts) < 2:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        fwd = self._matcher.knnMatch(a.desc, b.desc, k=2)
        best: dict[int, tuple[float, int]] = {}  # frame-b keypoint -> (distance, frame-a keypoint)
        for m in fwd:
            if len(m) < 2 or m[0].distance >= self.config.ratio * m[1].distance:
                continue
            prev = best.get(m[0].trainIdx)
            if prev is None or m[0].distance < prev[0]:
                best[m[0].trainIdx] = (m[0].distance, m[0].queryIdx)
        # one frame-a keypoint per frame-b keypoint (the closest): a one-way stand-in for the
        # mutual-best check at half the matching cost
        ib = sorted(best)
        ia = [best[k][1] for k in ib]
        return np.asarray(ia, np.int64), np.asarray(ib, np.int64)

    def _pair(self, f0: _Frame, fi: _Frame, K: np.ndarray, hint: tuple[np.ndarray, np.ndarray] | None = None) -> _Pair:
        cfg = self.config
        ia, ib = self._match(f0, fi)
        pair = _Pair(n_matches=len(ia))
        if len(ia) < cfg.min_matches:
            pair.reason = "too_few_matches"
            return pair
        p0 = f0.pts[ia].astype(np.float64)
        pi = fi.pts[ib].astype(np.float64)
        try:
            return self._solve(pair, ia, p0, pi, K, hint)
        except cv2.error as exc:  # OpenCV asserts on degenerate input (e.g. all points identical)
            _log.debug("geometric: OpenCV failed on a pair: %s", exc)
            pair.reason = "degenerate"
            return pair

    def _solve(
        self,
        pair: _Pair,
        ia: np.ndarray,
        p0: np.ndarray,
        pi: np.ndarray,
        K: np.ndarray,
        hint: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> _Pair:
        cfg = self.config
        cv2.setRNGSeed(cfg.seed)
        H, hmask = cv2.findHomography(p0, pi, cv2.RANSAC, 2.0 * cfg.ransac_px)
        h_in = np.zeros(len(p0), bool) if hmask is None else hmask.ravel().astype(bool)
        pair.n_h_inliers = int(h_in.sum())
        R_h = _rotation_from_homography(H, K) if H is not None and pair.n_h_inliers >= cfg.min_inliers else None
        if R_h is not None and np.median(_parallax(p0[h_in], pi[h_in], R_h, K)) >= 2.0 * cfg.min_parallax_px:
            R_h = None  # the homography is not a pure rotation (a plane seen with translation)
        cv2.setRNGSeed(cfg.seed)
        try:
            E, mask = cv2.findEssentialMat(
                p0, pi, K, method=_METHODS[cfg.method], prob=cfg.ransac_prob, threshold=cfg.ransac_px
            )
        except cv2.error:  # asserts on degenerate input (e.g. no motion at all); the homography may still hold
            E, mask = None, None
        reason = ""
        if E is None or E.shape != (3, 3) or mask is None:
            reason = "no_essential"
        else:
            inl = mask.ravel().astype(bool)
            pair.n_ess_inliers = int(inl.sum())
            if pair.n_ess_inliers < cfg.min_inliers:
                reason = "too_few_inliers"
            else:
                n_pose, R, t, pmask = cv2.recoverPose(E, p0[inl], pi[inl], K)
                good = pmask.ravel() > 0
                if n_pose < cfg.min_inliers:
                    reason = "too_few_inliers"
                elif not (np.isfinite(R).all() and np.isfinite(t).all()) or abs(np.linalg.det(R) - 1.0) > 1e-6:
                    reason = "degenerate"
        if R_h is not None and (reason or pair.n_h_inliers >= pair.n_ess_inliers):
            # pure rotation (camera barely translating): the essential matrix is degenerate there,
            # the rotation comes from H = K R K^-1; the translation is not observable
            pair.R, pair.t, pair.rotation_only = R_h, np.zeros(3), True
            pair.idx0, pair.p0, pair.pi = ia[h_in], p0[h_in], pi[h_in]
            pair.parallax = float(np.median(_parallax(pair.p0, pair.pi, R_h, K)))
            return pair
        if reason:
            pair.reason = reason
            return pair
        pair.R, pair.t = R, t.ravel() / max(np.linalg.norm(t), 1e-12)
        refined = self._refine(p0, pi, K, [(pair.R, pair.t)] + ([hint] if hint is not None else []))
        if refined is not None:
            pair.R, pair.t, keep, minima = refined
            pair.n_ess_inliers = max(pair.n_ess_inliers, int(keep.sum()))
            pair.rot_ambiguity, pair.tdir_ambiguity, pair.cost_gap = _ambiguity(minima)
        else:
            keep = np.zeros(len(p0), bool)
            keep[np.flatnonzero(inl)[good]] = True
        pair.idx0 = ia[keep]
        pair.p0, pair.pi = p0[keep], pi[keep]
        pair.parallax = float(np.median(_parallax(pair.p0, pair.pi, R, K)))
        return pair

    def _refine(
        self, p0: np.ndarray, pi: np.ndarray, K: np.ndarray, starts: list[tuple[np.ndarray, np.ndarray]]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[float, np.ndarray, np.ndarray]]] | None:
        """Robust maximum-likelihood ``(R, t)`` of a pair over all its matches, and its inlier mask.

        USAC's answer is the best *sampled* model polished on its own consensus set; on our
        renders it often sits in the rotation/translation ambiguity valley with a fraction of the
        inliers the true motion has (ground truth then fits those same inliers better). Each
        start (USAC's solution; the previous frame's, whose motion is close) is refined by
        Levenberg-Marquardt-style trust-region least squares (``scipy.optimize.least_squares``)
        on the Sampson errors of *all* matches with a Cauchy loss of scale ``ransac_px``, in the
        left perturbation ``Exp(ω) R`` and two tangent coordinates of the unit ``t``; the start
        with the lowest robust cost wins. Inliers are the matches within ``ransac_px`` that pass
        the cheirality test (``cv2.recoverPose`` on the refined ``E``, which also fixes the sign
        of ``t``). None when no start keeps ``min_inliers`` of them.

        The valley has other local minima, and on hard frames (noise, a shallow scene, sideways
        motion) the data may prefer the wrong one by a few per cent of the cost. Probe starts
        (``ambiguity_probes``: USAC's rotation with the translation along a camera axis, a
        shorter refinement on a subset of the matches each) find them; every start's minimum
        ``(cost over all matches, R, t)`` is returned for :func:`_ambiguity`, and a probe's
        minimum that is the deepest is polished on all matches and becomes the estimate.
        """
        cfg = self.config
        Kinv = np.linalg.inv(K)
        f = 0.5 * (K[0, 0] + K[1, 1])
        u0 = np.hstack([p0, np.ones((len(p0), 1))]) @ Kinv.T
        ui = np.hstack([pi, np.ones((len(pi), 1))]) @ Kinv.T

        def solve(R0: np.ndarray, t0: np.ndarray, idx: Any, nfev: int) -> tuple[np.ndarray, np.ndarray]:
            model = _relative_pose_chart(R0, t0)
            a, b = u0[idx], ui[idx]

            def residual(theta: np.ndarray) -> np.ndarray:
                R, t = model(theta)
                return f * _sampson_normalised(_skew(t) @ R, a, b)

            sol = least_squares(residual, np.zeros(5), loss="cauchy", f_scale=cfg.ransac_px, max_nfev=nfev)
            return model(sol.x)

        def cost(R: np.ndarray, t: np.ndarray) -> float:  # least_squares' Cauchy cost over every match
            z = (f * _sampson_normalised(_skew(t) @ R, u0, ui) / cfg.ransac_px) ** 2
            return 0.5 * cfg.ransac_px**2 * float(np.sum(np.log1p(z)))

        every = slice(None)
        subset = np.unique(np.linspace(0, len(p0) - 1, min(len(p0), _PROBE_POINTS)).astype(int))
        found = [solve(R0, t0, every, 50) for R0, t0 in starts]
        found += [solve(starts[0][0], d, subset, _PROBE_NFEV) for d in _PROBE_DIRS[: cfg.ambiguity_probes]]
        minima = [(cost(R, t), R, t) for R, t in found]
        best = min(range(len(minima)), key=lambda k: minima[k][0])
        _, R, t = minima[best]
        if best >= len(starts):  # a probe found the deepest minimum: polish it on every match
            R, t = solve(R, t, every, 50)
            minima[best] = (cost(R, t), R, t)
        close = np.abs(f * _sampson_normalised(_skew(t) @ R, u0, ui)) <= cfg.ransac_px
        if close.sum() < cfg.min_inliers:
            return None
        n_pose, R2, t2, pmask = cv2.recoverPose(_skew(t) @ R, p0[close], pi[close], K)
        if n_pose < cfg.min_inliers or not (np.isfinite(R2).all() and np.isfinite(t2).all()):
            return None
        keep = np.zeros(len(p0), bool)
        keep[np.flatnonzero(close)[pmask.ravel() > 0]] = True
        return R2, t2.ravel() / max(np.linalg.norm(t2), 1e-12), keep, minima

    def _pair_features(self, row: np.ndarray, pair: _Pair, K: np.ndarray, w: int, h: int) -> None:
        log_n = np.log1p(self.config.n_features)
        row[_F["matches"]] = np.log1p(pair.n_matches) / log_n
        row[_F["inliers"]] = np.log1p(len(pair.p0) if not pair.reason else pair.n_ess_inliers) / log_n
        row[_F["inlier_ratio"]] = (len(pair.p0) if not pair.reason else pair.n_ess_inliers) / max(pair.n_matches, 1)
        if pair.reason or pair.R is None or pair.t is None:
            return
        row[_F["valid"]] = 1.0
        n = len(pair.p0)
        row[_F["pose_ratio"]] = n / max(pair.n_ess_inliers, 1)
        row[_F["homography_ratio"]] = min(pair.n_h_inliers / max(pair.n_ess_inliers, 1), 2.0)
        flow = np.linalg.norm(pair.pi - pair.p0, axis=1)
        par = _parallax(pair.p0, pair.pi, pair.R, K)
        row[_F["flow_median"]] = np.log1p(np.median(flow)) / _LOG_PX
        row[_F["flow_p90"]] = np.log1p(np.percentile(flow, 90)) / _LOG_PX
        row[_F["parallax_median"]] = np.log1p(np.median(par)) / _LOG_PX
        row[_F["parallax_flow_ratio"]] = min(np.median(par) / max(np.median(flow), 1e-3), 2.0)
        Kinv = np.linalg.inv(K)
        b0 = _bearings(pair.p0, Kinv)
        bi = _bearings(pair.pi, Kinv) @ pair.R  # frame-i bearings rotated into camera 0
        # triangulation angle between the two rays; with t direction only, use the ray angle
        cosang = np.clip(np.sum(b0 * bi, axis=1), -1.0, 1.0)
        row[_F["tri_angle"]] = np.log1p(np.degrees(np.median(np.arccos(cosang)))) / _LOG_DEG
        row[_F["spread_i"]] = _cell_fraction(pair.pi, w, h)
        row[_F["spread_0"]] = _cell_fraction(pair.p0, w, h)
        if n >= 3:
            hull = cv2.convexHull(pair.pi.astype(np.float32))
            row[_F["hull_i"]] = float(cv2.contourArea(hull)) / float(w * h)
        if pair.rotation_only:
            row[_F["rotation_only"]] = 1.0
            samp = par  # the transfer error of the rotation homography
        else:
            samp = _sampson(Kinv.T @ _skew(pair.t) @ pair.R @ Kinv, pair.p0, pair.pi)
        row[_F["sampson_median"]] = np.log1p(np.median(samp)) / _LOG_PX
        row[_F["sampson_p90"]] = np.log1p(np.percentile(samp, 90)) / _LOG_PX
        angle = np.degrees(np.linalg.norm(cv2.Rodrigues(pair.R)[0]))
        row[_F["rot_angle"]] = np.log1p(angle) / _LOG_DEG
        pair.sigma_rot, pair.sigma_tdir = _pair_sigmas(pair, Kinv)
        row[_F["sigma_rot"]] = _sigma_cue(np.degrees(pair.sigma_rot), _SIGMA_FULL_DEG)
        row[_F["sigma_tdir"]] = _sigma_cue(np.degrees(pair.sigma_tdir), _SIGMA_FULL_DEG)
        row[_F["rot_ambiguity"]] = np.log1p(pair.rot_ambiguity) / _LOG_DEG
        row[_F["tdir_ambiguity"]] = np.log1p(pair.tdir_ambiguity) / _LOG_DEG
        row[_F["cost_gap"]] = pair.cost_gap

    def _scale(
        self,
        frames: list[_Frame],
        pairs: dict[int, _Pair],
        K: np.ndarray,
        T: np.ndarray,
        t_valid: np.ndarray,
        feats: np.ndarray,
    ) -> None:
        """Fill ``T`` (rotation for every valid frame, translation in window units where observable)."""
        cfg = self.config
        ok = [i for i, p in pairs.items() if not p.reason]
        for i in ok:
            T[i] = _invert(pairs[i].R, np.zeros(3))  # rotation now; translation below
            T[i, :3, 3] = 0.0
        cand = [
            i
            for i in ok
            if not pairs[i].rotation_only
            and pairs[i].parallax >= cfg.min_parallax_px
            and len(pairs[i].p0) >= cfg.min_scale_points
        ]
        if not cand:
            if ok:
                self.stats["windows_without_scale"] += 1
            return
        # reference pair: among the (up to) 3 largest-parallax pairs, the one whose triangulated
        # points the other frames reproject best (a wrong two-view solution is not consistent)
        best = None
        for j in sorted(cand, key=lambda i: (-pairs[i].parallax, i))[:3]:
            fit = self._fit_reference(j, ok, pairs, K)
            if fit is not None and (best is None or fit[0] < best[0]):
                best = fit
        if best is None:
            self.stats["windows_without_scale"] += 1
            return
        _, j, n_ref_pts, rows = best
        ref = pairs[j]
        feats[:, _F["ref_sigma_tdir"]] = _sigma_cue(np.degrees(ref.sigma_tdir), _SIGMA_FULL_DEG)
        feats[:, _F["ref_parallax"]] = np.log1p(ref.parallax) / _LOG_PX
        feats[:, _F["ref_points"]] = np.log1p(n_ref_pts) / np.log1p(cfg.n_features)
        feats[j, _F["is_reference"]] = 1.0
        for i, (R, t, n_pts, spread, err, sigma_t) in rows.items():
            feats[i, _F["scale_points"]] = np.log1p(n_pts) / np.log1p(cfg.n_features)
            if R is None:
                continue
            T[i] = _invert(R, t)
            t_valid[i] = True
            feats[i, _F["translation_valid"]] = 1.0
            feats[i, _F["scale_spread"]] = spread
            feats[i, _F["reproj_median"]] = np.log1p(np.median(err) if len(err) else 100.0) / _LOG_PX
            feats[i, _F["sigma_t_rel"]] = _sigma_cue(sigma_t, 1.0)

    def _fit_reference(
        self, j: int, ok: list[int], pairs: dict[int, _Pair], K: np.ndarray
    ) -> tuple[float, int, int, dict[int, tuple[Any, Any, int, float, np.ndarray, float]]] | None:
        """Triangulate pair (0, j) and place every other frame against its points.

        Returns ``(score, j, n_points, {i: (R, t, n_points, spread, reprojection errors, σ_t)})``
        with ``R = None`` for frames whose translation is not observable and ``σ_t`` the
        first-order σ of ``t`` relative to ``|t|`` (:func:`_translation_rel_sigma`; the
        reference frame's is its direction σ); the score is the mean over frames of their
        median reprojection error (pixels); None when too few points.
        """
        cfg = self.config
        ref = pairs[j]
        P0 = K @ np.hstack([np.eye(3), np.zeros((3, 1))])
        Pj = K @ np.hstack([ref.R, ref.t[:, None]])
        Xh = cv2.triangulatePoints(P0, Pj, ref.p0.T, ref.pi.T)
        with np.errstate(divide="ignore", invalid="ignore"):
            X = (Xh[:3] / Xh[3]).T
        Xj = X @ ref.R.T + ref.t
        front = np.isfinite(X).all(axis=1) & (X[:, 2] > 0) & (Xj[:, 2] > 0)
        pts3d = {int(k): X[n] for n, k in enumerate(ref.idx0) if front[n]}
        if len(pts3d) < cfg.min_scale_points:
            return None
        Kinv = np.linalg.inv(K)
        rows: dict[int, tuple[Any, Any, int, float, np.ndarray, float]] = {}
        scores = []
        for i in ok:
            p = pairs[i]
            if p.rotation_only:
                continue
            if i == j:
                scale, spread, n_pts = 1.0, 0.0, len(pts3d)
                Xs = np.array(list(pts3d.values()))
                obs = ref.pi[front]
            else:
                sel = [n for n, k in enumerate(p.idx0) if int(k) in pts3d]
                n_pts = len(sel)
                if n_pts < cfg.min_scale_points:
                    rows[i] = (None, None, n_pts, 0.0, np.zeros(0), 0.0)
                    continue
                Xs = np.array([pts3d[int(p.idx0[n])] for n in sel])
                obs = p.pi[sel]
                x = _bearings(obs, Kinv)
                a = np.cross(x, p.t[None, :])
                b = np.cross(x, Xs @ p.R.T)
                den = np.sum(a * a, axis=1)
                use = den > 1e-12
                if use.sum() < cfg.min_scale_points:
                    rows[i] = (None, None, n_pts, 0.0, np.zeros(0), 0.0)
                    continue
                per = -np.sum(a[use] * b[use], axis=1) / den[use]
                scale = float(np.median(per))
                mad = float(np.median(np.abs(per - scale)))
                spread = min(mad / max(abs(scale), 1e-9), 2.0)
            R, t = p.R, p.t * scale
            err = _reprojection(Xs, obs, R, t, K)
            if i != j:
                # re-solve t (R fixed) against the window's 3-D points: the two-view translation
                # direction of a short or planar pair can be far off while its points' reprojection
                # says so; R stays the pair's own (a reference pair's rotation error must not spread)
                t2 = _translation_from_points(Xs, _bearings(obs, Kinv), R)
                if t2 is not None:
                    err2 = _reprojection(Xs, obs, R, t2, K)
                    if len(err2) and (not len(err) or np.median(err2) < np.median(err)):
                        t, err = t2, err2
                scores.append(float(np.median(err)) if len(err) else 100.0)
                sigma_t = _translation_rel_sigma(Xs, _bearings(obs, Kinv), R, t)
            else:
                sigma_t = ref.sigma_tdir
            rows[i] = (R, t, n_pts, spread, err, sigma_t)
        score = float(np.mean(scores)) if scores else 100.0
        return score, j, len(pts3d), rows


# ---------------------------------------------------------------------- helpers


def _ambiguity(minima: Sequence[tuple[float, np.ndarray, np.ndarray]]) -> tuple[float, float, float]:
    """How ambiguous a pair is, from its refinement's local minima ``(robust cost, R, unit t)``.

    Returns ``(rot_deg, tdir_deg, gap)``: the largest rotation angle and translation-line angle
    (sign-free) between the best minimum and any minimum whose cost is within
    :data:`_NEAR_OPTIMAL` of it (0 when no other is), and the relative cost margin of the best
    over the cheapest minimum whose rotation differs by more than :data:`_DISTINCT_DEG`
    (clipped to 1; 1 when every start ends in the same solution). A pair whose data support two
    clearly different motions almost equally well is one whose error can be of that size.
    """
    best_cost, R_best, t_best = min(minima, key=lambda m: m[0])
    rot, tdir, other = 0.0, 0.0, np.inf
    for cost, R, t in minima:
        angle = float(np.degrees(np.linalg.norm(cv2.Rodrigues(R_best.T @ R)[0])))
        if cost <= best_cost * (1.0 + _NEAR_OPTIMAL):
            rot = max(rot, angle)
            tdir = max(tdir, float(np.degrees(np.arccos(min(abs(float(t_best @ t)), 1.0)))))
        if angle > _DISTINCT_DEG:
            other = min(other, cost)
    gap = 1.0 if not np.isfinite(other) else min((other - best_cost) / max(best_cost, 1e-12), 1.0)
    return rot, tdir, gap


def _sigma_cue(value: float, full: float) -> float:
    """A standard deviation as a cue: ``log1p(1000 value / full) / log1p(1000)`` (0 at 0, 1 at ``full``)."""
    if not np.isfinite(value):
        return 1.5
    return float(min(np.log1p(1000.0 * max(value, 0.0) / full) / np.log1p(1000.0), 1.5))


def _relative_pose_chart(R0: np.ndarray, t0: np.ndarray) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Local coordinates ``θ = (ω, β)`` (5) of a two-view pose around ``(R0, unit t0)``.

    ``θ -> (Exp(ω) R0, (t0 + B β) / |t0 + B β|)`` with ``B`` ``[3, 2]`` orthonormal and
    perpendicular to ``t0``: the rotation's left perturbation and the unit translation's tangent
    plane, the minimal parameters of an essential matrix.
    """
    basis = np.linalg.svd(t0[None, :])[2][1:].T

    def at(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = t0 + basis @ theta[3:]
        return cv2.Rodrigues(theta[:3])[0] @ R0, t / np.linalg.norm(t)

    return at


def _pair_sigmas(pair: _Pair, Kinv: np.ndarray, eps: float = 1e-6) -> tuple[float, float]:
    """First-order standard deviations (rad) of a pair's rotation and translation direction.

    Gauss-Newton covariance ``σ̂² (JᵀJ)⁻¹`` at the estimate: residuals are the inliers' signed
    Sampson errors of ``E = [t]x R`` in normalised coordinates (for rotation-only pairs the
    transfer errors of ``R``), ``σ̂`` their robust scale (1.4826 × median |r|, so the units
    cancel), ``J`` by central differences in the left perturbation ``Exp(ω) R`` (3) and two
    tangent coordinates of the unit ``t`` (2). Returns ``(sqrt(tr Σ_ω / 3), sqrt(tr Σ_t / 2))``;
    the translation σ is 0 for rotation-only pairs; a singular ``JᵀJ`` gives ``inf``.
    """
    assert pair.R is not None and pair.t is not None
    u0 = np.hstack([pair.p0, np.ones((len(pair.p0), 1))]) @ Kinv.T
    ui = np.hstack([pair.pi, np.ones((len(pair.pi), 1))]) @ Kinv.T
    R0, t0 = pair.R, pair.t
    if pair.rotation_only:
        n_par = 3

        def residual(theta: np.ndarray) -> np.ndarray:
            q = u0 @ (cv2.Rodrigues(theta[:3])[0] @ R0).T
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.nan_to_num((q[:, :2] / q[:, 2:3] - ui[:, :2]).ravel(), nan=0.0, posinf=0.0, neginf=0.0)

    else:
        n_par = 5
        model = _relative_pose_chart(R0, t0)

        def residual(theta: np.ndarray) -> np.ndarray:
            R, t = model(theta)
            return _sampson_normalised(_skew(t) @ R, u0, ui)

    r0 = residual(np.zeros(n_par))
    if len(r0) <= n_par:
        return float("inf"), float("inf")
    J = np.empty((len(r0), n_par))
    for k in range(n_par):
        d = np.zeros(n_par)
        d[k] = eps
        J[:, k] = (residual(d) - residual(-d)) / (2.0 * eps)
    sigma2 = (1.4826 * float(np.median(np.abs(r0)))) ** 2
    try:
        cov = sigma2 * np.linalg.inv(J.T @ J)
    except np.linalg.LinAlgError:
        return float("inf"), float("inf")
    diag = np.diag(cov)
    if not np.isfinite(diag).all() or (diag < 0).any():
        return float("inf"), float("inf")
    s_rot = float(np.sqrt(diag[:3].sum() / 3.0))
    s_t = float(np.sqrt(diag[3:].sum() / 2.0)) if n_par == 5 else 0.0
    return s_rot, s_t


def _translation_rel_sigma(X: np.ndarray, x: np.ndarray, R: np.ndarray, t: np.ndarray) -> float:
    """First-order σ of ``t`` in ``x ~ R X + t`` (bearings ``x``, ``R`` fixed), relative to ``|t|``.

    Least-squares covariance ``σ̂² (AᵀA)⁻¹`` of the linear system of
    :func:`_translation_from_points` at ``t``; ``σ̂²`` from the per-point residuals
    ``|[x]x (R X + t)|`` (2 degrees of freedom each) of the points within 3x their median.
    Returns ``sqrt(tr Σ_t) / |t|`` (``inf`` when undetermined).
    """
    S = _skews(x)  # [N, 3, 3]
    e = np.linalg.norm(np.einsum("nij,nj->ni", S, X @ R.T + t), axis=1)
    keep = e <= 3.0 * max(float(np.median(e)), 1e-12)
    if keep.sum() < 4 or np.linalg.norm(t) < 1e-12:
        return float("inf")
    A = S[keep].reshape(-1, 3)
    sigma2 = float(np.sum(e[keep] ** 2)) / max(2 * int(keep.sum()) - 3, 1)
    try:
        cov = sigma2 * np.linalg.inv(A.T @ A)
    except np.linalg.LinAlgError:
        return float("inf")
    tr = float(np.trace(cov))
    return float(np.sqrt(tr) / np.linalg.norm(t)) if np.isfinite(tr) and tr >= 0 else float("inf")


def _neighbour_cues(T: np.ndarray, valid: np.ndarray, t_valid: np.ndarray, feats: np.ndarray) -> None:
    """``rot_jerk`` / ``trans_jerk``: how far frame i's pose is from what its window neighbours predict.

    Keyframes are evenly spaced in time, so smooth motion puts ``R_0i`` near the geodesic
    midpoint of ``R_0,i-1`` and ``R_0,i+1`` (the last frame: extrapolated from the two before
    it); a frame whose two-view solution went wrong sits far from it. Rotation in degrees
    (``log1p(deg) / log1p(30)``), translation as the distance to the neighbours' midpoint
    (or extrapolation) over the window's mean translation length (clipped at 2, halved). 0 where
    the neighbours are not available (frame 0, invalid neighbours).
    """
    s = len(T)
    lengths = [np.linalg.norm(T[k, :3, 3]) for k in range(1, s) if valid[k] and t_valid[k]]
    mean_len = float(np.mean(lengths)) if lengths else 0.0
    for i in range(1, s):
        if not valid[i]:
            continue
        if i + 1 < s and valid[i + 1] and valid[i - 1]:
            a, b, w = i - 1, i + 1, 0.5
        elif i >= 2 and valid[i - 1] and valid[i - 2]:
            a, b, w = i - 2, i - 1, 2.0
        else:
            continue
        Ra, Rb = T[a, :3, :3], T[b, :3, :3]
        step = cv2.Rodrigues(Ra.T @ Rb)[0].ravel()
        R_pred = Ra @ cv2.Rodrigues(w * step)[0]
        ang = float(np.degrees(np.linalg.norm(cv2.Rodrigues(R_pred.T @ T[i, :3, :3])[0])))
        feats[i, _F["rot_jerk"]] = np.log1p(ang) / _LOG_DEG
        if mean_len > 0 and t_valid[i] and t_valid[a] and t_valid[b]:
            t_pred = T[a, :3, 3] + w * (T[b, :3, 3] - T[a, :3, 3])
            dev = float(np.linalg.norm(T[i, :3, 3] - t_pred)) / mean_len
            feats[i, _F["trans_jerk"]] = min(dev, 2.0) / 2.0


def _invert(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``T_0_i`` from ``x_i = R x_0 + t`` (camera i in camera 0)."""
    out = np.eye(4)
    out[:3, :3] = R.T
    out[:3, 3] = -R.T @ t
    return out


def _translation_from_points(X: np.ndarray, x: np.ndarray, R: np.ndarray, iters: int = 3) -> np.ndarray | None:
    """Least-squares ``t`` with ``x ~ R X + t`` (bearings ``x``, rotation fixed), trimmed twice.

    Each point gives ``[x]_x t = -[x]_x R X`` (two independent rows); points whose residual is
    above 3x the median are dropped before the next solve.
    """
    keep = np.ones(len(X), bool)
    RX = X @ R.T
    t = None
    for _ in range(iters):
        if keep.sum() < 4:
            return t
        S = _skews(x[keep])
        A = S.reshape(-1, 3)
        rhs = -np.einsum("nij,nj->ni", S, RX[keep]).reshape(-1)
        t, *_ = np.linalg.lstsq(A, rhs, rcond=None)
        res = np.linalg.norm(np.cross(x, RX + t), axis=1) / np.maximum(np.linalg.norm(RX + t, axis=1), 1e-12)
        keep = res <= 3.0 * max(float(np.median(res)), 1e-9)
    return t if t is not None and np.isfinite(t).all() else None


def _reprojection(X: np.ndarray, obs: np.ndarray, R: np.ndarray, t: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Finite reprojection errors (pixels) of camera-0 points ``X`` in a camera ``x = R X + t``."""
    proj = (X @ R.T + t) @ K.T
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.linalg.norm(proj[:, :2] / proj[:, 2:3] - obs, axis=1)
    return err[np.isfinite(err)]


def _bearings(px: np.ndarray, Kinv: np.ndarray) -> np.ndarray:
    h = np.hstack([px, np.ones((len(px), 1))]) @ Kinv.T
    return h / np.linalg.norm(h, axis=1, keepdims=True)


def _parallax(p0: np.ndarray, pi: np.ndarray, R: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Rotation-compensated displacement (pixels): |x_i - H_inf x_0| with ``H_inf = K R K^-1``."""
    H = K @ R @ np.linalg.inv(K)
    q = np.hstack([p0, np.ones((len(p0), 1))]) @ H.T
    with np.errstate(divide="ignore", invalid="ignore"):
        q = q[:, :2] / q[:, 2:3]
    d = np.linalg.norm(pi - q, axis=1)
    return np.where(np.isfinite(d), d, 1e3)


def _rotation_from_homography(H: np.ndarray, K: np.ndarray, tol: float = 0.05) -> np.ndarray | None:
    """``R`` with ``H ~ K R K^-1`` when ``H`` is (close to) a pure rotation, else None."""
    M = np.linalg.inv(K) @ H @ K
    det = np.linalg.det(M)
    if not np.isfinite(det) or det <= 0:
        return None
    M = M / np.cbrt(det)
    U, S, Vt = np.linalg.svd(M)
    if np.max(np.abs(S - 1.0)) > tol:
        return None
    R = U @ Vt
    return R if np.linalg.det(R) > 0 else None


def _skew(v: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


def _skews(v: np.ndarray) -> np.ndarray:
    """``[N, 3, 3]`` cross-product matrices of the rows of ``v`` ``[N, 3]``."""
    out = np.zeros((len(v), 3, 3))
    out[:, 0, 1], out[:, 0, 2], out[:, 1, 2] = -v[:, 2], v[:, 1], -v[:, 0]
    out[:, 1, 0], out[:, 2, 0], out[:, 2, 1] = v[:, 2], -v[:, 1], v[:, 0]
    return out


def _sampson_normalised(E: np.ndarray, u0: np.ndarray, ui: np.ndarray) -> np.ndarray:
    """Signed Sampson errors of homogeneous normalised points ``ui^T E u0 = 0`` (normalised units)."""
    Eu0, Etui = u0 @ E.T, ui @ E
    den = Eu0[:, 0] ** 2 + Eu0[:, 1] ** 2 + Etui[:, 0] ** 2 + Etui[:, 1] ** 2
    return np.sum(ui * Eu0, axis=1) / np.sqrt(np.maximum(den, 1e-24))


def _sampson(F: np.ndarray, p0: np.ndarray, pi: np.ndarray) -> np.ndarray:
    """Sampson distance (pixels) of correspondences to ``x_i^T F x_0 = 0``."""
    x0 = np.hstack([p0, np.ones((len(p0), 1))])
    xi = np.hstack([pi, np.ones((len(pi), 1))])
    Fx0 = x0 @ F.T
    Ftxi = xi @ F
    num = np.sum(xi * Fx0, axis=1) ** 2
    den = Fx0[:, 0] ** 2 + Fx0[:, 1] ** 2 + Ftxi[:, 0] ** 2 + Ftxi[:, 1] ** 2
    return np.sqrt(num / np.maximum(den, 1e-18))


def _cell_fraction(px: np.ndarray, w: int, h: int, cells: int = 4) -> float:
    cx = np.clip((px[:, 0] * cells / w).astype(int), 0, cells - 1)
    cy = np.clip((px[:, 1] * cells / h).astype(int), 0, cells - 1)
    return len(set(zip(cx.tolist(), cy.tolist()))) / float(cells * cells)


@register_backbone("geometric")
def build_geometric(spec: BackboneSpec, device: Any = None, dtype: Any = None) -> GeometricBackbone:
    """The ``geometric`` backbone with default :class:`GeometricConfig` (``spec.weights``, device and
    dtype do not apply: it has no weights and runs on the CPU with OpenCV)."""
    del device, dtype
    if spec.name != "geometric":
        raise ConfigError(f"build_geometric called for backbone {spec.name!r}")
    return GeometricBackbone()
