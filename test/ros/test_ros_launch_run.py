"""The node as a ROS user runs it: a colcon-style install started with a real ``ros2 launch``.

``ros2 launch`` comes from ``../shared/ros2_launch`` (launch, launch_ros and ros2cli built
from their sources; ``make test`` installs them into .venv). The package is installed the way
colcon's ament_python build does it (``setup.py install --prefix``, scripts under
``lib/<package>``) and found through ``AMENT_PREFIX_PATH``, so the launch file takes its
``launch_ros`` ``Node`` branch. A terminal's Ctrl-C is SIGINT to the whole process group:
``ros2 launch`` and the node both receive it (and launch forwards another one).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np
import pytest
from node_process import Driver, domain_id, ros_env, textured_frames, write_params

from vggt_uncertainty_ros.ros.conversions import rgb_to_image_msg, stamp_to_ns

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "vggt_uncertainty_ros"
SOURCES = ("setup.py", "setup.cfg", "package.xml", "resource", "launch", "config", PACKAGE)
ROS2 = Path(sys.executable).parent / "ros2"
T0_NS = 1_700_000_000 * 1_000_000_000
DT_NS = 100_000_000
ORIGIN_SIGMA_TRANS = 0.004
#: log lines that mark the node's phases: imports, model loaded, spinning
PHASES = ("starting (signal handlers installed)", "loaded VGGT backbone", "ready:")


@pytest.fixture(scope="module")
def install(tmp_path_factory) -> dict[str, str]:
    """A colcon-style install of the package; returns the environment that finds it."""
    if not ROS2.is_file():
        pytest.fail(f"{ROS2} missing: run `bash ../shared/ros2_launch/install.sh .venv` (make test does)")
    tmp = tmp_path_factory.mktemp("colcon_launch")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    prefix = tmp / "install"
    result = subprocess.run(
        [sys.executable, "setup.py", "install", f"--prefix={prefix}", "--single-version-externally-managed",
         f"--record={tmp / 'record.txt'}"],
        check=False, cwd=src, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    site = sysconfig.get_path("purelib", vars={"base": str(prefix), "platbase": str(prefix)})
    path = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    return {"AMENT_PREFIX_PATH": str(prefix), "PYTHONPATH": site, "PATH": path}


def _launch(install: dict[str, str], env: dict[str, str], log_path: Path, *args: str) -> subprocess.Popen:
    """``ros2 launch vggt_uncertainty_ros node.launch.py ARGS`` in a process group of its own."""
    full_env = {**env, **install}
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [str(ROS2), "launch", PACKAGE, "node.launch.py", *args],
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal gives it
        )


def _wait_for_line(log_path: Path, text: str, proc: subprocess.Popen, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in log_path.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"no {text!r} in the launch output:\n{log_path.read_text(errors='replace')[-3000:]}")
        time.sleep(0.02)


def _ctrl_c(proc: subprocess.Popen, log_path: Path) -> float:
    """SIGINT to the whole process group; asserts a clean exit 0 of launch and node, returns seconds."""
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    try:
        code = proc.wait(10.0)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        code = None
    waited = time.monotonic() - t0
    log = log_path.read_text(errors="replace")
    assert code == 0, f"ros2 launch exited {code}\n{log[-3000:]}"
    if "Unknown child process pid" in log:
        # launch's asyncio child watcher lost the exit status of a node that exited within
        # milliseconds of the signal (it then reports "exit code 255" whatever the code was): a
        # race inside launch. The node's own log must show its clean shutdown instead.
        assert "shutdown by SIGINT" in log, log[-3000:]
    else:
        assert "process has finished cleanly" in log and "process has died" not in log, log[-3000:]
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log[-3000:]
    return waited


@pytest.mark.slow
def test_launch_with_a_params_file_and_a_namespace_images_in_poses_out(install, tmp_path):
    domain = domain_id(offset=41)
    env = ros_env(tmp_path / "ros_log", domain)
    params = write_params(
        tmp_path / "params.yaml",
        **{"backbone.device": "cpu"},
        window_size=2,
        window_stride=1,
        image_qos="reliable",
        base_frame="base_robot1",  # default base_link: the odometry's child frame shows the file was read
        origin_sigma_trans=ORIGIN_SIGMA_TRANS,
    )
    log_path = tmp_path / "launch.log"
    proc = _launch(install, env, log_path, f"params_file:={params}", "namespace:=robot1")
    driver = Driver(domain, prefix="/robot1/vggt_uncertainty_node", image_topic="/robot1/image")
    try:
        driver.wait_for_subscriber(90.0)
        frames = textured_frames(3, 48, 64, seed=2)
        for k, frame in enumerate(frames):
            driver.image_pub.publish(rgb_to_image_msg(frame, "rgb8", T0_NS + k * DT_NS, "cam"))
        driver.wait_for(lambda: len(driver.poses) == 3 and len(driver.odometry) == 2, 60.0, "poses and odometry")
        waited = _ctrl_c(proc, log_path)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        driver.close()
    assert waited < 5.0
    assert [stamp_to_ns(p.header.stamp) for p in driver.poses] == [T0_NS + k * DT_NS for k in range(3)]
    assert {o.child_frame_id for o in driver.odometry} == {"base_robot1"}
    first = np.asarray(driver.poses[0].pose.covariance).reshape(6, 6)
    np.testing.assert_allclose(np.diag(first)[:3], ORIGIN_SIGMA_TRANS**2, rtol=1e-9)
    driver.assert_covariances_spd()


@pytest.mark.slow
def test_ctrl_c_to_the_process_group_ten_times_in_a_row_exits_zero(install, tmp_path):
    """Ten launches, each stopped by SIGINT to its process group: during imports, right after the
    model loaded, or while spinning (in turn)."""
    env = ros_env(tmp_path / "ros_log", domain_id(offset=43))
    params = write_params(tmp_path / "params.yaml", **{"backbone.device": "cpu"}, window_size=2, window_stride=1)
    for run in range(10):
        log_path = tmp_path / f"launch_{run}.log"
        proc = _launch(install, env, log_path, f"params_file:={params}", "namespace:=robot1")
        try:
            _wait_for_line(log_path, PHASES[run % len(PHASES)], proc)
            waited = _ctrl_c(proc, log_path)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        assert waited < 5.0, f"run {run}: {waited:.1f} s"


@pytest.mark.slow
def test_pip_branch_without_ament_prefix_path_and_an_absolute_namespace(install, tmp_path):
    """The launch file by path, no ament index: ExecuteProcess of the script on PATH, ``/robot1``."""
    env = ros_env(tmp_path / "ros_log", domain_id(offset=47))
    env.pop("AMENT_PREFIX_PATH", None)
    params = write_params(tmp_path / "params.yaml", **{"backbone.device": "cpu"}, window_size=2, window_stride=1)
    prefix = Path(install["AMENT_PREFIX_PATH"])
    pip_env = {
        "PYTHONPATH": install["PYTHONPATH"],
        "PATH": f"{prefix / 'lib' / PACKAGE}:{install['PATH']}",  # the node's script, as pip puts it on PATH
    }
    launch_file = prefix / "share" / PACKAGE / "launch" / "node.launch.py"
    log_path = tmp_path / "launch.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(ROS2), "launch", str(launch_file), f"params_file:={params}", "namespace:=/robot1"],
            env={**env, **pip_env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_for_line(log_path, "[robot1.vggt_uncertainty_node]: ready:", proc)
        waited = _ctrl_c(proc, log_path)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert waited < 5.0
