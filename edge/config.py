"""The gateway's typed configuration: one TOML file validated into frozen pydantic v2 models.

Every value has an embedded default, so the daemon and the demo run without a file. A bad value is
reported with its key path (``lanes[1].gate.baudrate``), the value and what is allowed; unknown keys
are errors with a did-you-mean (a typo must not silently fall back to a default). All problems are
reported at once. The models are strict: no silent coercion ("8883" is not a port), arrays become
tuples, relative paths are relative to the file's directory.

Why pydantic (v2, already installed as a web3 dependency) rather than msgspec: strict validation with
per-field rules, nested error locations that map one to one onto key paths, and frozen models that
the subsystems read directly; msgspec would be a new dependency for a once-per-start parse.

Secrets (passwords, keys) never appear in the file: it names files holding them (e.g. systemd
credentials under ``/run/credentials/parkgate.service/``), read with :func:`read_secret` when
needed, never logged.

Adding a key: add a field to the section's model (default, and ``Annotated[..., rule(...)]`` when
its values are restricted) and document it in ``docs/parkgate.example.toml``; errors and the
unknown-key check follow.
"""

from __future__ import annotations

import difflib
import functools
import ipaddress
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PrivateAttr,
    ValidationError,
    model_validator,
)
from pydantic import ValidationInfo as _ValidationInfo
from pydantic_core import PydanticCustomError

from edge.errors import ParkgateError
from edge.identity import list_entry_key
from edge.vision import bundle
from edge.vision.plates import REGION_PATTERNS, region_patterns
from edge.vision.roi import Roi  # a pure module: the polygon rules
from firmware_bridge.relaymap import RelayMap  # a pure dataclass module: the board's ranges

DEFAULT_CONFIG_PATH = Path("/etc/parkgate/parkgate.toml")
STANDARD_BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
LOG_LEVELS = ("debug", "info", "warning", "error")
# The sync talks JSON-RPC over HTTP(S) only (web3's HTTPProvider, edge/chain/sync.py): a ws:// node URL
# would pass the check and fail at every request.
RPC_SCHEMES = ("http://", "https://")
RPC_URL_RULE = ("an http:// or https:// URL (the chain sync speaks JSON-RPC over HTTP only; a node's ws:// "
                "endpoint will not work: use its HTTP one, e.g. http://127.0.0.1:8545)")
