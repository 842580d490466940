"""``image_transport: compressed``: JPEG/PNG ``CompressedImage`` input (separate node process)."""

from __future__ import annotations

import io
import signal

import numpy as np
import pytest
from node_process import RELIABLE, Driver, domain_id, ros_env, start_node, stop_node, textured_frames, write_params
from PIL import Image as PILImage
from sensor_msgs.msg import CompressedImage

from vggt_uncertainty_ros.errors import ImageEncodingError
from vggt_uncertainty_ros.ros.conversions import compressed_image_to_rgb, rgb_to_compressed_msg, stamp_to_ns

T0_NS = 1_700_000_000 * 1_000_000_000
DT_NS = 100_000_000


def test_png_decodes_exactly_and_jpeg_closely():
    frame = textured_frames(1, 48, 64, seed=4)[0]
    png = rgb_to_compressed_msg(frame, "png", T0_NS, "cam")
    assert png.format == "rgb8; png compressed rgb8"
    np.testing.assert_array_equal(compressed_image_to_rgb(png), frame)
    jpeg_msg = rgb_to_compressed_msg(frame, "jpeg", T0_NS, "cam")
    jpeg = compressed_image_to_rgb(jpeg_msg)
    assert jpeg.shape == frame.shape and jpeg.dtype == np.uint8
    with PILImage.open(io.BytesIO(bytes(jpeg_msg.data))) as img:  # lossy: the codec's own decode
        np.testing.assert_array_equal(jpeg, np.asarray(img.convert("RGB")))
    grey = io.BytesIO()
    PILImage.fromarray(frame[..., 0]).save(grey, format="PNG")
    mono = compressed_image_to_rgb(CompressedImage(format="mono8; png compressed mono8", data=grey.getvalue()))
    np.testing.assert_array_equal(mono, np.repeat(frame[..., :1], 3, axis=2))


@pytest.mark.parametrize(
    ("msg", "match"),
    [
        (CompressedImage(format="jpeg", data=b"not an image at all"), "cannot decode"),
        (CompressedImage(format="16UC1; compressedDepth png", data=b"\0" * 20), "depth"),
    ],
)
def test_bad_compressed_images_raise_a_clear_error(msg, match):
    with pytest.raises(ImageEncodingError, match=match):
        compressed_image_to_rgb(msg)


@pytest.mark.slow
def test_the_node_takes_compressed_images_on_the_image_transport_topic(tmp_path):
    domain = domain_id(offset=29)
    env = ros_env(tmp_path / "ros_log", domain)
    params = write_params(
        tmp_path / "params.yaml",
        **{"backbone.device": "cpu"},
        window_size=2,
        window_stride=1,
        image_qos="reliable",
        image_transport="compressed",
        diagnostics_period_s=0.2,
    )
    log_path = tmp_path / "node.log"
    # image_transport naming: the remapped base topic + "/compressed"
    proc = start_node(params, env, log_path, ("-r", "image:=/cam/image_raw"))
    driver = Driver(domain)
    pub = driver.node.create_publisher(CompressedImage, "/cam/image_raw/compressed", RELIABLE)
    frames = textured_frames(3, 48, 64, seed=8)
    try:
        driver.wait_for(lambda: pub.get_subscription_count() > 0, 90.0, "the node's compressed subscription")
        for k, (frame, fmt) in enumerate(zip(frames, ("png", "jpeg", "png"), strict=True)):
            pub.publish(rgb_to_compressed_msg(frame, fmt, T0_NS + k * DT_NS, "cam"))
        pub.publish(CompressedImage(format="jpeg", data=b"garbage"))
        pub.publish(CompressedImage(format="jpeg", data=b""))
        driver.wait_for(lambda: len(driver.poses) == 3, 60.0, "a pose per image")
        v = driver.wait_diag(lambda v: int(v.get("images_received", 0)) == 5, 30.0, "every image counted")
        code, waited = stop_node(proc, signal.SIGINT, 5.0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        driver.close()
    log = log_path.read_text(errors="replace")
    assert [stamp_to_ns(p.header.stamp) for p in driver.poses] == [T0_NS + k * DT_NS for k in range(3)]
    assert int(v["images_rejected/decode_error"]) == 1 and int(v["images_rejected/size_mismatch"]) == 1
    assert int(v["images_rejected"]) == 2
    assert "images compressed on /cam/image_raw/compressed" in log
    assert code == 0 and waited < 5.0, log[-3000:]
    driver.assert_covariances_spd()
