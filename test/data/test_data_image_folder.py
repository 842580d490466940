"""A folder of stamp-named images: stamp order, exact pixels, ground truth, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vggt_uncertainty_ros.data import ImageFolderReader, open_sequence, synth
from vggt_uncertainty_ros.errors import DataError


def _image(k: int) -> np.ndarray:
    rng = np.random.default_rng(k)
    return rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)


def test_frames_come_in_stamp_order_with_exact_pixels(tmp_path: Path) -> None:
    names = ["10.000000", "9.500000", "9.966666666", "100.25"]  # name order != stamp order
    for k, name in enumerate(names):
        Image.fromarray(_image(k)).save(tmp_path / f"{name}.png")
    (tmp_path / "notes.txt").write_text("not an image\n")
    with open_sequence(tmp_path) as reader:
        assert isinstance(reader, ImageFolderReader) and reader.n_frames == 4
        frames = list(reader.frames())
        assert reader.warnings.as_dict() == {}
    assert [f.stamp_ns for f in frames] == [9_500_000_000, 9_966_666_666, 10_000_000_000, 100_250_000_000]
    assert [f.index for f in frames] == [0, 1, 2, 3]
    for frame, k in zip(frames, [1, 2, 0, 3]):
        np.testing.assert_array_equal(frame.image, _image(k))
        assert frame.depth is None and frame.T_world_cam is None


def test_tum_rgb_folder_reads_with_the_tum_ground_truth(tmp_path: Path) -> None:
    seq = synth.generate(tmp_path, 11, 5, formats=("tum",), width=32, height=24).paths["tum"]
    with open_sequence(seq) as tum:
        expected = list(tum.frames())
    with open_sequence(seq / "rgb", seq / "groundtruth.txt") as folder:
        got = list(folder.frames())
    assert [f.stamp_ns for f in got] == [f.stamp_ns for f in expected]
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.T_world_cam, b.T_world_cam)


def test_bad_names_depth_and_repeated_stamps(tmp_path: Path) -> None:
    Image.fromarray(_image(0)).save(tmp_path / "1.5.png")
    Image.fromarray(_image(1)).save(tmp_path / "1.500.jpg")  # same stamp, another file: kept, counted
    with open_sequence(tmp_path) as reader:
        assert len(list(reader.frames())) == 2
        assert reader.warnings.as_dict() == {"duplicate_stamps": 1}
    with pytest.raises(DataError, match="image folder has no depth"):
        open_sequence(tmp_path, with_depth=True)
    Image.fromarray(_image(2)).save(tmp_path / "frame_0003.png")
    with pytest.raises(DataError, match=r"frame_0003\.png: images of a folder without rgb\.txt must be named"):
        open_sequence(tmp_path).open()