# The rental contract admits a check-in from `start - GRACE_PERIOD` (contracts/src/ParkgateRental.sol,
# GRACE_PERIOD = 15 minutes; edge.chain.windows.GRACE_PERIOD_S): a gateway admitting earlier would let in
# cars whose check-in the chain then rejects.
CONTRACT_GRACE_PERIOD_S = 15 * 60
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{40}")
_TOPIC_RE = re.compile(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*")


class ConfigIssue:
    """One problem: the key path and what is wrong with it."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def __repr__(self) -> str:
        return f"ConfigIssue({self.path!r}, {self.message!r})"


class ConfigError(ParkgateError, ValueError):
    """The configuration is invalid; ``issues`` lists every problem with its key path."""

    def __init__(self, source: str, issues: list[ConfigIssue]) -> None:
        self.source = source
        self.issues = issues
        lines = "\n".join(f"  {issue}" for issue in issues)
        super().__init__(f"{source}: {len(issues)} configuration error(s):\n{lines}")


# -- rules ------------------------------------------------------------------------------------------

def rule(ok: Callable[[Any], bool], allowed: str) -> AfterValidator:
    """A field's rule: ``ok(value)`` must hold; ``allowed`` says what is allowed, in the error."""
    def check(value: Any) -> Any:
        if not ok(value):
            raise PydanticCustomError("not_allowed", "{allowed}", {"allowed": allowed})
        return value
    return AfterValidator(check)


def one_of(*choices: Any) -> AfterValidator:
    return rule(lambda v: v in choices, " | ".join(str(c) for c in choices))


def between(lo: float, hi: float) -> AfterValidator:
    return rule(lambda v: lo <= v <= hi, f"{lo}..{hi}")


def matches(pattern: re.Pattern[str], allowed: str) -> AfterValidator:
    return rule(lambda v: bool(pattern.fullmatch(v)), allowed)


def _valid_region(value: str) -> bool:
    try:
        region_patterns(value)
    except ValueError:
        return False
    return True


def proxy_address(value: str) -> bool:
    """An IP address or network (``127.0.0.1``, ``::1``, ``10.0.0.0/24``, host bits clear, as uvicorn reads
    it): never ``*`` nor a /0, which would let every client name its own address and scheme."""
    try:
        return ipaddress.ip_network(value).prefixlen > 0
    except ValueError:
        return False


_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"  # a DNS name's label: letters, digits, inner '-'
_HOST_NAME_RE = re.compile(rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*", re.IGNORECASE)


def served_name(value: str) -> bool:
    """A name the console is served under, as a browser's Host header gives it without the port: a DNS
    name (``gate.example.lan``) or an IP address (``192.168.1.20``, ``fd00::5``). Never ``*`` nor a
    wildcard (Starlette's host check would then let every name in), an empty string, a port or a URL."""
    try:
        return not ipaddress.ip_address(value).is_unspecified
    except ValueError:
        return bool(_HOST_NAME_RE.fullmatch(value))


def _valid_camera_source(value: str) -> bool:
    """A V4L2 index ("0"), a stream URL with a known scheme, or a file path."""
    if "://" in value:
        return value.split("://", 1)[0] in ("rtsp", "rtsps", "http", "https")
    return bool(value.strip())


def _plate_or_commitment(value: str) -> str:
    """An allow/deny entry: a plate (normalisable) or a vehicle commitment (0x + 64 hex digits). The
    error never repeats a plate."""
    try:
        list_entry_key(value)
    except ValueError as exc:
        raise PydanticCustomError("bad_entry", "{reason}", {"reason": str(exc)}) from None
    return value


def _config_path(value: Any, info: _ValidationInfo) -> Any:
    """A path string, relative to the config file's directory; anything else is left to fail."""
    if not isinstance(value, str) or value == "":
        return value
    path = Path(value).expanduser()
    base = (info.context or {}).get("base_dir")
    return base / path if base is not None and not path.is_absolute() else path


def _array(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


ConfigPath = Annotated[Path, BeforeValidator(_config_path)]
Identifier = Annotated[str, matches(_ID_RE, "1-64 characters: letters, digits, '_', '.', '-' "
                                            "(starting with a letter or digit)")]
Port = Annotated[int, between(1, 65535)]
# The relay board's outputs and inputs (firmware_bridge.relaymap.RelayMap checks the same ranges).
Relay = Annotated[int, between(0, RelayMap.relay_count - 1)]
BoardInput = Annotated[int, between(0, RelayMap.input_count - 1)]
# The lot code is the on-chain lot id (edge.identity.lot_id): upper case so it has one spelling.
LotCode = Annotated[str, matches(re.compile(r"[A-Z0-9][A-Z0-9_-]{0,31}"), "1-32 characters: A-Z, 0-9, "
                                 "'_', '-' (upper case, starting with A-Z or 0-9)")]
Topic = Annotated[str, matches(_TOPIC_RE, "topic levels of letters, digits, '_', '-' separated by '/' "
                                          "(no wildcards)")]
ListEntry = Annotated[str, rule(lambda v: 0 < len(v) <= 80, "a plate or a 0x commitment"),
                      AfterValidator(_plate_or_commitment)]
PROXY_RULE = ("an IP address or network of a reverse proxy (e.g. 127.0.0.1, ::1, 10.0.0.0/24); "
              "not '*', a /0 nor a host name")
ProxyAddress = Annotated[str, rule(proxy_address, PROXY_RULE)]
ALLOWED_HOST_RULE = ("a host name or IP address the console is served under, without a port (e.g. "
                     "gate.example.lan, 192.168.1.20); not '*' nor a wildcard (that would switch the Host "
                     "check off) and not empty")
AllowedHost = Annotated[str, rule(served_name, ALLOWED_HOST_RULE)]
SingleChar = Annotated[str, rule(lambda v: len(v) == 1, "a single character")]


class Section(BaseModel):
    """A config table: strict types, no unknown keys, read-only."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


# -- sections ---------------------------------------------------------------------------------------

class GatewayConfig(Section):
    id: Identifier = "parkgate-1"
    lot_id: LotCode = "LOT-1"
    state_dir: ConfigPath = Path("/var/lib/parkgate")
    log_level: Annotated[str, one_of(*LOG_LEVELS)] = "info"


class StoreConfig(Section):
    """The SQLite store. ``retention_days``: the daemon deletes gate events, their delivered outbox rows,
    manual-action audit rows and settled bookings older than that (daily; `parkgate store prune`);
    undelivered ones stay (``Store.prune``)."""

    path: ConfigPath | None = None  # None: <gateway.state_dir>/parkgate.sqlite
    busy_timeout_ms: Annotated[int, between(100, 600_000)] = 5000
    retention_days: Annotated[int, between(1, 3650)] = 365

    def cutoff_ms(self, now_ms: int) -> int:
        """Rows older than this (unix ms) are past ``retention_days`` at ``now_ms`` (the best time)."""
        return now_ms - self.retention_days * 86_400_000


class GateConfig(Section):
    driver: Annotated[str, one_of("parkgate-serial", "modbus-rtu")] = "parkgate-serial"
    port: Annotated[str, rule(bool, "a serial device path such as /dev/ttyUSB0")] = "/dev/ttyUSB0"
    baudrate: Annotated[int, one_of(*STANDARD_BAUDRATES)] = 9600
    pulse_ms: Annotated[int, between(50, 10_000)] = 500
    modbus_unit: Annotated[int, between(1, 247)] = 1
    modbus_open_coil: Relay = 0
    modbus_loop_input: BoardInput = 0
    modbus_safety_input: BoardInput = 1
    modbus_open_limit_input: BoardInput = 2
    modbus_closed_limit_input: BoardInput = 3


# The modbus-rtu gate keys that name board inputs, each with the RelayMap option it feeds.
MODBUS_INPUT_KEYS = {"modbus_loop_input": "presence_input", "modbus_safety_input": "safety_input",
                     "modbus_open_limit_input": "open_limit_input",
                     "modbus_closed_limit_input": "closed_limit_input"}


def relay_map_options(gate: GateConfig) -> dict[str, int]:
    """The ``RelayMap.from_dict`` options of a modbus-rtu gate (the daemon and the tests use this)."""
    options = {"device_id": gate.modbus_unit, "open_relay": gate.modbus_open_coil}
    options.update({option: getattr(gate, key) for key, option in MODBUS_INPUT_KEYS.items()})
    return options


class CameraConfig(Section):
    source: Annotated[str, rule(_valid_camera_source, "a video file path, a V4L2 device index such as "
                                                      "\"0\", or an rtsp:// URL")] = "0"
    fps: Annotated[int, between(1, 120)] = 10
    burst_frames: Annotated[int, between(1, 60)] = 5
    # The lane's region of interest: [[x, y], ...], all in 0..1 (fractions of the frame) or pixels; the
    # detector looks only there and reads outside it are dropped. Empty: the whole frame.
    roi: Annotated[tuple[Annotated[tuple[float, ...], BeforeValidator(_array)], ...],
                   BeforeValidator(_array)] = ()
    # No decodable frame for this long: the camera is stalled (alert, metric, status; docs/ARCHITECTURE.md).
    stall_after_s: Annotated[int, between(1, 3600)] = 10
    # Read plates on the approach (edge.daemon.approach): while the lane is idle, motion-gated frames feed
    # plate tracks; the loop event decides from a fresh, unambiguous track (else the burst reads).
    approach: bool = False
    # A track seen within this many seconds before the loop fires is fresh enough to decide the pass.
    track_window_s: Annotated[float, between(0.5, 30.0)] = 3.0

    @property
    def region(self) -> Roi | None:
        """``roi`` as the reader takes it, parsed once (checked when the config was read); None for the whole
        frame."""
        return _region(self.roi)


class LaneConfig(Section):
    name: Identifier = "entry-1"
    direction: Annotated[str, one_of("entry", "exit")] = "entry"
    trigger: Annotated[str, one_of("presence_loop", "motion")] = "presence_loop"
    gate: GateConfig = GateConfig()
    camera: CameraConfig = CameraConfig()
    # Exit lanes only (edge.access.exits): who may leave; None = "known" (nobody known is trapped).
    exit_policy: Annotated[str, one_of("open", "known", "booked_only")] | None = None
    # This lane's anti-passback; None = the lot's [policy] anti_passback.
    anti_passback: Annotated[str, one_of("off", "soft", "hard")] | None = None

    @model_validator(mode="after")
    def _approach_needs_the_loop(self) -> LaneConfig:
        """An approach track decides a pass only once the presence loop confirms a car at the barrier:
        with trigger = "motion" the camera alone would start the pass and the track would open the gate."""
        if self.camera.approach and self.trigger != "presence_loop":
            raise PydanticCustomError("bad_entry", "camera.approach = true needs trigger = \"presence_loop\" "
                                      "(got {trigger}): a track must never open without the loop",
                                      {"trigger": repr(self.trigger)})
        return self


class VisionConfig(Section):
    detector_model: ConfigPath = bundle.DEFAULT_DETECTOR_PATH  # the bundled models (edge/vision/bundle.py)
    ocr_model: ConfigPath = bundle.DEFAULT_OCR_PATH
    ocr_config: ConfigPath = bundle.OCR_CONFIG_PATH
    threads: Annotated[int, between(1, 16)] = 2
    min_confidence: Annotated[float, between(0.0, 1.0)] = 0.5
    region: Annotated[str, rule(_valid_region, "a plate region or several joined by commas, of: "
                                               + " | ".join(REGION_PATTERNS))] = "any"


class ConfusionPair(Section):
    """Two characters OCR mixes up and the cost of substituting one for the other."""

    a: SingleChar = "0"
    b: SingleChar = "O"
    cost: Annotated[float, rule(lambda v: 0 < v <= 1, "0 < cost <= 1")] = 0.5

    @model_validator(mode="after")
    def _two_different_letters_or_digits(self) -> ConfusionPair:
        if self.a.upper() == self.b.upper() or not (self.a + self.b).isalnum():
            raise PydanticCustomError("bad_entry", "confusion pair ({pair}): expected two different single "
                                      "letters/digits", {"pair": f"{self.a!r}, {self.b!r}"})
        return self


class PolicyConfig(Section):
    grace_before_s: Annotated[int, between(0, 86_400)] = 900
    grace_after_s: Annotated[int, between(0, 86_400)] = 900
    max_plate_distance: Annotated[float, between(0.0, 4.0)] = 1.0
    max_candidates: Annotated[int, between(1, 512)] = 64
    # empty: the built-in OCR confusion table
    confusions: Annotated[tuple[ConfusionPair, ...], BeforeValidator(_array)] = ()
    anti_passback: Annotated[str, one_of("off", "soft", "hard")] = "hard"
    allow_list: Annotated[tuple[ListEntry, ...], BeforeValidator(_array)] = ()
    deny_list: Annotated[tuple[ListEntry, ...], BeforeValidator(_array)] = ()
    capacity: Annotated[int, between(0, 1_000_000)] | None = None
    # Only "closed" (refuse when no decision can be made). "open" is reserved: admitting on a store or
    # camera failure needs care (a car whose plate is merely unread must not be let in), and a setting
    # that silently did nothing would be worse than none.
    fail_mode: Annotated[str, one_of("closed")] = "closed"


class ClockConfig(Section):
    # What decides when the wall clock is behind the sanity floor (edge.clock, docs/ARCHITECTURE.md "Time"):
    # "floor": booking windows and command freshness judged against the floor (a booking not started by
    #   the floor is refused too_early); a signed command dated ahead of the floor is accepted (once: its
    #   nonce is kept);
    # "lenient": as "floor", and a booking that has not ended by the floor admits its car;
    # "strict": as "floor", but a command dated beyond the allowed skew is refused as with a good clock.
    # Exits never depend on it: a car inside always gets out.
    untrusted_time: Annotated[str, one_of("floor", "lenient", "strict")] = "floor"
    behind_tolerance_s: Annotated[int, between(1, 3600)] = 2


class ChainConfig(Section):
    enabled: bool = False
    rpc_url: Annotated[str, rule(lambda v: v.startswith(RPC_SCHEMES), RPC_URL_RULE)] = "http://127.0.0.1:8545"
    chain_id: Annotated[int, between(1, 2**53)] = 31337
    contract_address: Annotated[str, rule(lambda v: v == "" or bool(_ADDRESS_RE.fullmatch(v)),
                                          "an address: 0x followed by 40 hex digits")] = ""
    keystore: ConfigPath | None = None
    password_file: ConfigPath | None = None
    confirmations: Annotated[int, between(0, 256)] = 2
    log_window_blocks: Annotated[int, between(1, 100_000)] = 2000
    batch_size: Annotated[int, between(1, 200)] = 20
    max_fee_gwei: Annotated[float, between(0.001, 100_000)] = 50.0
    priority_fee_gwei: Annotated[float, between(0.0, 100_000)] = 1.5
    poll_interval_s: Annotated[float, between(0.1, 3600)] = 2.0
    plate_key_file: ConfigPath | None = None
    # The first block whose contract logs the sync reads (the contract's deployment block): 0 scans from
    # genesis, which on a public chain takes hours of eth_getLogs windows.
    start_block: Annotated[int, between(0, 2**53)] = 0


class MqttTlsConfig(Section):
    enabled: bool = True
    ca_file: ConfigPath | None = None  # None: the system CA store
    cert_file: ConfigPath | None = None
    key_file: ConfigPath | None = None


class MqttConfig(Section):
    enabled: bool = False
    host: Annotated[str, rule(bool, "a host name or IP address")] = "127.0.0.1"
    port: Port = 8883
    tls: MqttTlsConfig = MqttTlsConfig()
    username: str | None = None
    password_file: ConfigPath | None = None
    topic_prefix: Topic = "parkgate"
    client_id: Identifier | None = None  # None: parkgate-<gateway.id>
    plate_privacy: Annotated[str, one_of("hash", "mask", "plain")] = "hash"
    command_key_file: ConfigPath | None = None
    command_max_age_s: Annotated[int, between(1, 3600)] = 30
    discovery: bool = False
    discovery_prefix: Annotated[str, matches(_TOPIC_RE, "a topic prefix without wildcards")] = "homeassistant"
    # Where a Home Assistant open button publishes the lane id, for a signing bridge that holds the command
    # key (Home Assistant cannot sign); None: no button is announced.
    ha_open_button_topic: Topic | None = None


class EvidenceConfig(Section):
    """Plate crops kept as evidence in ``<gateway.state_dir>/evidence`` (personal data, files 0600): the
    daemon deletes those older than ``retention_days`` and, oldest first, those beyond ``max_mb``."""

    retention_days: Annotated[int, between(1, 3650)] = 30
    max_mb: Annotated[int, between(1, 1_000_000)] = 1024


class MetricsConfig(Section):
    enabled: bool = False
    host: Annotated[str, rule(bool, "an IP address to listen on (loopback recommended)")] = "127.0.0.1"
    port: Port = 9108


class ConsoleConfig(Section):
    """The operators' web console (`parkgate console serve`, its own process beside the daemon): off by
    default, loopback by default; HTTPS when cert_file and key_file are given."""

    enabled: bool = False
    host: Annotated[str, rule(bool, "an IP address to listen on (loopback recommended)")] = "127.0.0.1"
    port: Port = 8443
    cert_file: ConfigPath | None = None
    key_file: ConfigPath | None = None
    session_minutes: Annotated[int, between(1, 7 * 24 * 60)] = 480
    login_attempts: Annotated[int, between(1, 100)] = 5  # failed logins per user from one address ...
    login_window_s: Annotated[int, between(1, 86_400)] = 300  # ... within this window, then refused
    # The reverse proxies whose X-Forwarded-For / X-Forwarded-Proto the console believes; none by default:
    # every client then is the address it connects from (on loopback, 127.0.0.1 for all of them).
    trusted_proxies: Annotated[tuple[ProxyAddress, ...], BeforeValidator(_array)] = ()
    # The names (besides localhost, 127.0.0.1, ::1 and a specific `host`) under which the console is
    # served, e.g. a LAN DNS name or a reverse proxy's name: a request naming any other Host gets 400
    # (a page elsewhere that rebinds its own name to this address must not reach the console).
    allowed_hosts: Annotated[tuple[AllowedHost, ...], BeforeValidator(_array)] = ()


class Config(Section):
    gateway: GatewayConfig = GatewayConfig()
    store: StoreConfig = StoreConfig()
    lanes: Annotated[tuple[LaneConfig, ...], BeforeValidator(_array)] = (LaneConfig(),)
    vision: VisionConfig = VisionConfig()
    policy: PolicyConfig = PolicyConfig()
    clock: ClockConfig = ClockConfig()
    chain: ChainConfig = ChainConfig()
    mqtt: MqttConfig = MqttConfig()
    metrics: MetricsConfig = MetricsConfig()
    evidence: EvidenceConfig = EvidenceConfig()
    console: ConsoleConfig = ConsoleConfig()
    _source: str = PrivateAttr(default="<embedded defaults>")

    def __eq__(self, other: object) -> bool:
        """Same settings (where they were read from does not count)."""
        return isinstance(other, Config) and self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]

    @property
    def source(self) -> str:
        """Where the config was read from (a file path, or ``<embedded defaults>``)."""
        return self._source

    @property
    def store_path(self) -> Path:
        return self.store.path or self.gateway.state_dir / "parkgate.sqlite"

    @property
    def mqtt_client_id(self) -> str:
        return self.mqtt.client_id or f"parkgate-{self.gateway.id}"


# -- errors -----------------------------------------------------------------------------------------

_TOML_TYPE = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
              dict: "a table"}
# pydantic error type -> what the key expects
_EXPECTED = {"bool_type": "true or false", "int_type": "an integer", "int_from_float": "an integer",
             "float_type": "a number", "finite_number": "a number", "string_type": "a string",
             "model_type": "a table", "dict_type": "a table", "tuple_type": "an array",
             "is_instance_of": "a path string", "path_type": "a path string"}


def _describe(value: Any) -> str:
    for tp, name in _TOML_TYPE.items():
        if isinstance(value, tp):
            return name
    return type(value).__name__


def _key_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _section_at(loc: tuple[int | str, ...]) -> type[BaseModel]:
    """The model of the table at ``loc`` (a key path into Config)."""
    model: Any = Config
    for part in loc:
        if isinstance(part, int):
            continue  # an element of an array of tables: same model as the array's
        model = _model_of(model.model_fields[part].annotation)
    return model  # type: ignore[no-any-return]


def _model_of(annotation: Any) -> Any:
    """The model class inside an annotation (``LaneConfig``, ``tuple[LaneConfig, ...]``, ...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for m in map(_model_of, get_args(annotation)) if m is not None), None)


def _unknown_key(loc: tuple[int | str, ...]) -> str:
    known = list(_section_at(loc[:-1]).model_fields)
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key{hint}; allowed keys: {', '.join(known)}"


def _issue(error: Any) -> ConfigIssue:
    loc, kind, value = tuple(error["loc"]), error["type"], error["input"]
    if kind == "extra_forbidden":
        return ConfigIssue(_key_path(loc), _unknown_key(loc))
    if kind in _EXPECTED:
        return ConfigIssue(_key_path(loc), f"{value!r} is {_describe(value)}; expected {_EXPECTED[kind]}")
    if kind == "bad_entry":
        return ConfigIssue(_key_path(loc), error["msg"])
    if kind == "not_allowed":
        message = error["msg"]
        if "; allowed: " not in message:
            message = f"allowed: {message}"
        return ConfigIssue(_key_path(loc), f"{value!r} is not allowed; {message}")
    return ConfigIssue(_key_path(loc), f"{value!r}: {error['msg']}")


def _issues(exc: ValidationError) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    for error in exc.errors():
        issue = _issue(error)
        if all(str(issue) != str(seen) for seen in issues):
            issues.append(issue)
    return issues


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


def _modbus_points(gate: GateConfig) -> tuple[set[str], set[str]]:
    """(relays, inputs) a modbus-rtu gate drives and reads on its unit, named for clash messages."""
    return {f"coil {gate.modbus_open_coil}"}, {f"input {getattr(gate, key)}" for key in MODBUS_INPUT_KEYS}


def _shared_port_issues(lanes: tuple[LaneConfig, ...]) -> list[ConfigIssue]:
    """Lanes on one serial port share one bus: one driver, one baud rate; Modbus lanes need their own
    unit id or, on one board, their own relay and inputs. The parkgate protocol (version 1) has no
    unit address, so its controller cannot share a port."""
    issues = []
    first: dict[str, int] = {}
    for i, lane in enumerate(lanes):
        gate, path = lane.gate, f"lanes[{i}].gate"
        j = first.setdefault(gate.port, i)
        if j == i:
            continue
        other = lanes[j].gate
        where = f"{gate.port} is also the port of lanes[{j}] ({lanes[j].name})"
        if gate.driver != other.driver:
            issues.append(ConfigIssue(f"{path}.driver", f"{gate.driver!r}: {where} with driver "
                                      f"{other.driver!r}; allowed: one driver per port"))
        elif gate.driver == "parkgate-serial":
            issues.append(ConfigIssue(f"{path}.port", f"{where}; the parkgate protocol (version 1) has no "
                                      "unit address: one controller per port (give each its own port, or "
                                      "wire the lanes to one Modbus relay board or bus)"))
        if gate.baudrate != other.baudrate:
            issues.append(ConfigIssue(f"{path}.baudrate", f"{gate.baudrate}: {where} at {other.baudrate} "
                                      "baud; allowed: one baud rate per port"))
        if gate.driver == other.driver == "modbus-rtu":
            issues += _board_clashes(lanes, i, [k for k in range(i) if lanes[k].gate.port == gate.port])
    return issues


def _board_clashes(lanes: tuple[LaneConfig, ...], i: int, earlier: list[int]) -> list[ConfigIssue]:
    """Lane ``i`` against the earlier Modbus lanes on its port: same unit id, overlapping coil/inputs."""
    issues = []
    gate = lanes[i].gate
    relays, inputs = _modbus_points(gate)
    for k in earlier:
        other = lanes[k].gate
        if other.modbus_unit != gate.modbus_unit:
            continue
        their_relays, their_inputs = _modbus_points(other)
        shared = sorted(relays & their_relays) + sorted(inputs & their_inputs)
        if shared:
            issues.append(ConfigIssue(f"lanes[{i}].gate", f"unit {gate.modbus_unit} on {gate.port}: "
                                      f"{', '.join(shared)} also used by lanes[{k}] ({lanes[k].name}); "
                                      "allowed: another modbus_unit, or on one board another "
                                      "modbus_open_coil and other inputs"))
    return issues


ROI_KEY = "camera.roi"


@functools.lru_cache(maxsize=256)
def _region(points: tuple[tuple[float, ...], ...]) -> Roi | None:
    """A lane ROI parsed (`edge.vision.roi.Roi.parse`: a valid polygon), once per distinct value: the config
    check and the lane's camera share it; empty means the whole frame."""
    return Roi.parse([list(point) for point in points], ROI_KEY) if points else None


def _roi_issues(points: tuple[tuple[float, ...], ...], path: str) -> list[ConfigIssue]:
    """A lane ROI must be a valid polygon; empty means the whole frame."""
    try:
        _region(points)
    except ValueError as error:
        return [ConfigIssue(path, str(error).removeprefix(f"{ROI_KEY}: "))]
    return []


# A lane name that is also a topic level of its own under <prefix>/cmd/ (the command answers' topic).
RESERVED_LANE_NAMES = ("result",)


def _cross_checks(cfg: Config) -> list[ConfigIssue]:
    """Rules that involve more than one value."""
    issues = []
    seen: dict[str, int] = {}
    for i, lane in enumerate(cfg.lanes):
        if lane.name in seen:
            issues.append(ConfigIssue(f"lanes[{i}].name", f"{lane.name!r} is also the name of "
                                      f"lanes[{seen[lane.name]}]; lane names must be unique"))
        seen.setdefault(lane.name, i)
        if lane.name in RESERVED_LANE_NAMES:
            reserved = (f"{lane.name!r} is reserved: it is the topic of the MQTT command answers "
                        "(<prefix>/cmd/result); choose another lane name")
            issues.append(ConfigIssue(f"lanes[{i}].name", reserved))
        issues += _modbus_input_clashes(lane.gate, f"lanes[{i}].gate")
        issues += _roi_issues(lane.camera.roi, f"lanes[{i}].camera.roi")
        if lane.exit_policy is not None and lane.direction != "exit":
            issues.append(ConfigIssue(f"lanes[{i}].exit_policy", f"{lane.exit_policy!r} is set on an entry "
                                      "lane; allowed: only on lanes with direction = \"exit\""))
    issues += _shared_port_issues(cfg.lanes)
    if not cfg.lanes:
        issues.append(ConfigIssue("lanes", "no lanes configured; add at least one [[lanes]] table"))
    chain = cfg.chain
    if chain.enabled:
        for key in ("contract_address", "keystore", "password_file", "plate_key_file"):
            if not getattr(chain, key):
                issues.append(ConfigIssue(f"chain.{key}", "is required when chain.enabled = true"))
    grace = cfg.policy.grace_before_s
    if chain.enabled and grace > CONTRACT_GRACE_PERIOD_S:
        issues.append(ConfigIssue("policy.grace_before_s", f"{grace} is above the rental contract's "
                                  f"GRACE_PERIOD ({CONTRACT_GRACE_PERIOD_S} s) while chain.enabled = true: "
                                  "the chain would reject the check-in of a car admitted that early; "
                                  f"allowed: 0..{CONTRACT_GRACE_PERIOD_S}"))
    if chain.priority_fee_gwei > chain.max_fee_gwei:
        issues.append(ConfigIssue("chain.priority_fee_gwei", f"{chain.priority_fee_gwei} is above "
                                  f"chain.max_fee_gwei = {chain.max_fee_gwei}; allowed: 0..max_fee_gwei"))
    mqtt = cfg.mqtt
    if (mqtt.tls.cert_file is None) != (mqtt.tls.key_file is None):
        issues.append(ConfigIssue("mqtt.tls", "cert_file and key_file go together: give both or neither"))
    if not mqtt.tls.enabled and (mqtt.tls.ca_file or mqtt.tls.cert_file):
        issues.append(ConfigIssue("mqtt.tls", "ca_file/cert_file need mqtt.tls.enabled = true"))
    if mqtt.password_file is not None and mqtt.username is None:
        issues.append(ConfigIssue("mqtt.password_file", "is set but mqtt.username is not; give both"))
    if mqtt.enabled and mqtt.command_key_file is None:
        issues.append(ConfigIssue("mqtt.command_key_file", "is required when mqtt.enabled = true "
                                  "(remote gate commands must be signed)"))
    if (cfg.console.cert_file is None) != (cfg.console.key_file is None):
        issues.append(ConfigIssue("console", "cert_file and key_file go together: give both or neither"))
    return issues


def config_from_mapping(data: Mapping[str, Any], source: str = "<mapping>",
                        base_dir: Path | None = None) -> Config:
    """Validate already-parsed TOML data; raises :class:`ConfigError` listing every problem."""
    try:
        cfg = Config.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(source, _issues(exc)) from None
    issues = _cross_checks(cfg)
    if issues:
        raise ConfigError(source, issues)
    cfg._source = source
    return cfg


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
        modbus = gate.driver == "modbus-rtu"
        wiring = f" unit {gate.modbus_unit} coil {gate.modbus_open_coil}" if modbus else ""
        exits = f", exit policy {lane.exit_policy or 'known'}" if lane.direction == "exit" else ""
        lines.append(f"lane {lane.name}: {lane.direction}, trigger {lane.trigger}, gate {gate.driver} on "
                     f"{gate.port} @ {gate.baudrate} baud{wiring}, camera {lane.camera.source}{exits}")
    lines.append(f"chain: on, {chain.rpc_url} chain id {chain.chain_id}" if chain.enabled else "chain: off")
    broker = f"on, {mqtt.host}:{mqtt.port} tls={mqtt.tls.enabled}" if mqtt.enabled else "off"
    lines.append(f"mqtt: {broker}, plate privacy {mqtt.plate_privacy}")
    lines.append(f"metrics: on, {metrics.host}:{metrics.port}" if metrics.enabled else "metrics: off")
    return lines
