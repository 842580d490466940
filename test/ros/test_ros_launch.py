"""Static checks of launch/node.launch.py (launch/launch_ros are not installable from PyPI).

The file is parsed with ``ast`` and imported with stub ``launch``/``launch_ros`` modules that
record what the launch description is made of, for the colcon and the pip layouts.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAUNCH_FILE = ROOT / "launch" / "node.launch.py"


class _Recorder:
    """Stands in for a launch class: keeps its constructor arguments."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


def _class(name: str) -> type:
    return type(name, (_Recorder,), {})


class _LaunchConfiguration(_Recorder):
    """Stands in for LaunchConfiguration: ``perform(context)`` reads the value from a dict."""

    def perform(self, context: dict) -> str:
        return context[self.args[0]]


@pytest.fixture
def stub_launch(monkeypatch):
    classes = {
        name: _class(name)
        for name in ("LaunchDescription", "DeclareLaunchArgument", "ExecuteProcess", "OpaqueFunction", "Node")
    }
    classes["LaunchConfiguration"] = _LaunchConfiguration
    modules = {
        "launch": {"LaunchDescription": classes["LaunchDescription"]},
        "launch.actions": {k: classes[k] for k in ("DeclareLaunchArgument", "ExecuteProcess", "OpaqueFunction")},
        "launch.substitutions": {"LaunchConfiguration": classes["LaunchConfiguration"]},
        "launch_ros": {},
        "launch_ros.actions": {"Node": classes["Node"]},
    }
    for name, attrs in modules.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, module)
    return classes


def _load(monkeypatch, share: Path | None):
    spec = importlib.util.spec_from_file_location("node_launch_under_test", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "package_share", lambda: share)
    return module


def test_launch_file_parses_and_defines_the_entry_point():
    tree = ast.parse(LAUNCH_FILE.read_text())
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in functions


def test_arguments_have_descriptions_and_default_params_file(monkeypatch, stub_launch):
    module = _load(monkeypatch, None)
    ld = module.generate_launch_description()
    (entities,) = ld.args
    args = {e.args[0]: e.kwargs for e in entities if isinstance(e, stub_launch["DeclareLaunchArgument"])}
    assert {"params_file", "use_sim_time", "namespace"} <= set(args)
    assert all(kw.get("description") for kw in args.values())
    assert Path(args["params_file"]["default_value"]) == ROOT / "config" / "params.yaml"
    assert args["use_sim_time"]["default_value"] == "false"


def test_colcon_layout_uses_launch_ros_node(monkeypatch, stub_launch, tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "params.yaml").write_text("{}")
    module = _load(monkeypatch, tmp_path)
    (entities,) = module.generate_launch_description().args
    (node,) = [e for e in entities if isinstance(e, stub_launch["Node"])]
    assert node.kwargs["package"] == "vggt_uncertainty_ros"
    assert node.kwargs["executable"] == "vggt_uncertainty_node"
    params = node.kwargs["parameters"]
    assert params[0].args == ("params_file",) and "use_sim_time" in params[1]
    assert node.kwargs["namespace"].args == ("namespace",)
    args = {e.args[0]: e.kwargs for e in entities if isinstance(e, stub_launch["DeclareLaunchArgument"])}
    assert args["params_file"]["default_value"] == str(tmp_path / "config" / "params.yaml")


def _pip_command(module, stub_launch, namespace: str) -> list[str]:
    (entities,) = module.generate_launch_description().args
    assert not [e for e in entities if isinstance(e, stub_launch["Node"])]
    (opaque,) = [e for e in entities if isinstance(e, stub_launch["OpaqueFunction"])]
    context = {
        "params_file": "/p.yaml",
        "use_sim_time": "false",
        "namespace": namespace,
        "image": "/cam/image_raw",
        "camera_info": "camera_info",
    }
    (proc,) = opaque.kwargs["function"](context, *opaque.kwargs["args"])
    assert isinstance(proc, stub_launch["ExecuteProcess"])
    return proc.kwargs["cmd"]


@pytest.mark.parametrize(
    ("namespace", "expected"),
    [("", "/"), ("robot1", "/robot1"), ("/robot1", "/robot1"), ("//robot1/", "/robot1"), ("/a/b", "/a/b")],
)
def test_pip_layout_runs_the_console_script_with_a_clean_namespace(monkeypatch, stub_launch, namespace, expected):
    module = _load(monkeypatch, None)
    cmd = _pip_command(module, stub_launch, namespace)
    assert Path(cmd[0]).name == "vggt_uncertainty_node" and cmd[1] == "--ros-args"
    assert cmd[cmd.index("--params-file") + 1] == "/p.yaml"
    assert f"__ns:={expected}" in cmd and "image:=/cam/image_raw" in cmd and "use_sim_time:=false" in cmd


def test_package_share_is_none_without_ament_prefix_path(monkeypatch, stub_launch):
    monkeypatch.delenv("AMENT_PREFIX_PATH", raising=False)
    spec = importlib.util.spec_from_file_location("node_launch_no_ament", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.package_share() is None  # ament_index_python raises OSError here
    (entities,) = module.generate_launch_description().args
    assert [e for e in entities if isinstance(e, stub_launch["OpaqueFunction"])]
