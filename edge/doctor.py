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

import grp
import importlib
import os
import pkgutil
import pwd
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from edge.config import Config, VisionConfig
from edge.store import Store, StoreError, integrity
from edge.store.store import group_name, user_name

DISCOVERY_PACKAGES = ("edge",)
# Where systemd puts the unit's credentials while it runs, and where the unit loads them from
# (systemd/parkgate.service, LoadCredential=).
SYSTEMD_CREDENTIALS = Path("/run/credentials/parkgate.service")
CREDENTIALS_SOURCE = Path("/etc/parkgate/credentials")
DISCOVERY_MODULE = "doctor_checks"
# The unit's account (systemd/parkgate.sysusers) and where the unit may be installed; without one the
# shipped unit's settings (systemd/parkgate.service) apply.
SERVICE_USER = "parkgate"
UNIT_FILES = (Path("/etc/systemd/system/parkgate.service"), Path("/usr/lib/systemd/system/parkgate.service"),
              Path("/lib/systemd/system/parkgate.service"))
UNIT_DROP_INS = (Path("/etc/systemd/system/parkgate.service.d"),
                 Path("/run/systemd/system/parkgate.service.d"))
SHIPPED_UNIT = {"User": ["parkgate"], "StateDirectory": ["parkgate"], "ReadWritePaths": [],
                "SupplementaryGroups": ["dialout", "video"], "ProtectSystem": ["strict"]}
# Secret files that systemd hands the service (LoadCredential=), and their sources read by systemd as root
# (`--credentials-dir`, with_credentials_dir): not opened by the service user itself.
_PASSED_BY_SYSTEMD: set[Path] = set()
# The blank images each model reads once (a camera frame, a plate crop; height, width, BGR).
TEST_FRAME_SHAPE = (240, 320, 3)
TEST_CROP_SHAPE = (40, 140, 3)


class Status(StrEnum):
    OK = "OK"
    WARN = "WARN"  # works, but not as the unit will run it (not counted as a failure)
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

    @classmethod
    def warn(cls, detail: str, fix: str) -> CheckResult:
        return cls(Status.WARN, detail, fix)


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
    problem = service_access_problem(path, "rwx")
    if problem:
        return CheckResult.fail(problem, f"chown -R {SERVICE_USER}:{SERVICE_USER} {path}; chmod 0750 {path}")
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
    problem = _store_access_problem(path)
    if problem:
        return CheckResult.fail(problem, f"systemctl stop parkgate; chown {SERVICE_USER}:{SERVICE_USER} "
                                f"{path}*; then run the store commands as the service user: sudo -u "
                                f"{SERVICE_USER} parkgate store ...")
    try:
        with Store(path, busy_timeout_ms=config.store.busy_timeout_ms) as store:
            problems = store.integrity_check()
            if problems:
                return CheckResult.fail(f"{path}: integrity check failed: {problems[0]}",
                                        integrity.recovery_steps(path))
            store.check_writable()  # a real (rolled back) write: SQLite opens an unwritable file read-only
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
        if path is None or path.parent != SYSTEMD_CREDENTIALS:
            return path
        _PASSED_BY_SYSTEMD.add(directory / path.name)  # systemd reads it as root
        return directory / path.name

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
        problem = None if path in _PASSED_BY_SYSTEMD else service_access_problem(path, "r")
        if problem:
            return CheckResult.fail(f"{key}: {problem}", f"chgrp {SERVICE_USER} {path} && chmod 0640 {path} "
                                    "(or hand it over with the unit's LoadCredential=)")
    names = ", ".join(key for key, _ in secrets)
    return CheckResult.ok(f"{len(secrets)} readable, private and not empty: {names}")


@dataclass(frozen=True)
class ModelProblem:
    key: str
    path: Path
    error: str

    def __str__(self) -> str:
        return f"{self.key}: {self.path}: {self.error}"

    @property
    def fix(self) -> str:
        return (f"point {self.key} at a working file (the bundled models are the default: remove the key), "
                "or reinstall parkgate (it bundles the models)")


