"""Check that every dependency key in package.xml resolves on Humble, Jazzy, Kilted and Rolling.

A key resolves when it is a package released in the distro (``<distro>/distribution.yaml``) or
a rosdep rule (``rosdep/base.yaml``, ``rosdep/python.yaml``) with an installer for each Ubuntu
release the distro targets (``release_platforms``). Needs a checkout of
https://github.com/ros/rosdistro (no network access of its own):

    git clone --depth 1 https://github.com/ros/rosdistro /tmp/rosdistro
    python3 benchmarks/check_rosdep_keys.py --rosdistro /tmp/rosdistro --write test/ros/rosdep_keys.json

``--write`` records the resolutions; ``test/ros/test_ros_packaging.py`` checks package.xml
against that record offline. Exit status 1 when a key does not resolve somewhere.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DISTROS = ("humble", "jazzy", "kilted", "rolling")
DEPEND_TAGS = ("depend", "exec_depend", "build_depend", "build_export_depend", "test_depend")


def package_keys(package_xml: Path) -> dict[str, list[str]]:
    """Dependency keys of a package.xml, by tag (``exec_depend``, ``test_depend``, ...)."""
    root = ET.parse(package_xml).getroot()
    keys: dict[str, list[str]] = {}
    for tag in DEPEND_TAGS:
        keys[tag] = [el.text.strip() for el in root.findall(tag) if el.text]
    return {k: v for k, v in keys.items() if v}


def _read(rosdistro: Path, rel: str) -> Any:
    path = rosdistro / rel
    if path.is_file():
        return yaml.safe_load(path.read_text())
    # a bare git directory (a mirror): read the file from HEAD
    text = subprocess.run(
        ["git", "--git-dir", str(rosdistro), "show", f"HEAD:{rel}"], check=True, capture_output=True, text=True
    ).stdout
    return yaml.safe_load(text)


def _ubuntu_rule(rule: Any, codename: str) -> str | None:
    """How a rosdep rule installs on Ubuntu ``codename`` (``apt: ...``/``pip: ...``), None if it does not."""
    if not isinstance(rule, dict):
        return None
    ubuntu = rule.get("ubuntu", rule.get("*"))
    if isinstance(ubuntu, dict) and not ({"pip", "apt", "packages", "source"} & set(ubuntu)):
        ubuntu = ubuntu[codename] if codename in ubuntu else ubuntu.get("*")
    if ubuntu is None:
        return None
    if isinstance(ubuntu, list):
        return "apt: " + " ".join(ubuntu) if ubuntu else None
    if isinstance(ubuntu, dict):
        if "pip" in ubuntu:
            pip = ubuntu["pip"]
            packages = pip.get("packages", []) if isinstance(pip, dict) else pip
            return "pip: " + " ".join(packages) if packages else None
        if "packages" in ubuntu:
            return "apt: " + " ".join(ubuntu["packages"]) if ubuntu["packages"] else None
    return None


def resolve(keys: list[str], rosdistro: Path) -> dict[str, dict[str, str | None]]:
    """For each key and distro: ``ros: <distro> package``, ``apt: ...``, ``pip: ...`` or None."""
    rules: dict[str, Any] = {}
    for rel in ("rosdep/base.yaml", "rosdep/python.yaml"):
        rules.update(_read(rosdistro, rel))
    out: dict[str, dict[str, str | None]] = {k: {} for k in keys}
    for distro in DISTROS:
        dist = _read(rosdistro, f"{distro}/distribution.yaml")
        released: set[str] = set()
        for name, repo in dist["repositories"].items():
            release = repo.get("release") or {}
            if "version" in release:  # released in this distro (packages default to the repository's name)
                released.update(release.get("packages") or [name])
        codenames = dist["release_platforms"]["ubuntu"]
        for key in keys:
            if key in released:
                out[key][distro] = f"ros: {distro} package"
                continue
            ways = [_ubuntu_rule(rules.get(key), c) for c in codenames]
            out[key][distro] = None if None in ways else ways[0]
    return out


def _head_commit(rosdistro: Path) -> str:
    git_dir = rosdistro / ".git" if (rosdistro / ".git").exists() else rosdistro
    result = subprocess.run(["git", "--git-dir", str(git_dir), "rev-parse", "HEAD"], capture_output=True, text=True)
    return result.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rosdistro", type=Path, required=True, help="rosdistro checkout (or bare git dir)")
    parser.add_argument("--package-xml", type=Path, default=ROOT / "package.xml")
    parser.add_argument("--write", type=Path, help="record the resolutions here (JSON)")
    args = parser.parse_args(argv)
    by_tag = package_keys(args.package_xml)
    keys = sorted({k for v in by_tag.values() for k in v})
    resolved = resolve(keys, args.rosdistro)
    missing = [f"{k} on {d}" for k, per in resolved.items() for d, way in per.items() if way is None]
    for key, per in resolved.items():
        print(f"{key:32s} " + "  ".join(f"{d}={per[d] or 'MISSING'}" for d in DISTROS))
    if args.write:
        record = {"rosdistro_commit": _head_commit(args.rosdistro), "keys": resolved}
        args.write.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    if missing:
        print("unresolved: " + ", ".join(missing), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
