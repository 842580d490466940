"""Exception hierarchy.

Every error the package raises on purpose derives from :class:`VggtUncertaintyError`,
so front ends can turn them into one log line and exit status 1. Third-party errors
are wrapped with ``raise ... from err`` so their cause stays visible.
"""

from __future__ import annotations


class VggtUncertaintyError(Exception):
    """Root of all errors raised on purpose by this package."""


class ConfigError(VggtUncertaintyError):
    """A configuration file, key, value or command-line override is invalid."""


class GeometryError(VggtUncertaintyError):
    """Input to a geometry routine has the wrong shape or is not a valid pose/covariance."""


class CalibrationError(VggtUncertaintyError):
    """Input to a calibration metric is inconsistent (shapes, non-positive variances)."""


class DataError(VggtUncertaintyError):
    """A dataset, bag or file could not be read or is malformed."""


class MalformedLineError(DataError):
    """A text file (TUM trajectory, rgb.txt, ...) has a line that cannot be parsed."""


class TopicNotFoundError(DataError):
    """A bag lacks a requested topic; the message lists the topics it has."""


class StampOrderError(DataError):
    """Stamps are out of order or duplicated where strict order is required."""


class ImageEncodingError(DataError):
    """A ``sensor_msgs/Image`` has an unsupported encoding or inconsistent size/step."""


class CheckpointError(VggtUncertaintyError):
    """A checkpoint file is missing, truncated or does not match the model."""


class ModelError(VggtUncertaintyError):
    """A model was used with inputs it cannot handle (shape, dtype, device)."""


class InvalidWindowError(ModelError):
    """The images of a window are empty, of mixed sizes or not H×W×3 uint8."""


class NonFiniteOutputError(ModelError):
    """The backbone or the head produced NaN/Inf; the window should be skipped."""


class EvaluationError(VggtUncertaintyError):
    """The evaluator could not produce a result (e.g. no window could be evaluated)."""
