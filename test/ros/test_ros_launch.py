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


@pytest.fixture
def stub_launch(monkeypatch):
    classes = {
        name: _class(name)
        for name in ("LaunchDescription", "DeclareLaunchArgument", "ExecuteProcess", "LaunchConfiguration", "Node")
    }
    modules = {
        "launch": {"LaunchDescription": classes["LaunchDescription"]},
        "launch.actions": {k: classes[k] for k in ("DeclareLaunchArgument", "ExecuteProcess")},
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


def test_pip_layout_runs_the_console_script(monkeypatch, stub_launch):
    module = _load(monkeypatch, None)
    (entities,) = module.generate_launch_description().args
    (proc,) = [e for e in entities if isinstance(e, stub_launch["ExecuteProcess"])]
    cmd = proc.kwargs["cmd"]
    assert Path(cmd[0]).name == "vggt_uncertainty_node" and cmd[1] == "--ros-args"
    i = cmd.index("--params-file")
    assert cmd[i + 1].args == ("params_file",)
    assert not [e for e in entities if isinstance(e, stub_launch["Node"])]
