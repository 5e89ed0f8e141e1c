"""The hardened unit, sysusers and tmpfiles, checked with systemd's own tools (no mocks).

`make test` installs the Debian `systemd` package when systemd-analyze is missing, so these run for
real there; outside `make test` they skip with the reason when the tools are absent.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge.daemon.retention import evidence_dir

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "parkgate.service"
SYSUSERS = ROOT / "systemd" / "parkgate.sysusers"
TMPFILES = ROOT / "systemd" / "parkgate.tmpfiles"
MAX_EXPOSURE = 2.0


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (make test installs the Debian 'systemd' package)")
    return path


def directives(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) for every assignment, in order (repeated keys kept)."""
    out, section = [], ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.append((section, key.strip(), value.strip()))
    return out


def values(key: str) -> list[str]:
    return [v for s, k, v in directives(UNIT.read_text()) if s == "Service" and k == key]


def exposure(unit: Path) -> float:
    out = subprocess.run([tool("systemd-analyze"), "security", "--offline=yes", str(unit)],
                         capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out.stdout)
    assert match, f"no exposure in systemd-analyze output:\n{out.stdout}\n{out.stderr}"
    return float(match.group(1))


def test_exposure_is_at_most_2() -> None:
    assert exposure(UNIT) <= MAX_EXPOSURE


def test_exposure_check_detects_a_weakened_unit(tmp_path: Path) -> None:
    weak = tmp_path / "weak.service"
    weak.write_text("\n".join(line for line in UNIT.read_text().splitlines()
                              if not line.startswith(("Protect", "Private", "Restrict", "SystemCall",
                                                      "CapabilityBoundingSet"))))
    assert exposure(weak) > MAX_EXPOSURE


