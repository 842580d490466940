"""The import contract: the package's layer order, checked on every module's imports.

Layers, lowest first (a module may import its own layer and the layers below it, never above):

    errors
    geometry, calibration        numpy-only core
    data                         readers, writers, windowing, synthetic sequences
    model, head                  backbones (torch), the uncertainty head
    online, distributed          the node's ROS-free runtime; torch.distributed helpers
    trainer, evaluate, ros       front ends
    demo
    cli

Imports under ``if TYPE_CHECKING:`` count too: annotations must respect the order as well.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "vggt_uncertainty_ros"
NAME = PACKAGE.name

LAYERS: list[set[str]] = [
    {"errors", "__init__"},
    {"geometry", "calibration"},
    {"data"},
    {"model", "head"},
    {"online", "distributed"},
    {"trainer", "evaluate", "ros"},
    {"demo"},
    {"cli"},
]
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}
ROS_MODULES = {"rclpy", "geometry_msgs", "sensor_msgs", "nav_msgs", "std_msgs", "diagnostic_msgs", "tf2_msgs"}


def _top(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path) -> list[str]:
    """Absolute module names imported anywhere in ``path`` (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package_parts = [NAME, *path.relative_to(PACKAGE).with_suffix("").parts][:-1]
    if path.name == "__init__.py":
        package_parts = [NAME, *path.relative_to(PACKAGE).parent.parts]
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - node.level + 1]
                names.append(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                names.append(node.module)
    return names


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_top_level_module_has_a_layer():
    assert sorted({_top(p) for p in _modules()} - set(RANK)) == []


def test_no_module_imports_a_higher_layer():
    offenders = []
    for path in _modules():
        own = RANK[_top(path)]
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == NAME and len(parts) > 1 and RANK.get(parts[1], -1) > own:
                offenders.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert offenders == []


def test_no_import_circles_between_subpackages():
    """Within a layer, sub-packages form no cycle (e.g. data.a <-> data.b)."""
    graph: dict[str, set[str]] = {}
    for path in _modules():
        rel = path.relative_to(PACKAGE).with_suffix("")
        here = ".".join(rel.parts[:2]) if len(rel.parts) > 1 else rel.parts[0]
        here = here.removesuffix(".__init__")
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == NAME and len(parts) > 1:
                there = ".".join(parts[1:3])
                if there != here and not here.startswith(there + ".") and there.split(".")[0] == here.split(".")[0]:
                    graph.setdefault(here, set()).add(there)
    cycles = []
    for start in graph:
        stack = [(start, [start])]
        while stack:
            node, trail = stack.pop()
            for nxt in graph.get(node, ()):
                if nxt == start:
                    cycles.append(" -> ".join([*trail, nxt]))
                elif nxt not in trail:
                    stack.append((nxt, [*trail, nxt]))
    assert cycles == []


def test_only_the_ros_layer_imports_ros():
    offenders = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in _modules()
        if _top(path) != "ros"
        for name in _imports(path)
        if name.split(".")[0] in ROS_MODULES
    ]
    assert offenders == []


def test_no_module_imports_the_benchmarks():
    offenders = [
        f"{path.relative_to(PACKAGE)}"
        for path in _modules()
        for name in _imports(path)
        if name.split(".")[0] == "benchmarks"
    ]
    assert offenders == []


def test_core_and_runtime_import_without_torch_or_ros():
    code = (
        "import sys\n"
        "import vggt_uncertainty_ros.geometry, vggt_uncertainty_ros.calibration, vggt_uncertainty_ros.data\n"
        "import vggt_uncertainty_ros.online.tracking, vggt_uncertainty_ros.online.worker\n"
        "import vggt_uncertainty_ros.online.measurements, vggt_uncertainty_ros.online.intrinsics_check\n"
        "import vggt_uncertainty_ros.online.allocator, vggt_uncertainty_ros.demo, vggt_uncertainty_ros.cli.main\n"
        "heavy = sorted(m for m in ('torch', 'rclpy', 'evo', 'gtsam') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_only_the_data_layer_imports_rosbags():
    """Bags are opened one way: through ``data`` (``open_sequence``, ``BagFile``, the writers)."""
    offenders = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in _modules()
        if _top(path) != "data"
        for name in _imports(path)
        if name.split(".")[0] == "rosbags"
    ]
    assert offenders == []
