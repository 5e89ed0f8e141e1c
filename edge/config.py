"""The gateway's typed configuration: one TOML file parsed into frozen dataclasses and validated.

Every value has an embedded default, so the daemon and the demo run without a file. A bad value is
reported with its key path (``lanes[1].gate.baudrate``), the value and what is allowed; unknown keys
are errors (a typo must not silently fall back to a default). All problems are reported at once.

Paths: relative paths in a file are relative to that file's directory. Secrets (passwords, keys)
never appear in the file: it names files holding them (e.g. systemd credentials under
``/run/credentials/parkgate.service/``), read with :func:`read_secret` when needed, never logged.

Adding a key: add a field with :func:`setting` to the section's dataclass (default + rule) and
document it in ``docs/parkgate.example.toml``; the parser, errors and unknown-key check follow.
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
import types
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from edge.vision.plates import REGION_PATTERNS, region_patterns
from edge.vision.roi import Roi  # a pure module: the polygon rules
from firmware_bridge.relaymap import RelayMap  # a pure dataclass module: the board's ranges

DEFAULT_CONFIG_PATH = Path("/etc/parkgate/parkgate.toml")
# The bundled models (the `models` package installs next to `edge`); same names as models/__init__.py.
BUNDLED_WEIGHTS = Path(__file__).resolve().parents[1] / "models" / "weights"
STANDARD_BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
LOG_LEVELS = ("debug", "info", "warning", "error")
RPC_SCHEMES = ("http://", "https://", "ws://", "wss://")
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{40}")
_TOPIC_RE = re.compile(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*")


@dataclass(frozen=True)
class ConfigIssue:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(ValueError):
    """The configuration is invalid; ``issues`` lists every problem with its key path."""

    def __init__(self, source: str, issues: list[ConfigIssue]) -> None:
        self.source = source
        self.issues = issues
        lines = "\n".join(f"  {issue}" for issue in issues)
        super().__init__(f"{source}: {len(issues)} configuration error(s):\n{lines}")


# -- rules ------------------------------------------------------------------------------------------

Rule = tuple[Callable[[Any], bool], str]  # (is the value ok?, what is allowed)


def one_of(*choices: Any) -> Rule:
    return (lambda v: v in choices, " | ".join(str(c) for c in choices))


def between(lo: float, hi: float) -> Rule:
    return (lambda v: lo <= v <= hi, f"{lo}..{hi}")


def matches(pattern: re.Pattern[str], allowed: str) -> Rule:
    return (lambda v: bool(pattern.fullmatch(v)), allowed)


def _valid_region(value: str) -> bool:
    try:
        region_patterns(value)
    except ValueError:
        return False
    return True


REGION_LIST: Rule = (
    _valid_region,
    "a plate region or several joined by commas, of: " + " | ".join(REGION_PATTERNS),
)
IDENTIFIER = matches(_ID_RE, "1-64 characters: letters, digits, '_', '.', '-' "
                             "(starting with a letter or digit)")
ADDRESS = (lambda v: v == "" or bool(_ADDRESS_RE.fullmatch(v)), "an address: 0x followed by 40 hex digits")
PORT = between(1, 65535)
# The relay board's outputs and inputs (firmware_bridge.relaymap.RelayMap checks the same ranges).
RELAY = between(0, RelayMap.relay_count - 1)
BOARD_INPUT = between(0, RelayMap.input_count - 1)
# The lot code is the on-chain lot id (edge.chain.commitment.lot_id): upper case so it has one spelling.
LOT_CODE = matches(re.compile(r"[A-Z0-9][A-Z0-9_-]{0,31}"),
                   "1-32 characters: A-Z, 0-9, '_', '-' (upper case, starting with A-Z or 0-9)")


def setting(default: Any, rule: Rule | None = None) -> Any:
    """A config field: its embedded default and the rule its value must meet."""
    if isinstance(default, list | dict):
        raise TypeError("use tuples / dataclasses for defaults")
    return field(default=default, metadata={"rule": rule})


def _valid_camera_source(value: str) -> bool:
    """A V4L2 index ("0"), a stream URL with a known scheme, or a file path."""
    if "://" in value:
        return value.split("://", 1)[0] in ("rtsp", "rtsps", "http", "https")
    return bool(value.strip())


# -- sections ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GatewayConfig:
    id: str = setting("parkgate-1", IDENTIFIER)
    lot_id: str = setting("LOT-1", LOT_CODE)
    state_dir: Path = setting(Path("/var/lib/parkgate"))
    log_level: str = setting("info", one_of(*LOG_LEVELS))


@dataclass(frozen=True)
class StoreConfig:
    path: Path | None = setting(None)  # None: <gateway.state_dir>/parkgate.sqlite
    busy_timeout_ms: int = setting(5000, between(100, 600_000))


@dataclass(frozen=True)
class GateConfig:
    driver: str = setting("parkgate-serial", one_of("parkgate-serial", "modbus-rtu"))
    port: str = setting("/dev/ttyUSB0", (bool, "a serial device path such as /dev/ttyUSB0"))
    baudrate: int = setting(9600, one_of(*STANDARD_BAUDRATES))
    pulse_ms: int = setting(500, between(50, 10_000))
    modbus_unit: int = setting(1, between(1, 247))
    modbus_open_coil: int = setting(0, RELAY)
    modbus_loop_input: int = setting(0, BOARD_INPUT)
    modbus_safety_input: int = setting(1, BOARD_INPUT)
    modbus_open_limit_input: int = setting(2, BOARD_INPUT)
    modbus_closed_limit_input: int = setting(3, BOARD_INPUT)


# The modbus-rtu gate keys that name board inputs, each with the RelayMap option it feeds.
MODBUS_INPUT_KEYS = {"modbus_loop_input": "presence_input", "modbus_safety_input": "safety_input",
                     "modbus_open_limit_input": "open_limit_input",
                     "modbus_closed_limit_input": "closed_limit_input"}


def relay_map_options(gate: GateConfig) -> dict[str, int]:
    """The ``RelayMap.from_dict`` options of a modbus-rtu gate (the daemon and the tests use this)."""
    options = {"device_id": gate.modbus_unit, "open_relay": gate.modbus_open_coil}
    options.update({option: getattr(gate, key) for key, option in MODBUS_INPUT_KEYS.items()})
    return options


@dataclass(frozen=True)
class CameraConfig:
    source: str = setting("0", (_valid_camera_source,
                                "a video file path, a V4L2 device index such as \"0\", or an rtsp:// URL"))
    fps: int = setting(10, between(1, 120))
    burst_frames: int = setting(5, between(1, 60))
    # The lane's region of interest: [[x, y], ...], all in 0..1 (fractions of the frame) or pixels; the
    # detector looks only there and reads outside it are dropped. Empty: the whole frame.
    roi: tuple[tuple[float, float], ...] = setting(())


@dataclass(frozen=True)
class LaneConfig:
    name: str = setting("entry-1", IDENTIFIER)
    direction: str = setting("entry", one_of("entry", "exit"))
    trigger: str = setting("presence_loop", one_of("presence_loop", "motion"))
    gate: GateConfig = setting(GateConfig())
    camera: CameraConfig = setting(CameraConfig())


@dataclass(frozen=True)
class VisionConfig:
    detector_model: Path = setting(BUNDLED_WEIGHTS / "plate_detector.onnx")
    ocr_model: Path = setting(BUNDLED_WEIGHTS / "plate_ocr.onnx")
    ocr_config: Path = setting(BUNDLED_WEIGHTS / "plate_ocr.yaml")
    threads: int = setting(2, between(1, 16))
    min_confidence: float = setting(0.5, between(0.0, 1.0))
    region: str = setting("any", REGION_LIST)


@dataclass(frozen=True)
class ConfusionPair:
    """Two characters OCR mixes up and the cost of substituting one for the other."""

    a: str = setting("0", (lambda v: len(v) == 1, "a single character"))
    b: str = setting("O", (lambda v: len(v) == 1, "a single character"))
    cost: float = setting(0.5, (lambda v: 0 < v <= 1, "0 < cost <= 1"))


@dataclass(frozen=True)
class PolicyConfig:
    grace_before_s: int = setting(900, between(0, 86_400))
    grace_after_s: int = setting(900, between(0, 86_400))
    max_plate_distance: float = setting(1.0, between(0.0, 4.0))
    max_candidates: int = setting(64, between(1, 512))
    confusions: tuple[ConfusionPair, ...] = setting(())  # empty: the built-in OCR confusion table
    anti_passback: str = setting("hard", one_of("off", "soft", "hard"))
    allow_list: tuple[str, ...] = setting((), (lambda v: 0 < len(v) <= 80, "a plate or a 0x commitment"))
    deny_list: tuple[str, ...] = setting((), (lambda v: 0 < len(v) <= 80, "a plate or a 0x commitment"))
    capacity: int | None = setting(None, between(0, 1_000_000))
    # Only "closed" (refuse when no decision can be made). "open" is reserved: admitting on a store or
    # camera failure needs care (a car whose plate is merely unread must not be let in), and a setting
    # that silently did nothing would be worse than none.
    fail_mode: str = setting("closed", one_of("closed"))


@dataclass(frozen=True)
class ChainConfig:
    enabled: bool = setting(False)
    rpc_url: str = setting("http://127.0.0.1:8545", (lambda v: v.startswith(RPC_SCHEMES),
                                                     "an http(s):// or ws(s):// URL"))
    chain_id: int = setting(31337, between(1, 2**53))
    contract_address: str = setting("", ADDRESS)
    keystore: Path | None = setting(None)
    password_file: Path | None = setting(None)
    confirmations: int = setting(2, between(0, 256))
    log_window_blocks: int = setting(2000, between(1, 100_000))
    batch_size: int = setting(20, between(1, 200))
    max_fee_gwei: float = setting(50.0, between(0.001, 100_000))
    priority_fee_gwei: float = setting(1.5, between(0.0, 100_000))
    poll_interval_s: float = setting(2.0, between(0.1, 3600))
    plate_key_file: Path | None = setting(None)


@dataclass(frozen=True)
class MqttTlsConfig:
    enabled: bool = setting(True)
    ca_file: Path | None = setting(None)  # None: the system CA store
    cert_file: Path | None = setting(None)
    key_file: Path | None = setting(None)


@dataclass(frozen=True)
class MqttConfig:
    enabled: bool = setting(False)
    host: str = setting("127.0.0.1", (bool, "a host name or IP address"))
    port: int = setting(8883, PORT)
    tls: MqttTlsConfig = setting(MqttTlsConfig())
    username: str | None = setting(None)
    password_file: Path | None = setting(None)
    topic_prefix: str = setting("parkgate", matches(_TOPIC_RE, "topic levels of letters, digits, '_', '-' "
                                                              "separated by '/' (no wildcards)"))
    client_id: str | None = setting(None, IDENTIFIER)  # None: parkgate-<gateway.id>
    plate_privacy: str = setting("hash", one_of("hash", "mask", "plain"))
    command_key_file: Path | None = setting(None)
    command_max_age_s: int = setting(30, between(1, 3600))
    discovery: bool = setting(False)
    discovery_prefix: str = setting("homeassistant", matches(_TOPIC_RE, "a topic prefix without wildcards"))


@dataclass(frozen=True)
class MetricsConfig:
    enabled: bool = setting(False)
    host: str = setting("127.0.0.1", (bool, "an IP address to listen on (loopback recommended)"))
    port: int = setting(9108, PORT)


@dataclass(frozen=True)
class Config:
    gateway: GatewayConfig = setting(GatewayConfig())
    store: StoreConfig = setting(StoreConfig())
    lanes: tuple[LaneConfig, ...] = setting((LaneConfig(),))
    vision: VisionConfig = setting(VisionConfig())
    policy: PolicyConfig = setting(PolicyConfig())
    chain: ChainConfig = setting(ChainConfig())
    mqtt: MqttConfig = setting(MqttConfig())
    metrics: MetricsConfig = setting(MetricsConfig())
    source: str = field(default="<embedded defaults>", compare=False, metadata={"internal": True})

    @property
    def store_path(self) -> Path:
        return self.store.path or self.gateway.state_dir / "parkgate.sqlite"

    @property
    def mqtt_client_id(self) -> str:
        return self.mqtt.client_id or f"parkgate-{self.gateway.id}"


# -- parsing ----------------------------------------------------------------------------------------

_TOML_TYPE = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
              dict: "a table"}


def _describe(value: Any) -> str:
    for tp, name in _TOML_TYPE.items():
        if isinstance(value, tp):
            return name
    return type(value).__name__


class _Parser:
    def __init__(self, base_dir: Path | None) -> None:
        self.base_dir = base_dir
        self.issues: list[ConfigIssue] = []

    def fail(self, path: str, message: str) -> None:
        self.issues.append(ConfigIssue(path, message))

    def section(self, cls: type, data: Any, path: str) -> Any:
        if not isinstance(data, Mapping):
            self.fail(path, f"{data!r} is {_describe(data)}; expected a table")
            return cls()
        hints = get_type_hints(cls)
        known = {f.name: f for f in fields(cls) if not f.metadata.get("internal")}
        for key in data:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.fail(_join(path, key), f"unknown key{hint}; allowed keys: {', '.join(known)}")
        values = {}
        for name, f in known.items():
            if name in data:
                values[name] = self.value(hints[name], data[name], _join(path, name), f.metadata.get("rule"))
        return cls(**values)

    def value(self, tp: Any, value: Any, path: str, rule: Rule | None) -> Any:
        origin = get_origin(tp)
        if origin in (Union, types.UnionType):
            (inner,) = [a for a in get_args(tp) if a is not type(None)]
            return self.value(inner, value, path, rule)
        if origin is tuple:
            if not isinstance(value, list):
                self.fail(path, f"{value!r} is {_describe(value)}; expected an array")
                return ()
            return tuple(self.value(get_args(tp)[0], v, f"{path}[{i}]", rule) for i, v in enumerate(value))
        if is_dataclass(tp):
            return self.section(tp, value, path)
        parsed = self.scalar(tp, value, path)
        if parsed is not None and rule is not None and not rule[0](parsed):
            self.fail(path, f"{value!r} is not allowed; allowed: {rule[1]}")
        return parsed

    def scalar(self, tp: Any, value: Any, path: str) -> Any:
        expected = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
                    Path: "a path string"}[tp]
        ok = {bool: isinstance(value, bool),
              int: isinstance(value, int) and not isinstance(value, bool),
              float: isinstance(value, int | float) and not isinstance(value, bool)
              and math.isfinite(value),
              str: isinstance(value, str),
              Path: isinstance(value, str) and value != ""}[tp]
        if not ok:
            self.fail(path, f"{value!r} is {_describe(value)}; expected {expected}")
            return None
        if tp is float:
            return float(value)
        if tp is Path:
            p = Path(value).expanduser()
            return self.base_dir / p if self.base_dir and not p.is_absolute() else p
        return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _modbus_input_clashes(gate: GateConfig, path: str) -> list[ConfigIssue]:
    """A modbus-rtu gate's four inputs (loop, safety, open limit, closed limit) must be distinct."""
    if gate.driver != "modbus-rtu":
        return []
    issues = []
    first_key: dict[int, str] = {}
    for key in MODBUS_INPUT_KEYS:
        value = getattr(gate, key)
        if value in first_key:
            issues.append(ConfigIssue(f"{path}.{key}", f"{value} is also {path}.{first_key[value]}; allowed: "
                                      f"an input 0..{RelayMap.input_count - 1} not used by "
                                      f"{', '.join(k for k in MODBUS_INPUT_KEYS if k != key)}"))
        first_key.setdefault(value, key)
    return issues


