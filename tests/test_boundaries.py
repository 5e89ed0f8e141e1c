"""The layers of docs/ARCHITECTURE.md hold: the import contracts pass and the pure core loads no I/O.

The contracts (pyproject.toml ``[tool.importlinter]``) encode the table "Packages and who may import
whom"; the second test checks the rule that matters most (the decision path can be reasoned about and
tested with plain data) in a fresh interpreter, including imports made at run time.
"""

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[1]
PURE_MODULES = [
    "edge.identity",
    "edge.config",
    "edge.access",
    "edge.access.decide",
    "edge.access.sessions",
    "edge.access.policy",
    "edge.access.plates",
    "edge.lanes",
    "edge.lanes.machine",
    "edge.daemon.records",
    "edge.store.rows",
    "edge.vision.consensus",
    "edge.vision.plates",
]
IO_LIBRARIES = ["onnxruntime", "cv2", "numpy", "serial", "pymodbus", "paho", "web3", "sqlite3",
                "sqlite_utils", "asyncio", "subprocess", "edge.store.store", "edge.mqtt.bridge",
                "edge.chain", "edge.daemon.service"]


def test_pure_core_imports_no_io_library() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {PURE_MODULES!r}: importlib.import_module(name)\n"
        f"print(','.join(m for m in {IO_LIBRARIES!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"pure modules pull in I/O libraries: {out.stdout.strip()}"


INIT_IO = [m for m in IO_LIBRARIES if not m.startswith("edge.")] + ["edge.store.store", "edge.mqtt.bridge",
                                                                   "edge.mqtt.nonces"]


def test_package_inits_import_no_io_library() -> None:
    """Importing a package (``edge.store``, ``edge.mqtt``...) loads no I/O library: its I/O modules
    load when their names are first used."""
    packages = sorted(str(p.parent.relative_to(ROOT)).replace("/", ".")
                      for root in ("edge", "firmware_bridge") for p in (ROOT / root).rglob("__init__.py")
                      if "tools" not in p.parts)
    code = (
        "import importlib, sys\n"
        f"for name in {packages!r}: importlib.import_module(name)\n"
        f"print(','.join(m for m in {INIT_IO!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "edge.store" in packages and "edge.mqtt" in packages
    assert out.stdout.strip() == "", f"package __init__s pull in I/O libraries: {out.stdout.strip()}"


def test_import_contracts_hold() -> None:
    lint_imports = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(lint_imports).exists():
        pytest.fail("import-linter is not installed: it is part of the test extra (pip install -e '.[test]')")
    out = subprocess.run([lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def test_the_wheel_carries_the_product_not_the_tools() -> None:
    """The packages setuptools puts in the wheel (pyproject.toml [tool.setuptools.packages.find]):
    the daemon, its libraries and the CLI, never edge.tools (benchmarks, emulators, harness support)."""
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packages = set(find_packages(str(ROOT), include=find["include"], exclude=find.get("exclude", ())))
    assert {"edge", "edge.daemon", "edge.cli", "edge.store", "firmware_bridge"} <= packages
    assert [p for p in packages if p == "edge.tools" or p.startswith("edge.tools.")] == []
