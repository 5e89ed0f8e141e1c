"""The documented install path, for real: the wheel built from this checkout (`pip wheel`, the declared
build backend), installed into a fresh virtualenv, and the installed `parkgate run` started from there
with the chain and MQTT on, against anvil and a mosquitto with password and TLS.

The fresh virtualenv gets parkgate from the wheel (``--no-deps``) and its dependencies from this
checkout's virtualenv through a ``.pth`` line placed after its own site-packages: this machine has no
network, and what is under test is what the wheel holds (the contract artifact, the models, the console
script, no top-level ``models``), not pip's resolver. The repository is never on the installed daemon's
path: it runs from a scratch directory, and a ``.pth`` line does not process the editable install's own
``.pth`` files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from edge.mqtt import generate_key
from edge.tools.anvil import dev_account
from edge.tools.demo import harness as h
from edge.tools.demo.world import build_world, chain_section, write_secrets
from edge.tools.emulator.launch import running_emulator
from edge.tools.mosquitto import MosquittoBroker

ROOT = Path(__file__).resolve().parents[2]
LOT, GATEWAY, LANE = "LOT-WHEEL-1", "wheel-gw", "entry-1"
BOOKED = h.Vehicle("booked", "AB 123-CD", seed=231)
RUN_TIME_FILES = ("edge/chain/ParkgateRental.json", "edge/vision/weights/plate_detector.onnx",
                  "edge/vision/weights/plate_ocr.onnx", "edge/vision/weights/plate_ocr.yaml",
                  # the booking pages and their wallet bundle (make web)
                  "edge/booking/static/app.js", "edge/booking/static/renter.html",
                  "edge/booking/static/owner.html", "edge/booking/static/pages.css")


def copy_checkout(dest: Path) -> None:
    """The files git would commit (tracked and new, not ignored), links kept as links."""
    listing = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                             capture_output=True, check=True, timeout=60).stdout
    for name in filter(None, listing.decode().split("\0")):
        source, target = ROOT / name, dest / name
        if not source.is_symlink() and not source.exists():
            continue  # deleted in the working tree, not yet committed
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("install")
    source, wheels, venv = work / "src", work / "wheels", work / "venv"
    copy_checkout(source)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    built = subprocess.run([*pip, "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next(wheels.glob("parkgate-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    done = subprocess.run([*pip, "--python", str(python), "install", "--no-deps", "--no-index", "-q",
                           str(wheel)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    (Path(purelib) / "zz-parkgate-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    scratch = work / "scratch"
    scratch.mkdir()
    return {"wheel": wheel, "venv": venv, "python": python, "purelib": Path(purelib), "scratch": scratch}


def test_wheel_holds_the_run_time_files_and_no_models_package(installed):
    with zipfile.ZipFile(installed["wheel"]) as wheel:
        names = set(wheel.namelist())
        info = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
        top_level = set(wheel.read(info).decode().split())
        entry_points = wheel.read(info.replace("top_level.txt", "entry_points.txt")).decode()
    assert set(RUN_TIME_FILES) <= names, sorted(set(RUN_TIME_FILES) - names)
    assert top_level == {"edge", "firmware_bridge"}
    assert not [n for n in names if n.startswith(("models/", "edge/tools/"))]
    assert "parkgate = edge.cli:main" in entry_points
    assert not (installed["purelib"] / "models").exists()


def test_the_installed_copy_runs_without_the_repository(installed):
    probe = ("import importlib.util, edge\n"
             "from edge.chain.contract import load_artifact\n"
             "from edge.config import Config\n"
             "print(edge.__file__)\n"
             "print(importlib.util.find_spec('models'))\n"
             "print(len(load_artifact()['abi']) > 0, Config().vision.detector_model.is_file())\n")
    out = subprocess.run([str(installed["python"]), "-c", probe], cwd=installed["scratch"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    where, models, loaded = out.stdout.splitlines()
    assert where.startswith(str(installed["purelib"])), where
    assert (models, loaded) == ("None", "True True")
    version = subprocess.run([str(installed["venv"] / "bin" / "parkgate"), "version"],
                             cwd=installed["scratch"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("parkgate "), version.stderr


def test_the_installed_daemon_admits_and_syncs_with_chain_and_broker(installed, anvil, tmp_path):
    broker = MosquittoBroker(tmp_path / "broker").start()
    try:
        paths = write_secrets(tmp_path / "secrets", dev_account(5))
        world = build_world(anvil.web3(), LOT, bytes.fromhex(paths["plate_key"].read_text().strip()))
        now = world.now()
        rental = world.list_space("W-1/B01", now + 5, now + 6 * 3600)
        world.book(rental, BOOKED.plate, now + 5, now + 4 * 3600)
        (tmp_path / "command-key").write_text(generate_key() + "\n")
        (tmp_path / "mqtt-password").write_text(broker.password + "\n")
        camera = h.LaneCamera(tmp_path / "camera", LANE)
        store = tmp_path / "state" / "parkgate.sqlite"
        with running_emulator(tmp_path, name=LANE) as emulator:
            config = tmp_path / "parkgate.toml"
            config.write_text(h.toml_text(
                {"gateway": {"id": GATEWAY, "lot_id": LOT, "state_dir": str(tmp_path / "state")},
                 "chain": chain_section(anvil.url, world.admin.address, paths),
                 "mqtt": {"enabled": True, "host": broker.host, "port": broker.port,
                          "username": broker.username, "password_file": str(tmp_path / "mqtt-password"),
                          "command_key_file": str(tmp_path / "command-key"),
                          "tls": {"ca_file": str(broker.ca_file)}}},
                [{"name": LANE, "gate": {"port": str(emulator.link), "baudrate": 115200, "pulse_ms": 3000},
                  "camera": {"source": str(camera.manifest), "burst_frames": 3}}]))
            parkgate = (str(installed["venv"] / "bin" / "parkgate"),)
            env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
            daemon = h.start_daemon(config, tmp_path / "daemon.log", env=env, parkgate=parkgate,
                                    cwd=installed["scratch"])
            try:
                synced = h.wait_until(lambda: h.cached_bookings(store) >= 1, 60, 0.2)
                assert synced, daemon.log_tail()
                result = h.play_visit(h.Visit(BOOKED, LANE, True, "booking_valid"), emulator, camera, store)
                assert result.held, (result.opened, result.rows, result.error, daemon.log_tail())

                def uploaded() -> bool:
                    counts = h.outbox_counts(store)
                    return counts.get("chain.done", 0) >= 1 and counts.get("mqtt.done", 0) >= 1

                assert h.wait_until(uploaded, 60, 0.3), (h.outbox_counts(store), daemon.log_tail())
            finally:
                daemon.stop()
    finally:
        broker.stop()
