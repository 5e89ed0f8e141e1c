"""`parkgate doctor` sees what the daemon will see (ops review s13, findings 3 and 4): a model file that is
not ONNX (or an OCR config that is not YAML) FAILs its key, and `parkgate run` names the key instead of a
traceback; run as root, files and ports are checked as the unit's user (its uid and groups against each
path's owner, group and mode), a missing user is a warning, and a state dir or store outside what the unit
may write under ProtectSystem=strict is a warning.

Real files, a real pty for the serial port, the bundled models; the unit's user is uid 65534 (nobody)
standing in for `parkgate`, handed to the doctor by patching ``edge.doctor.service_user``."""

from __future__ import annotations

import contextlib
import grp
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge import doctor
from edge.config import config_from_mapping
from edge.doctor import ServiceUser, Status, run_checks
from edge.store import Store
from edge.vision import bundle

REPO = Path(__file__).resolve().parents[2]
NOBODY = ServiceUser("parkgate", 65534, 65534, frozenset({65534, grp.getgrnam("dialout").gr_gid}))
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="access as another user is checked only as root")


def checks(*names: str) -> dict[str, Any]:
    registered = doctor.registered_checks()
    return {name: registered[name] for name in names}


def results(data: dict[str, Any], *names: str) -> dict[str, doctor.CheckResult]:
    return dict(run_checks(config_from_mapping(data), checks(*names)))


@pytest.fixture
def as_parkgate(monkeypatch: pytest.MonkeyPatch) -> ServiceUser:
    monkeypatch.setattr(doctor, "service_user", lambda: NOBODY)
    return NOBODY


@pytest.fixture
def reachable() -> Iterator[Path]:
    """A directory every user may enter (pytest's tmp_path is under root's 0700 folder), removed after."""
    top = Path(tempfile.mkdtemp(prefix="parkgate-doctor-"))
    top.chmod(0o755)
    try:
        yield top
    finally:
        shutil.rmtree(top, ignore_errors=True)


@contextlib.contextmanager
def serial_port(mode: int, uid: int = 0, gid: int = 0) -> Iterator[str]:
    """A real terminal device (a pty's slave side) with this owner and mode."""
    master, slave = os.openpty()
    path = os.ttyname(slave)
    try:
        os.chown(path, uid, gid)
        os.chmod(path, mode)
        yield path
    finally:
        os.close(slave)
        os.close(master)


# -- models --------------------------------------------------------------------------------------------

def test_a_model_file_that_is_not_onnx_fails_naming_its_key(tmp_path: Path) -> None:
    fake = tmp_path / "det.onnx"
    fake.write_text("not a model\n")
    result = results({"vision": {"detector_model": str(fake)}}, "model files")["model files"]
    assert result.status is Status.FAIL, result
    assert result.detail.startswith(f"vision.detector_model: {fake}: ") and "Protobuf" in result.detail
    assert "vision.detector_model" in result.fix


def test_an_ocr_config_that_is_not_yaml_fails_naming_its_key(tmp_path: Path) -> None:
    bad = tmp_path / "ocr.yaml"
    bad.write_text("alphabet: [unclosed\n")
    result = results({"vision": {"ocr_config": str(bad)}}, "model files")["model files"]
    assert result.status is Status.FAIL and result.detail.startswith(f"vision.ocr_config: {bad}: "), result


@pytest.mark.parametrize(("key", "other"), [("detector_model", "DEFAULT_OCR_PATH"),
                                            ("ocr_model", "DEFAULT_DETECTOR_PATH")])
def test_a_model_of_the_wrong_kind_fails_naming_its_key(key: str, other: str) -> None:
    """The OCR model where the detector belongs (and the other way round) is valid ONNX and loads, but
    every read the daemon tries fails on its input: the check runs each model once on a blank image."""
    swapped = getattr(bundle, other)
    result = results({"vision": {key: str(swapped)}}, "model files")["model files"]
    assert result.status is Status.FAIL, result
    assert result.detail.startswith(f"vision.{key}: {swapped}: ") and "test image" in result.detail, result
    assert f"vision.{key}" in result.fix


