"""The functional core stays pure: decision, lane and config modules import no I/O library.

docs/ARCHITECTURE.md states which package may import which; this checks the rule that matters most
(the decision path can be reasoned about and tested with plain data) in a fresh interpreter.
"""

import subprocess
import sys

PURE_MODULES = [
    "edge.config",
    "edge.access.decide",
    "edge.access.sessions",
    "edge.access.policy",
    "edge.access.plates",
    "edge.lanes.machine",
    "edge.chain.commitment",
    "edge.vision.consensus",
    "edge.vision.plates",
]
# Adapters that map to store rows (edge.lanes.records, edge.access.adapters) are shell code, not listed.
IO_LIBRARIES = ["onnxruntime", "cv2", "numpy", "serial", "pymodbus", "paho", "web3", "sqlite3",
                "sqlite_utils", "asyncio", "subprocess", "edge.store", "edge.mqtt", "edge.daemon"]


def test_pure_core_imports_no_io_library() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {PURE_MODULES!r}: importlib.import_module(name)\n"
        f"print(','.join(m for m in {IO_LIBRARIES!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"pure modules pull in I/O libraries: {out.stdout.strip()}"
