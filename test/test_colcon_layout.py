"""The colcon (ament_python) install layout, reproduced without colcon.

colcon's ament_python build runs setuptools with the package's ``setup.cfg``
(``[install] install_scripts=$base/lib/vggt_uncertainty_ros``). This module does the same on
a copy of the package sources in a temporary folder (nothing is written into the checkout):
``setup.py install --prefix <tmp>/install --single-version-externally-managed --record ...``.
It then checks the layout ``ros2 run``/``ros2 launch`` rely on, starts the installed
executable with the installed parameter file, and resolves the launch file's default
parameter file through the real ament index.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "vggt_uncertainty_ros"
#: what a colcon build needs from the source tree
SOURCES = ("setup.py", "setup.cfg", "package.xml", "resource", "launch", "config", PACKAGE)


@dataclass(frozen=True)
class Install:
    prefix: Path
    site_packages: Path

    @property
    def share(self) -> Path:
        return self.prefix / "share" / PACKAGE


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Install:
    tmp = tmp_path_factory.mktemp("colcon")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    prefix = tmp / "install"
    cmd = [sys.executable, "setup.py", "install", f"--prefix={prefix}", "--single-version-externally-managed"]
    result = subprocess.run(
        [*cmd, f"--record={tmp / 'install_manifest.txt'}"],
        check=False,
        cwd=src,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    purelib = sysconfig.get_path("purelib", vars={"base": str(prefix), "platbase": str(prefix)})
    return Install(prefix, Path(purelib))


def test_layout_matches_what_ros2_run_and_launch_expect(installed):
    executable = installed.prefix / "lib" / PACKAGE / "vggt_uncertainty_node"
    assert executable.is_file() and os.access(executable, os.X_OK)
    assert (installed.prefix / "share" / "ament_index" / "resource_index" / "packages" / PACKAGE).is_file()
    assert (installed.share / "package.xml").read_text() == (ROOT / "package.xml").read_text()
    assert (installed.share / "launch" / "node.launch.py").is_file()
    assert (installed.share / "config" / "params.yaml").read_text() == (ROOT / "config" / "params.yaml").read_text()
    assert (installed.share / "config" / "fastdds_large_shm.xml").is_file()
    assert (installed.site_packages / PACKAGE / "ros" / "node.py").is_file()
    assert not (installed.prefix / "bin").exists(), "setup.cfg must send scripts to lib/<package>, not bin/"


def _env(installed: Install, tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    env.update(
        PYTHONPATH=os.pathsep.join(p for p in (str(installed.site_packages), env.get("PYTHONPATH")) if p),
        AMENT_PREFIX_PATH=os.pathsep.join(p for p in (str(installed.prefix), env.get("AMENT_PREFIX_PATH")) if p),
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        ROS_DOMAIN_ID=str(1 + (os.getpid() * 7 + 97) % 100),
        ROS_LOG_DIR=str(tmp_path / "ros_log"),
        PYTHONUNBUFFERED="1",
    )
    return env


def test_installed_executable_runs_the_installed_copy_and_exits_zero_on_sigint(installed, tmp_path):
    env = _env(installed, tmp_path)
    where = subprocess.run(
        [sys.executable, "-c", f"import {PACKAGE}; print({PACKAGE}.__file__)"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(installed.site_packages), f"imports {where}, not the installed copy"

    params = installed.share / "config" / "params.yaml"
    executable = installed.prefix / "lib" / PACKAGE / "vggt_uncertainty_node"
    log_path = tmp_path / "node.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(executable), "--ros-args", "--params-file", str(params), "-p", "backbone.device:=cpu"],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 90.0
        while "ready: window 8/stride 4" not in log_path.read_text(errors="replace"):
            assert proc.poll() is None, f"node exited with {proc.returncode}:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"node not ready after 90 s:\n{log_path.read_text()}"
            time.sleep(0.1)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(5.0)
        waited = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = log_path.read_text(errors="replace")
    assert code == 0 and waited < 5.0, f"exit {code} after {waited:.1f} s\n{log}"
    assert "device cpu" in log and "backbone vggt 'tiny'" in log and "unknown parameter" not in log, log


@pytest.fixture
def stub_launch(monkeypatch):
    """Stand-ins for ``launch``/``launch_ros`` (not on PyPI) that keep their constructor arguments."""

    def recorder(name: str) -> type:
        def init(self, *args, **kwargs):
            self.args, self.kwargs = args, kwargs

        return type(name, (), {"__init__": init})

    classes = {
        n: recorder(n) for n in ("LaunchDescription", "DeclareLaunchArgument", "ExecuteProcess", "OpaqueFunction")
    }
    classes.update({n: recorder(n) for n in ("LaunchConfiguration", "Node")})
    modules = {
        "launch": ["LaunchDescription"],
        "launch.actions": ["DeclareLaunchArgument", "ExecuteProcess", "OpaqueFunction"],
        "launch.substitutions": ["LaunchConfiguration"],
        "launch_ros": [],
        "launch_ros.actions": ["Node"],
    }
    for name, attrs in modules.items():
        module = types.ModuleType(name)
        module.__dict__.update({a: classes[a] for a in attrs})
        monkeypatch.setitem(sys.modules, name, module)
    return classes


def test_installed_launch_file_finds_the_installed_params_through_the_ament_index(installed, stub_launch, monkeypatch):
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(installed.prefix))
    spec = importlib.util.spec_from_file_location(
        "installed_node_launch", installed.share / "launch" / "node.launch.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.package_share() == installed.share
    (entities,) = module.generate_launch_description().args
    args = {e.args[0]: e.kwargs for e in entities if isinstance(e, stub_launch["DeclareLaunchArgument"])}
    assert args["params_file"]["default_value"] == str(installed.share / "config" / "params.yaml")
    (node,) = [e for e in entities if isinstance(e, stub_launch["Node"])]
    assert node.kwargs["package"] == PACKAGE and node.kwargs["executable"] == "vggt_uncertainty_node"