def _roi_issues(points: tuple[tuple[float, ...], ...], path: str) -> list[ConfigIssue]:
    """A lane ROI must be a valid polygon (`edge.vision.roi.Roi.parse`); empty means the whole frame."""
    if not points:
        return []
    try:
        Roi.parse([list(point) for point in points], path)
    except ValueError as error:
        return [ConfigIssue(path, str(error).removeprefix(f"{path}: "))]
    return []


def _cross_checks(cfg: Config) -> list[ConfigIssue]:
    """Rules that involve more than one value."""
    issues = []
    seen: dict[str, int] = {}
    for i, lane in enumerate(cfg.lanes):
        if lane.name in seen:
            issues.append(ConfigIssue(f"lanes[{i}].name", f"{lane.name!r} is also the name of "
                                      f"lanes[{seen[lane.name]}]; lane names must be unique"))
        seen.setdefault(lane.name, i)
        issues += _modbus_input_clashes(lane.gate, f"lanes[{i}].gate")
        issues += _roi_issues(lane.camera.roi, f"lanes[{i}].camera.roi")
    if not cfg.lanes:
        issues.append(ConfigIssue("lanes", "no lanes configured; add at least one [[lanes]] table"))
    chain = cfg.chain
    if chain.enabled:
        for key in ("contract_address", "keystore", "password_file", "plate_key_file"):
            if not getattr(chain, key):
                issues.append(ConfigIssue(f"chain.{key}", "is required when chain.enabled = true"))
    if chain.priority_fee_gwei > chain.max_fee_gwei:
        issues.append(ConfigIssue("chain.priority_fee_gwei", f"{chain.priority_fee_gwei} is above "
                                  f"chain.max_fee_gwei = {chain.max_fee_gwei}; allowed: 0..max_fee_gwei"))
    mqtt = cfg.mqtt
    if (mqtt.tls.cert_file is None) != (mqtt.tls.key_file is None):
        issues.append(ConfigIssue("mqtt.tls", "cert_file and key_file go together: give both or neither"))
    if mqtt.password_file is not None and mqtt.username is None:
        issues.append(ConfigIssue("mqtt.password_file", "is set but mqtt.username is not; give both"))
    if mqtt.enabled and mqtt.command_key_file is None:
        issues.append(ConfigIssue("mqtt.command_key_file", "is required when mqtt.enabled = true "
                                  "(remote gate commands must be signed)"))
    return issues


