"""`parkgate doctor`: a registry of installation checks, run in order, shown as one table.

A check is ``callable(config) -> CheckResult``. Register one from any module::

    from edge.doctor import CheckResult, register_check

    @register_check("serial ports")
    def check_serial(config: Config) -> CheckResult: ...

Modules named ``doctor_checks`` directly inside a package of ``edge`` (e.g.
``edge/daemon/doctor_checks.py``, which checks the gates' serial ports: ``firmware_bridge`` never
imports ``edge``) are imported automatically before the checks run, so adding a check needs no edit
here. A check that raises is reported as FAIL with the exception, never a crash.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from edge.config import Config
from edge.store import Store, StoreError, integrity

DISCOVERY_PACKAGES = ("edge",)
# Where systemd puts the unit's credentials while it runs, and where the unit loads them from
# (systemd/parkgate.service, LoadCredential=).
SYSTEMD_CREDENTIALS = Path("/run/credentials/parkgate.service")
CREDENTIALS_SOURCE = Path("/etc/parkgate/credentials")
DISCOVERY_MODULE = "doctor_checks"


class Status(StrEnum):
    OK = "OK"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True)
class CheckResult:
    status: Status
    detail: str
    fix: str = ""  # what to do, for a FAIL

    @classmethod
    def ok(cls, detail: str) -> CheckResult:
        return cls(Status.OK, detail)

    @classmethod
    def fail(cls, detail: str, fix: str) -> CheckResult:
        return cls(Status.FAIL, detail, fix)

    @classmethod
    def skip(cls, detail: str) -> CheckResult:
        return cls(Status.SKIP, detail)


Check = Callable[[Config], CheckResult]
_CHECKS: dict[str, Check] = {}


def register_check(name: str) -> Callable[[Check], Check]:
    """Decorator adding a check under ``name`` (re-registering a name replaces it)."""
    def add(func: Check) -> Check:
        _CHECKS[name] = func
        return func
    return add


def registered_checks() -> dict[str, Check]:
    discover_checks()
    return dict(_CHECKS)


def discover_checks(packages: Iterable[str] = DISCOVERY_PACKAGES) -> None:
    """Import every ``<package>.<sub>.doctor_checks`` module so it can register its checks."""
    for package_name in packages:
        try:
            package = importlib.import_module(package_name)
        except ImportError:
            continue
        for base in package.__path__:
            for sub in pkgutil.iter_modules([base]):
                # Look at the file system first: importing every package would be slow (onnxruntime...).
                if sub.ispkg and (Path(base) / sub.name / f"{DISCOVERY_MODULE}.py").is_file():
                    importlib.import_module(f"{package_name}.{sub.name}.{DISCOVERY_MODULE}")


def run_checks(config: Config, checks: dict[str, Check] | None = None) -> list[tuple[str, CheckResult]]:
    results = []
    for name, check in (registered_checks() if checks is None else checks).items():
        try:
            result = check(config)
        except Exception as exc:  # noqa: BLE001 - a broken check is a FAIL row, not a crash
            result = CheckResult.fail(f"check raised {exc.__class__.__name__}: {exc}",
                                      "report this; the check itself is broken")
        results.append((name, result))
    return results


def format_table(rows: list[tuple[str, CheckResult]]) -> str:
    width = max([len(name) for name, _ in rows] + [5])
    lines = [f"{'CHECK':<{width}}  STATUS  DETAIL"]
    for name, result in rows:
        first, *more = result.detail.splitlines() or [""]
        lines.append(f"{name:<{width}}  {result.status.value:<6}  {first}")
        lines += [f"{'':<{width}}  {'':<6}    {line.strip()}" for line in more]
        if result.fix:
            lines.append(f"{'':<{width}}  {'':<6}  fix: {result.fix}")
    return "\n".join(lines)


# -- the foundation's own checks ---------------------------------------------------------------------

def _fix_state_dir(path: Path) -> str:
    return (f"sudo install -d -m 0750 -o parkgate -g parkgate {path} (or set StateDirectory=parkgate in the "
            "systemd unit), or point gateway.state_dir at a writable directory")


@register_check("state dir")
def check_state_dir(config: Config) -> CheckResult:
    path = config.gateway.state_dir
    if not path.exists():
        return CheckResult.fail(f"{path} does not exist", _fix_state_dir(path))
    if not path.is_dir():
        return CheckResult.fail(f"{path} is not a directory", _fix_state_dir(path))
    if not os.access(path, os.W_OK | os.X_OK):
        return CheckResult.fail(f"{path} is not writable by uid {os.getuid()}", _fix_state_dir(path))
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o007:
        return CheckResult.fail(f"{path} is open to all users (mode {mode:04o}); it holds evidence and state",
                                f"chmod o-rwx {path}")
    return CheckResult.ok(f"{path} writable, mode {mode:04o}")


@register_check("store")
def check_store(config: Config) -> CheckResult:
    path = config.store_path
    if not path.parent.is_dir():
        return CheckResult.fail(f"directory {path.parent} of {path} does not exist",
                                _fix_state_dir(path.parent))
    if not path.exists() and not integrity.marker_path(path).exists():
        # not created here: a store made by root before the first start would lock the daemon out of it
        return CheckResult.skip(f"no store yet at {path}: the first parkgate run creates it")
    report = integrity.check(path)  # read-only: a lost store is not replaced by a new empty one
    if not report.ok:
        return CheckResult.fail(f"{path}: {report.problems[0]}", integrity.recovery_steps(path))
    try:
        with Store(path, busy_timeout_ms=config.store.busy_timeout_ms) as store:
            problems = store.integrity_check()
            if problems:
                return CheckResult.fail(f"{path}: integrity check failed: {problems[0]}",
                                        integrity.recovery_steps(path))
            with store.transaction() as conn:  # takes the write lock: proves the file is writable
                conn.execute("CREATE TEMP TABLE IF NOT EXISTS doctor_probe (x)")
            counts = store.counts()
            return CheckResult.ok(f"{path} schema v{store.schema_version()}, integrity ok, writable; "
                                  f"{counts['gate_events']} gate events, {counts['bookings']} bookings")
    except StoreError as exc:
        return CheckResult.fail(str(exc), f"check store.path and the permissions of {path.parent}")
    except Exception as exc:  # noqa: BLE001 - sqlite errors name the cause well enough
        return CheckResult.fail(f"{path}: {exc}", f"check that {path} is a parkgate SQLite file and writable")


def _secret_paths(config: Config) -> list[tuple[str, Path]]:
    candidates = [("chain.keystore", config.chain.keystore),
                  ("chain.password_file", config.chain.password_file),
                  ("chain.plate_key_file", config.chain.plate_key_file),
                  ("mqtt.password_file", config.mqtt.password_file),
                  ("mqtt.command_key_file", config.mqtt.command_key_file),
                  ("mqtt.tls.key_file", config.mqtt.tls.key_file)]
    return [(key, path) for key, path in candidates if path is not None]


def _fix_missing_secret(key: str, path: Path) -> str:
    """A file under the unit's credentials directory exists only while the unit runs: the fix is its
    LoadCredential= source, checked before the start with --credentials-dir."""
    if path.parent == SYSTEMD_CREDENTIALS:
        source = CREDENTIALS_SOURCE / path.name
        return (f"{path} exists only while parkgate.service runs: create {source} (mode 0600, the unit's "
                f"LoadCredential= source) and check it with parkgate doctor --credentials-dir "
                f"{CREDENTIALS_SOURCE}")
    return f"create {path} (readable by the parkgate user only) or fix {key}"


def with_credentials_dir(config: Config, directory: Path) -> Config:
    """``config`` with each secret file under the unit's credentials directory
    (/run/credentials/parkgate.service/NAME) read from ``directory``/NAME instead: how `parkgate doctor
    --credentials-dir /etc/parkgate/credentials` checks a systemd install before the unit starts."""
    def moved(path: Path | None) -> Path | None:
        return directory / path.name if path is not None and path.parent == SYSTEMD_CREDENTIALS else path

    chain, mqtt = config.chain, config.mqtt
    return config.model_copy(update={
        "chain": chain.model_copy(update={"password_file": moved(chain.password_file),
                                          "plate_key_file": moved(chain.plate_key_file),
                                          "keystore": moved(chain.keystore)}),
        "mqtt": mqtt.model_copy(update={
            "password_file": moved(mqtt.password_file), "command_key_file": moved(mqtt.command_key_file),
            "tls": mqtt.tls.model_copy(update={"key_file": moved(mqtt.tls.key_file)})}),
    })


@register_check("secret files")
def check_secret_files(config: Config) -> CheckResult:
    """Configured secret files exist, are readable, not readable by everyone and not empty (their content
    is never shown)."""
    secrets = _secret_paths(config)
    if not secrets:
        return CheckResult.skip("no secret files configured")
    for key, path in secrets:
        if not path.is_file() or not os.access(path, os.R_OK):
            return CheckResult.fail(f"{key}: {path} is missing or unreadable", _fix_missing_secret(key, path))
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o004:
            return CheckResult.fail(f"{key}: {path} is readable by all users (mode {mode:04o})",
                                    f"chmod 0600 {path} (or 0640 with group parkgate)")
        if not path.read_bytes().strip():
            return CheckResult.fail(f"{key}: {path} is empty",
                                    f"write the secret into {path} (docs/install.md says how to make each)")
    names = ", ".join(key for key, _ in secrets)
    return CheckResult.ok(f"{len(secrets)} readable, private and not empty: {names}")


@register_check("model files")
def check_model_files(config: Config) -> CheckResult:
    vision = config.vision
    files = (("vision.detector_model", vision.detector_model), ("vision.ocr_model", vision.ocr_model),
             ("vision.ocr_config", vision.ocr_config))
    for key, path in files:
        if not path.is_file():
            return CheckResult.fail(f"{key}: {path} does not exist",
                                    f"point {key} at an existing file, or reinstall parkgate "
                                    "(it bundles the models)")
    return CheckResult.ok(f"{vision.detector_model.name}, {vision.ocr_model.name}, {vision.ocr_config.name}")