def test_the_bundled_models_load() -> None:
    result = results({}, "model files")["model files"]
    assert result.status is Status.OK and result.detail.endswith("load"), result


def test_run_names_the_model_key_instead_of_a_traceback(tmp_path: Path) -> None:
    fake = tmp_path / "ocr.onnx"
    fake.write_text("not a model\n")
    config = tmp_path / "parkgate.toml"
    config.write_text(f'[gateway]\nstate_dir = "{tmp_path / "state"}"\n[vision]\nocr_model = "{fake}"\n')
    run = subprocess.run([sys.executable, "-m", "edge.cli", "run", "--config", str(config)],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert run.returncode == 2, run.stdout + run.stderr
    assert f"parkgate run: cannot start: vision.ocr_model: {fake}: " in run.stdout, run.stdout
    assert "Traceback" not in run.stdout + run.stderr


# -- as the service user -------------------------------------------------------------------------------

@root_only
def test_root_only_secrets_port_state_dir_and_store_fail_as_the_service_user(reachable: Path,
                                                                            as_parkgate: ServiceUser) -> None:
    tmp_path = reachable  # each file is judged on its own, not on its folder
    state = tmp_path / "state"
    state.mkdir(mode=0o750)  # root's
    Store(state / "parkgate.sqlite").close()  # root's, as a root-run store command used to leave it
    secret = tmp_path / "plate-key"
    secret.write_text("33" * 32 + "\n")
    secret.chmod(0o600)
    with serial_port(0o600) as port:
        data = {"gateway": {"state_dir": str(state)}, "chain": {"plate_key_file": str(secret)},
                "lanes": [{"name": "entry-1", "gate": {"port": port}}]}
        found = results(data, "state dir", "store", "secret files", "serial ports")
    for name, result in found.items():
        assert result.status is Status.FAIL, (name, result)
        assert "the service user parkgate (uid 65534" in result.detail, (name, result)
    assert f"chown -R parkgate:parkgate {state}" in found["state dir"].fix
    assert found["secret files"].detail.startswith(f"chain.plate_key_file: {secret} (root:root, mode 0600)")
    assert f"chgrp parkgate {secret} && chmod 0640 {secret}" in found["secret files"].fix
    assert f"{port} (root:root, mode 0600)" in found["serial ports"].detail
    assert f"chgrp dialout {port}" in found["serial ports"].fix


@root_only
def test_the_same_files_given_to_the_service_user_pass(reachable: Path, as_parkgate: ServiceUser) -> None:
    tmp_path = reachable
    state = tmp_path / "state"
    state.mkdir(mode=0o750)
    Store(state / "parkgate.sqlite").close()
    for path in (state, *state.iterdir()):
        os.chown(path, 65534, 65534)
    secret = tmp_path / "plate-key"
    secret.write_text("33" * 32 + "\n")
    os.chown(secret, 0, 65534)
    secret.chmod(0o640)
    with serial_port(0o660, gid=grp.getgrnam("dialout").gr_gid) as port:
        data = {"gateway": {"state_dir": str(state)}, "chain": {"plate_key_file": str(secret)},
                "lanes": [{"name": "entry-1", "gate": {"port": port}}]}
        found = results(data, "state dir", "store", "secret files", "serial ports", "service user")
    assert {name: r.status for name, r in found.items()} == dict.fromkeys(found, Status.OK), found
    assert "parkgate (uid 65534, groups dialout" in found["service user"].detail


@root_only
def test_a_directory_the_service_user_cannot_enter_fails(tmp_path: Path, as_parkgate: ServiceUser) -> None:
    secret = tmp_path / "plate-key"  # tmp_path stays root's 0700: the file itself is readable, its folder not
    secret.write_text("33" * 32 + "\n")
    os.chown(secret, 0, 65534)
    secret.chmod(0o640)
    result = results({"chain": {"plate_key_file": str(secret)}}, "secret files")["secret files"]
    assert result.status is Status.FAIL and "cannot enter it" in result.detail, result


@root_only
def test_no_service_user_is_a_warning_not_a_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "service_user", lambda: None)
    secret = tmp_path / "plate-key"
    secret.write_text("33" * 32 + "\n")
    secret.chmod(0o600)
    found = results({"chain": {"plate_key_file": str(secret)}}, "secret files", "service user")
    assert found["secret files"].status is Status.OK, found
    user = found["service user"]
    assert user.status is Status.WARN and "no user 'parkgate'" in user.detail, user
    assert "systemd-sysusers" in user.fix