def config_from_mapping(data: Mapping[str, Any], source: str = "<mapping>",
                        base_dir: Path | None = None) -> Config:
    """Validate already-parsed TOML data; raises :class:`ConfigError` listing every problem."""
    parser = _Parser(base_dir)
    cfg = parser.section(Config, data, "")
    issues = parser.issues or _cross_checks(cfg)
    if issues:
        raise ConfigError(source, issues)
    return replace(cfg, source=source)


def parse_config(text: str, source: str = "<string>", base_dir: Path | None = None) -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [ConfigIssue("", f"not valid TOML: {exc}")]) from None
    return config_from_mapping(data, source, base_dir)


def load_config(path: str | Path | None = None) -> Config:
    """The config from ``path``; with no path, from DEFAULT_CONFIG_PATH if it exists, else defaults."""
    if path is None:
        if not DEFAULT_CONFIG_PATH.exists():
            return Config()
        path = DEFAULT_CONFIG_PATH
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), [ConfigIssue("", f"cannot read the config file: {exc}")]) from None
    return parse_config(text, str(path), path.resolve().parent)


def read_secret(path: Path | None, key: str) -> str:
    """The secret in the file named by config key ``key`` (trailing newline removed).

    The error names the key and the file, never the content. Do not log the result.
    """
    if path is None:
        raise ConfigError(key, [ConfigIssue(key, "no secret file configured")])
    try:
        secret = path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        reason = f"cannot read secret file {path}: {exc.__class__.__name__}"
        raise ConfigError(key, [ConfigIssue(key, reason)]) from None
    if not secret:
        raise ConfigError(key, [ConfigIssue(key, f"secret file {path} is empty")])
    return secret


