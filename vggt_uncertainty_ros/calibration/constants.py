"""Bounds of the uncertainty head's parameterisation, shared by the head (torch) and the
calibration metrics (numpy); this module imports nothing so both layers can use it.

Component order of every 6-vector: ``[rot (3), trans (3)]`` (docs/ARCHITECTURE.md, "The residual").
"""

from __future__ import annotations

__all__ = ["BLOCKS", "LOG_VAR_BOUNDS", "SQRT_INFO_EPS", "SQRT_INFO_MAX"]

BLOCKS: tuple[str, str] = ("rot", "trans")
"""Block names, in residual order: rotation = components 0..2, translation = 3..5."""

LOG_VAR_BOUNDS: tuple[float, float] = (-20.0, 20.0)
"""Clamp of ``log σ²`` output by the head (both parameterizations end up inside it)."""

SQRT_INFO_MAX: tuple[float, float] = (200.0, 100.0)
"""Upper clamps of √λ = 1/σ of the ``sqrt_info`` parameterization: (rotation rad⁻¹, translation unit⁻¹)."""

SQRT_INFO_EPS = 1e-4
"""Added to ``softplus`` in the ``sqrt_info`` parameterization so √λ stays strictly positive."""
