"""``open_sequence``: the one way to open any sequence (TUM folder, ROS 1/ROS 2 bag, image folder).

The trainer, the evaluator, the benchmarks and the demo read sequences through it; bag-level
access (raw messages of any topic, e.g. the node's recorded poses or a replay) goes through
:class:`~vggt_uncertainty_ros.data.readers.bag.BagFile`.
"""

from __future__ import annotations

from pathlib import Path

from vggt_uncertainty_ros.data.groundtruth import GtMode
from vggt_uncertainty_ros.data.layout import DEFAULT_DEPTH_TOPIC, DEFAULT_IMAGE_TOPIC, TUM_FRAMES
from vggt_uncertainty_ros.data.readers.bag import BagReader, is_bag_path
from vggt_uncertainty_ros.data.readers.base import SequenceReader
from vggt_uncertainty_ros.data.readers.image_folder import ImageFolderReader, image_files
from vggt_uncertainty_ros.data.readers.tum_folder import TumFolderReader
from vggt_uncertainty_ros.errors import DataError

__all__ = ["open_sequence"]


def open_sequence(
    path: str | Path,
    gt_path: str | Path | None = None,
    *,
    image_topic: str = DEFAULT_IMAGE_TOPIC,
    depth_topic: str = DEFAULT_DEPTH_TOPIC,
    with_depth: bool = False,
    gt_mode: GtMode | str = GtMode.INTERPOLATE,
    max_dt_s: float = 0.02,
    world_frame: str = TUM_FRAMES["world"],
    camera_frame: str | None = None,
) -> SequenceReader:
    """Open a sequence, detecting its kind from the path.

    * a folder with ``rgb.txt``: TUM RGB-D folder (ground truth from ``groundtruth.txt``);
    * a ``.bag`` file: ROS 1 bag; a folder with ``metadata.yaml``, a ``.mcap`` or ``.db3``
      file: ROS 2 bag. Ground truth comes from ``/tf`` (``world_frame`` -> ... ->
      ``camera_frame``, default the image's ``header.frame_id``);
    * any other folder holding ``.png``/``.jpg`` images named by their stamp in seconds: image
      folder (no depth; ground truth from ``gt_path`` or the folder's ``groundtruth.txt``).

    Args:
        path: The sequence.
        gt_path: A TUM trajectory file that overrides the built-in ground truth.
        image_topic: RGB topic of a bag.
        depth_topic: Depth topic of a bag (used when ``with_depth``).
        with_depth: Attach associated depth (metres, NaN = missing) to each frame (not for an
            image folder).
        gt_mode: Ground-truth lookup, see :class:`GtMode`.
        max_dt_s: Association threshold, seconds.
        world_frame: Fixed frame of the ground truth in ``/tf`` (bags only).
        camera_frame: Camera frame whose pose is ground truth (bags only).

    Returns:
        An unopened :class:`SequenceReader`; use it in a ``with`` block.

    Raises:
        DataError: The path does not exist or its kind is not recognised. Files that cannot be
            read raise it too, from ``with`` (opening) or from ``frames()`` (a corrupt or
            truncated record; the message names the file and the message index).
    """
    p = Path(path)
    gt = Path(gt_path) if gt_path is not None else None
    if not p.exists():
        raise DataError(f"sequence {p} does not exist")
    if p.is_dir() and (p / "rgb.txt").is_file():
        return TumFolderReader(p, gt, with_depth=with_depth, gt_mode=gt_mode, max_dt_s=max_dt_s)
    if is_bag_path(p):
        return BagReader(
            p,
            gt,
            image_topic=image_topic,
            depth_topic=depth_topic,
            with_depth=with_depth,
            gt_mode=gt_mode,
            max_dt_s=max_dt_s,
            world_frame=world_frame,
            camera_frame=camera_frame,
        )
    if p.is_dir() and image_files(p):
        if with_depth:
            raise DataError(f"{p}: an image folder has no depth; use a TUM folder (rgb.txt, depth.txt) or a bag")
        return ImageFolderReader(p, gt, gt_mode=gt_mode, max_dt_s=max_dt_s)
    raise DataError(
        f"{p}: not a recognised sequence (expected a TUM folder with rgb.txt, a ROS 1 .bag, "
        "a ROS 2 bag directory with metadata.yaml, a .mcap/.db3 file, or a folder of images named by stamp)"
    )