def summary(cfg: Config) -> list[str]:
    """A few human lines describing what the config will do (no secrets)."""
    chain, mqtt, metrics = cfg.chain, cfg.mqtt, cfg.metrics
    lines = [f"gateway {cfg.gateway.id} at lot {cfg.gateway.lot_id}; store {cfg.store_path}"]
    for lane in cfg.lanes:
        gate = lane.gate
        lines.append(f"lane {lane.name}: {lane.direction}, trigger {lane.trigger}, gate {gate.driver} on "
                     f"{gate.port} @ {gate.baudrate} baud, camera {lane.camera.source}")
    lines.append(f"chain: on, {chain.rpc_url} chain id {chain.chain_id}" if chain.enabled else "chain: off")
    broker = f"on, {mqtt.host}:{mqtt.port} tls={mqtt.tls.enabled}" if mqtt.enabled else "off"
    lines.append(f"mqtt: {broker}, plate privacy {mqtt.plate_privacy}")
    lines.append(f"metrics: on, {metrics.host}:{metrics.port}" if metrics.enabled else "metrics: off")
    return lines


def default_of(cls: type, name: str) -> Any:
    """The embedded default of one field (for docs and tests)."""
    f = {f.name: f for f in fields(cls)}[name]
    return f.default if f.default is not MISSING else None
