"""How much of a recording an evaluation rests on: the report's ``coverage`` section.

An evaluation over a handful of frames can look better than one over the whole recording;
the report says what share of the recording it covers and warns below these thresholds:

* ``MIN_FRAME_FRACTION`` (0.5): evaluated frames (unique stamps with a residual) against the
  frames that have ground truth, and against the image frames when they were read;
* ``MIN_SPAN_FRACTION`` (0.5): time span from the first to the last evaluated frame against
  the ground truth's span (or the images' when there is no ground-truth span);
* ``MIN_ATE_POSES`` (20): poses with both an estimate and ground truth behind the ATE/RPE;
  fewer and ``trajectory.ate_reliable`` is false.

Warnings are counted in the report's ``warnings`` (``low_frame_coverage``,
``low_span_coverage``, ``ate_few_poses``), so ``report.md`` never says "none" over such a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vggt_uncertainty_ros.data.types import WarningCounter

__all__ = ["MIN_ATE_POSES", "MIN_FRAME_FRACTION", "MIN_SPAN_FRACTION", "StampSpan", "coverage_section"]

MIN_FRAME_FRACTION = 0.5
MIN_SPAN_FRACTION = 0.5
MIN_ATE_POSES = 20


@dataclass
class StampSpan:
    """Count and first/last stamp (ns) of a set of frames, filled one frame at a time."""

    n: int = 0
    first_ns: int | None = None
    last_ns: int | None = None

    def add(self, stamp_ns: int) -> None:
        """Count one frame."""
        self.n += 1
        self.first_ns = stamp_ns if self.first_ns is None else min(self.first_ns, stamp_ns)
        self.last_ns = stamp_ns if self.last_ns is None else max(self.last_ns, stamp_ns)

    @classmethod
    def of(cls, stamps_ns: np.ndarray) -> StampSpan:
        """The span of an array of stamps."""
        stamps = np.asarray(stamps_ns, dtype=np.int64).reshape(-1)
        if stamps.size == 0:
            return cls()
        return cls(int(stamps.size), int(stamps.min()), int(stamps.max()))

    @property
    def seconds(self) -> float | None:
        """Last minus first stamp, seconds (None when empty)."""
        if self.first_ns is None or self.last_ns is None:
            return None
        return (self.last_ns - self.first_ns) * 1e-9


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b <= 0:
        return None
    return float(a) / float(b)


def coverage_section(
    evaluated_stamps_ns: np.ndarray,
    images: StampSpan | None,
    ground_truth: StampSpan | None,
    n_ate_poses: int | None,
    warnings: WarningCounter,
    *,
    ground_truth_is_trajectory: bool = False,
) -> dict[str, Any]:
    """The report's ``coverage`` section; adds a warning per threshold not met.

    Args:
        evaluated_stamps_ns: stamps of the frames with a residual (repeats allowed).
        images: the image frames read (None when the source did not read images).
        ground_truth: the frames (or trajectory poses) with ground truth (None if unknown).
        n_ate_poses: poses with an estimate and ground truth behind ATE/RPE (None: no
            trajectory was built, nothing to flag).
        warnings: the report's warning counter.
        ground_truth_is_trajectory: the ground truth is a trajectory file (``--gt``) at its own
            rate, not one pose per image: only its time span is compared.

    Returns:
        Counts, fractions (None where the reference is unknown), spans in seconds, the
        thresholds, and ``ok``: whether every threshold was met.
    """
    evaluated = StampSpan.of(np.unique(np.asarray(evaluated_stamps_ns, dtype=np.int64)))
    reference_span = ground_truth if ground_truth is not None and ground_truth.seconds else images
    out: dict[str, Any] = {
        "n_evaluated_frames": evaluated.n,
        "n_image_frames": images.n if images is not None else None,
        "n_ground_truth_frames": ground_truth.n if ground_truth is not None else None,
        "fraction_of_ground_truth_frames": (
            None if ground_truth_is_trajectory else _ratio(evaluated.n, ground_truth.n if ground_truth else None)
        ),
        "fraction_of_image_frames": _ratio(evaluated.n, images.n if images else None),
        "span_s": evaluated.seconds,
        "reference_span_s": reference_span.seconds if reference_span is not None else None,
        "fraction_of_span": _ratio(evaluated.seconds, reference_span.seconds if reference_span else None),
        "n_ate_poses": n_ate_poses,
        "thresholds": {
            "min_frame_fraction": MIN_FRAME_FRACTION,
            "min_span_fraction": MIN_SPAN_FRACTION,
            "min_ate_poses": MIN_ATE_POSES,
        },
    }
    ok = True
    for key in ("fraction_of_ground_truth_frames", "fraction_of_image_frames"):
        value = out[key]
        if value is not None and value < MIN_FRAME_FRACTION:
            ok = False
            warnings.add(
                "low_frame_coverage",
                f"{evaluated.n} evaluated frames are {value:.0%} of the {key.removeprefix('fraction_of_')} "
                f"(< {MIN_FRAME_FRACTION:.0%})",
            )
    span = out["fraction_of_span"]
    if span is not None and span < MIN_SPAN_FRACTION:
        ok = False
        warnings.add(
            "low_span_coverage", f"evaluated frames span {span:.0%} of the recording (< {MIN_SPAN_FRACTION:.0%})"
        )
    if n_ate_poses is not None and n_ate_poses < MIN_ATE_POSES:
        ok = False
        warnings.add("ate_few_poses", f"ATE/RPE rest on {n_ate_poses} poses (< {MIN_ATE_POSES}): not reliable")
    out["ok"] = ok
    return out