def model_problem(vision: VisionConfig) -> ModelProblem | None:
    """The first model file (or OCR config) the daemon could not use, by config key; None: all work. Builds
    each onnxruntime session as the daemon does (the models are small) and reads a blank test image with
    it: a valid ONNX file of the wrong kind (the OCR model as the detector) loads, but fails every read."""
    from edge.vision import ocr
    from edge.vision.reader import PlateDetector, PlateOcr  # onnxruntime: only when checking

    loaded: list[ocr.OcrConfig] = []  # the OCR config of the first step, for the OCR model's

    def load_config() -> ocr.OcrConfig:
        loaded.append(ocr.load_config(vision.ocr_config))
        return loaded[0]

    steps: list[tuple[str, Path, Callable[[], object], Callable[[Any], object]]] = [
        ("vision.ocr_config", vision.ocr_config, load_config, lambda _config: None),
        ("vision.detector_model", vision.detector_model, lambda: PlateDetector(vision.detector_model, 1),
         lambda model: model.detect(np.zeros(TEST_FRAME_SHAPE, np.uint8))),
        ("vision.ocr_model", vision.ocr_model, lambda: PlateOcr(vision.ocr_model, loaded[0], 1),
         lambda model: model.read_crops([np.zeros(TEST_CROP_SHAPE, np.uint8)])),
    ]
    for key, path, load, read in steps:
        if not path.is_file():
            return ModelProblem(key, path, "does not exist")
        try:
            model = load()
        except Exception as exc:  # noqa: BLE001 - onnxruntime, YAML, the model contract: all the key's FAIL
            return ModelProblem(key, path, _short_error(exc))
        try:
            read(model)
        except Exception as exc:  # noqa: BLE001 - input or output not the contract: the key's FAIL
            return ModelProblem(key, path, f"loads, but cannot read a blank test image (a model of another "
                                           f"kind, or another input or output shape?): {_short_error(exc)}")
    return None


