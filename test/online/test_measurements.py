import pytest

from vggt_uncertainty_ros.errors import DataError
from vggt_uncertainty_ros.online.measurements import format_anchor_frame_id, parse_anchor_frame_id


@pytest.mark.parametrize("stamp", [0, 1, 999_999_999, 1_305_031_102_175_304_000])
def test_anchor_frame_id_round_trip(stamp):
    fid = format_anchor_frame_id("cam@rig/optical", stamp)
    assert parse_anchor_frame_id(fid) == ("cam@rig/optical", stamp)


def test_anchor_frame_id_example():
    assert format_anchor_frame_id("camera_optical", 1_305_031_102_175_304_000) == "camera_optical@1305031102.175304000"


@pytest.mark.parametrize("bad", ["camera_optical", "camera@12.5", "@1.000000000", "cam@x.000000000"])
def test_anchor_frame_id_rejects(bad):
    with pytest.raises(DataError, match="anchored camera frame"):
        parse_anchor_frame_id(bad)
