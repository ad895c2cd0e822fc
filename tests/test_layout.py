"""The layout holds: packages import one way only (devtools -> api and worker -> store -> runtime,
and the api -> http), and the entry points and the image's code never import the dev tools."""

import ast
from pathlib import Path

import pytest

from lib.devtools.processes import ROOT

# What each package of lib/ may import of paypoc's own code.
MAY_IMPORT = {
    "http": {"http"},
    "runtime": {"runtime"},
    "store": {"store", "runtime"},
    "api": {"api", "store", "runtime", "http"},
    "worker": {"worker", "store", "runtime"},
    "devtools": {"devtools", "api", "worker", "store", "runtime", "http"},
}


def imported_packages(path):
    """The lib packages a module imports: lib.runtime.config -> runtime."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        found |= {name.split(".")[1] for name in names if name.startswith("lib.") and name.count(".") >= 1}
    return found


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_a_package_imports_only_the_packages_below_it(package):
    for path in sorted((Path(ROOT) / "lib" / package).rglob("*.py")):
        assert imported_packages(path) <= MAY_IMPORT[package], path


def test_lib_holds_only_the_packages_by_role():
    assert {path.name for path in (Path(ROOT) / "lib").iterdir() if path.name != "__pycache__"} == \
        {"__init__.py", *MAY_IMPORT}


@pytest.mark.parametrize("entry_point", ["paypoc.py", "paypoc_worker.py"])
def test_the_entry_points_do_not_use_the_dev_tools(entry_point):
    assert "devtools" not in imported_packages(Path(ROOT) / entry_point)