@root_only
def test_systemds_credential_sources_are_not_checked_as_the_service_user(tmp_path: Path,
                                                                         as_parkgate: ServiceUser) -> None:
    sources = tmp_path / "credentials"  # /etc/parkgate/credentials: 0700 root, read by systemd
    sources.mkdir(mode=0o700)
    (sources / "plate-key").write_text("33" * 32 + "\n")
    (sources / "plate-key").chmod(0o600)
    cfg = config_from_mapping({"chain": {"plate_key_file": str(doctor.SYSTEMD_CREDENTIALS / "plate-key")}})
    found = dict(run_checks(doctor.with_credentials_dir(cfg, sources), checks("secret files")))
    assert found["secret files"].status is Status.OK, found


# -- the unit's sandbox --------------------------------------------------------------------------------

def unit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, drop_in: str = "") -> None:
    path = tmp_path / "unit" / "parkgate.service"
    path.parent.mkdir()
    path.write_text(text)
    drop_ins = tmp_path / "unit" / "parkgate.service.d"
    drop_ins.mkdir()
    if drop_in:
        (drop_ins / "override.conf").write_text(drop_in)
    monkeypatch.setattr(doctor, "UNIT_FILES", (path,))
    monkeypatch.setattr(doctor, "UNIT_DROP_INS", (drop_ins,))


def test_a_state_dir_outside_the_units_writable_paths_is_a_warning(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    unit(tmp_path, monkeypatch, (REPO / "systemd" / "parkgate.service").read_text())
    state = tmp_path / "state"
    result = results({"gateway": {"state_dir": str(state)}}, "unit sandbox")["unit sandbox"]
    assert result.status is Status.WARN, result
    assert f"gateway.state_dir {state}" in result.detail and "ProtectSystem=strict" in result.detail
    assert "/var/lib/parkgate" in result.detail and "ReadWritePaths=" in result.fix
    default = results({}, "unit sandbox")["unit sandbox"]
    assert default.status is Status.OK, default


def test_read_write_paths_in_a_drop_in_make_it_writable(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"
    unit(tmp_path, monkeypatch, (REPO / "systemd" / "parkgate.service").read_text(),
         f"[Service]\nReadWritePaths=-{state}\n")
    result = results({"gateway": {"state_dir": str(state)}}, "unit sandbox")["unit sandbox"]
    assert result.status is Status.OK, result
    store = tmp_path / "elsewhere" / "parkgate.sqlite"
    outside = results({"gateway": {"state_dir": str(state)}, "store": {"path": str(store)}},
                      "unit sandbox")["unit sandbox"]
    assert outside.status is Status.WARN and f"store.path {store}" in outside.detail, outside


def test_the_shipped_unit_settings_match_the_unit_file(tmp_path: Path) -> None:
    """Without an installed unit the doctor uses its copy of the shipped unit's settings."""
    settings: dict[str, list[str]] = {}
    doctor._read_unit(REPO / "systemd" / "parkgate.service", settings)
    for key, values in doctor.SHIPPED_UNIT.items():
        assert settings.get(key, []) == values, key