def _short_error(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[:limit] + "..."


@register_check("model files")
def check_model_files(config: Config) -> CheckResult:
    """Each model loads into an onnxruntime session and the OCR config parses, as at `parkgate run`."""
    problem = model_problem(config.vision)
    if problem:
        return CheckResult.fail(str(problem), problem.fix)
    vision = config.vision
    return CheckResult.ok(f"{vision.detector_model.name}, {vision.ocr_model.name}, {vision.ocr_config.name} "
                          "load")


# -- as the service user, in the unit's sandbox --------------------------------------------------------

@dataclass(frozen=True)
class ServiceUser:
    name: str
    uid: int
    gid: int
    groups: frozenset[int] = field(default_factory=frozenset)

    def describe(self) -> str:
        names = sorted(group_name(g) for g in self.groups)
        return f"{self.name} (uid {self.uid}, groups {', '.join(names)})"


def service_user() -> ServiceUser | None:
    """The unit's user with its groups (its own, /etc/group, the unit's SupplementaryGroups=); None when
    there is none on this machine."""
    unit = unit_settings()
    name = (unit.get("User") or [SERVICE_USER])[-1]
    try:
        account = pwd.getpwnam(name)
    except KeyError:
        return None
    groups = {account.pw_gid} | {g.gr_gid for g in grp.getgrall() if name in g.gr_mem}
    for extra in unit.get("SupplementaryGroups", []):
        try:
            groups.add(grp.getgrnam(extra).gr_gid)
        except KeyError:
            continue
    return ServiceUser(name, account.pw_uid, account.pw_gid, frozenset(groups))


def service_access_problem(path: Path, want: str) -> str | None:
    """Why the service user cannot ``want`` (letters of "rwx") ``path``, from owners, groups and modes
    (ACLs are not read); None when it can, and when this is not root (then every check ran as the user
    that runs the daemon, or the "service user" check says otherwise) or there is no such user."""
    user = service_user() if os.geteuid() == 0 else None
    if user is None:
        return None
    for folder in reversed(Path(os.path.abspath(path)).parents):
        problem = _mode_problem(user, folder, "x")
        if problem:
            return problem
    return _mode_problem(user, path, want)


def _mode_problem(user: ServiceUser, path: Path, want: str) -> str | None:
    try:
        st = path.stat()
    except OSError:
        return None  # missing: the check's own rule says so
    mode = stat.S_IMODE(st.st_mode)
    shift = 6 if st.st_uid == user.uid else 3 if st.st_gid in user.groups else 0
    allowed = "".join(bit for n, bit in ((4, "r"), (2, "w"), (1, "x")) if (mode >> shift) & n)
    missing = "".join(bit for bit in want if bit not in allowed)
    if not missing:
        return None
    what = {"r": "read", "w": "write", "x": "enter" if path.is_dir() else "execute"}
    return (f"{path} ({user_name(st.st_uid)}:{group_name(st.st_gid)}, mode {mode:04o}): the service user "
            f"{user.describe()} cannot {' or '.join(what[b] for b in missing)} it")


def _store_access_problem(path: Path) -> str | None:
    for name in (path.name, path.name + "-wal", path.name + "-shm"):
        problem = service_access_problem(path.with_name(name), "rw")
        if problem:
            return problem
    return None


def unit_settings() -> dict[str, list[str]]:
    """The [Service] settings of the installed parkgate.service with its drop-ins (lists, in order; an empty
    assignment resets a list, as systemd does); the shipped unit's when none is installed."""
    unit = next((f for f in UNIT_FILES if f.is_file()), None)
    if unit is None:
        return {key: list(values) for key, values in SHIPPED_UNIT.items()}
    drop_ins = sorted((f for d in UNIT_DROP_INS if d.is_dir() for f in d.glob("*.conf")),
                      key=lambda f: f.name)
    settings: dict[str, list[str]] = {}
    for path in (unit, *drop_ins):
        _read_unit(path, settings)
    return settings


def _read_unit(path: Path, settings: dict[str, list[str]]) -> None:
    section = ""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return
    for raw in lines:
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif section == "Service" and "=" in line and not line.startswith(("#", ";")):
            key, value = (part.strip() for part in line.split("=", 1))
            settings[key] = settings.get(key, []) + value.split() if value else []


def unit_writable_paths(settings: dict[str, list[str]]) -> list[Path] | None:
    """The paths the unit may write under ProtectSystem=strict (StateDirectory= etc., ReadWritePaths=);
    None when the unit does not make the file system read-only."""
    if (settings.get("ProtectSystem") or ["no"])[-1] != "strict":
        return None
    roots = {"StateDirectory": "/var/lib", "CacheDirectory": "/var/cache", "LogsDirectory": "/var/log",
             "RuntimeDirectory": "/run"}
    paths = [Path(base) / entry.split(":")[0]
             for key, base in roots.items() for entry in settings.get(key, [])]
    paths += [Path(entry.lstrip("-+")) for entry in settings.get("ReadWritePaths", [])]
    return paths


@register_check("service user")
def check_service_user(config: Config) -> CheckResult:
    """Run as root, the other checks also check access as the unit's user; say whether they could."""
    if os.geteuid() != 0:
        return CheckResult.skip(f"not run as root: the checks opened files as uid {os.geteuid()} "
                                f"({user_name(os.geteuid())}); run as root to check as {SERVICE_USER} too")
    user = service_user()
    if user is None:
        return CheckResult.warn(f"no user {SERVICE_USER!r} on this machine (a development machine?): files "
                                "were checked as root only", "install the account: systemd-sysusers "
                                "(docs/install.md, step 2)")
    return CheckResult.ok(f"files and ports checked as {user.describe()} too")


@register_check("unit sandbox")
def check_unit_sandbox(config: Config) -> CheckResult:
    """The state dir and the store must be writable under the unit's ProtectSystem=strict."""
    installed = next((str(f) for f in UNIT_FILES if f.is_file()), "the shipped systemd/parkgate.service")
    writable = unit_writable_paths(unit_settings())
    if writable is None:
        return CheckResult.ok(f"{installed}: the file system is not read-only for the unit")
    outside = [f"{key} {path}" for key, path in (("gateway.state_dir", config.gateway.state_dir),
                                                ("store.path", config.store_path))
               if not any(_inside(path, root) for root in writable)]
    shown = ", ".join(str(p) for p in writable) or "nothing"
    if outside:
        return CheckResult.warn(f"{'; '.join(outside)}: read-only for the unit ({installed}: "
                                f"ProtectSystem=strict, writable: {shown})",
                                "keep the state in /var/lib/parkgate (remove gateway.state_dir and "
                                "store.path), or add ReadWritePaths=DIR in a drop-in "
                                "(systemctl edit parkgate)")
    return CheckResult.ok(f"state dir and store writable under the unit's ProtectSystem=strict ({shown})")


def _inside(path: Path, root: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root))