def test_unit_verifies_cleanly(tmp_path: Path) -> None:
    # verify insists that ExecStart exists; point it at an executable that does, keep the rest.
    copy = tmp_path / "parkgate.service"
    copy.write_text(UNIT.read_text().replace("ExecStart=/opt/parkgate/.venv/bin/parkgate",
                                             f"ExecStart={sys.executable} -m edge.cli"))
    out = subprocess.run([tool("systemd-analyze"), "verify", str(copy)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and out.stderr == "", out.stderr


def test_service_contract() -> None:
    single = {k: v[0] for k in ("Type", "NotifyAccess", "WatchdogSec", "Restart", "User", "DynamicUser",
                                "ExecStart", "ProtectSystem", "ProtectHome", "PrivateTmp", "NoNewPrivileges",
                                "CapabilityBoundingSet", "RestrictAddressFamilies", "MemoryDenyWriteExecute",
                                "StateDirectory", "DevicePolicy") if (v := values(k))}
    assert single == {
        "Type": "notify", "NotifyAccess": "main", "WatchdogSec": "30", "Restart": "on-failure",
        "User": "parkgate", "DynamicUser": "no",
        "ExecStart": "/opt/parkgate/.venv/bin/parkgate run --config /etc/parkgate/parkgate.toml",
        "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "", "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "MemoryDenyWriteExecute": "yes", "StateDirectory": "parkgate", "DevicePolicy": "closed",
    }
    assert values("SupplementaryGroups") == ["dialout video"]
    assert "@system-service" in values("SystemCallFilter")
    assert sorted(values("DeviceAllow")) == ["char-ttyACM rw", "char-ttyAMA rw", "char-ttyS rw",
                                             "char-ttySC rw", "char-ttyUSB rw", "char-video4linux rw"]
    assert sorted(v.split(":")[0] for v in values("LoadCredential")) == [
        "command-key", "keystore-password", "mqtt-password", "plate-key"]


def test_the_unit_loads_every_credential_the_example_config_names() -> None:
    """Each /run/credentials/parkgate.service/NAME of the example config is a LoadCredential= of the unit
    (the optional mutual-TLS key as the documented drop-in line), and the reverse."""
    example = (ROOT / "docs" / "parkgate.example.toml").read_text()
    named = set(re.findall(r"/run/credentials/parkgate\.service/([\w.-]+)", example))
    loaded = {v.split(":")[0] for v in values("LoadCredential")}
    drop_in = set(re.findall(r"^#LoadCredential=([\w.-]+):", UNIT.read_text(), re.M))
    assert named == loaded | drop_in and drop_in == {"mqtt-client.key"}, (named, loaded, drop_in)


def test_sysusers_creates_the_account_in_dialout_and_video(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "group").write_text("root:x:0:\ndialout:x:20:\nvideo:x:44:\n")
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    out = subprocess.run([tool("systemd-sysusers"), f"--root={tmp_path}", str(SYSUSERS)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    passwd = (tmp_path / "etc" / "passwd").read_text()
    group = (tmp_path / "etc" / "group").read_text().splitlines()
    assert re.search(r"^parkgate:x:\d+:\d+:[^:]*:/var/lib/parkgate:/usr/sbin/nologin$", passwd, re.M)
    assert "dialout:x:20:parkgate" in group and "video:x:44:parkgate" in group


def test_tmpfiles_create_private_directories(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    subprocess.run([tool("systemd-sysusers"), f"--root={tmp_path}", str(SYSUSERS)], check=True,
                   capture_output=True, timeout=60)
    out = subprocess.run([tool("systemd-tmpfiles"), f"--root={tmp_path}", "--create", str(TMPFILES)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    uid = int(next(line for line in (tmp_path / "etc" / "passwd").read_text().splitlines()
                   if line.startswith("parkgate:")).split(":")[2])
    modes = {p: ((tmp_path / p).stat().st_mode & 0o7777, (tmp_path / p).stat().st_uid)
             for p in ("etc/parkgate", "etc/parkgate/credentials", "var/lib/parkgate",
                       "var/lib/parkgate/evidence")}
    assert modes == {"etc/parkgate": (0o750, 0), "etc/parkgate/credentials": (0o700, 0),
                     "var/lib/parkgate": (0o750, uid), "var/lib/parkgate/evidence": (0o700, uid)}
    assert evidence_dir(Path("/var/lib/parkgate")).name == "evidence"  # the directory the daemon uses


MDWE_PROBE = r"""
import ctypes, mmap, sys
from pathlib import Path
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    print("kernel without PR_SET_MDWE", ctypes.get_errno()); sys.exit(3)
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    sys.exit("W+X mapping still allowed: the probe proves nothing")
except OSError:
    pass
import cv2, numpy as np, onnxruntime as ort
models = [Path(ort.__file__).parent / "datasets" / "mul_1.onnx", *sorted(Path(sys.argv[1]).rglob("*.onnx"))]
for model in models:
    s = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    feed = {}
    for i in s.get_inputs():
        # a free batch dimension gets 1, free image sides 64 (the detector takes any size)
        shape = [d if isinstance(d, int) else (1 if n == 0 else 64) for n, d in enumerate(i.shape)]
        dtype = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8}.get(i.type, np.float32)
        feed[i.name] = np.ones(shape, dtype=dtype)
    s.run(None, feed)
    print("ran", model.name)
"""


def test_onnxruntime_runs_with_memory_deny_write_execute() -> None:
    """MemoryDenyWriteExecute=yes must not break inference: run it under the kernel's equivalent."""
    out = subprocess.run([sys.executable, "-c", MDWE_PROBE, str(ROOT / "models")], capture_output=True,
                         text=True, timeout=120)
    if out.returncode == 3:
        pytest.skip(out.stdout.strip())
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ran mul_1.onnx" in out.stdout


def unit_proc_options(unit: Path) -> str:
    """The procfs mount options the unit's ProtectProc= and ProcSubset= give its processes."""
    found = {k: v for s, k, v in directives(unit.read_text()) if s == "Service"}
    options = [f"hidepid={found['ProtectProc']}"] if "ProtectProc" in found else []
    return ",".join(options + (["subset=pid"] if found.get("ProcSubset") == "pid" else []))


@pytest.mark.parametrize("name", ["parkgate.service", "parkgate-console.service"])
def test_the_unit_lets_the_daemon_status_see_the_boot_id(name: str) -> None:
    """Review 2026-12-03: ProcSubset=pid hid /proc/sys/kernel/random/boot_id, so under systemd the daemon's
    status carried boot_id "" and `parkgate status` (and the console) judged it on the wall clock and
    never saw its pid gone: a SIGKILLed daemon read "running" for 10 s, and a clock step at boot made a
    running one STALE. Checked in a mount namespace whose /proc is mounted as the unit mounts it."""
    options = unit_proc_options(ROOT / "systemd" / name)
    probe = "from edge.daemon.status import boot_id; print(boot_id())"
    mount = f"mount -t proc -o {options} proc /proc" if options else "true"
    run = subprocess.run([tool("unshare"), "-m", "sh", "-c", f'{mount} && exec "$0" -c "$1"', sys.executable,
                          probe], capture_output=True, text=True, timeout=60)
    if run.returncode != 0 and "mount" in run.stderr + run.stdout:
        pytest.skip(f"cannot mount a procfs in a mount namespace here: {run.stderr.strip()}")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == Path("/proc/sys/kernel/random/boot_id").read_text().strip() != ""
