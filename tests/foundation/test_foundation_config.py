"""Typed config: defaults, the example file, precise errors for bad values, secrets, fuzzing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from edge import config as config_module
from edge.config import (
    Config,
    ConfigError,
    GateConfig,
    LaneConfig,
    config_from_mapping,
    load_config,
    parse_config,
    read_secret,
    relay_map_options,
)
from firmware_bridge.relaymap import RelayMap

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "parkgate.example.toml"


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "test.toml")
    return [str(issue) for issue in info.value.issues]


def test_embedded_defaults_are_safe() -> None:
    cfg = Config()
    assert cfg.store_path == Path("/var/lib/parkgate/parkgate.sqlite")
    assert cfg.lanes == (LaneConfig(),) and cfg.lanes[0].gate.baudrate == 9600
    assert not cfg.chain.enabled and not cfg.mqtt.enabled and not cfg.metrics.enabled
    assert cfg.mqtt.plate_privacy == "hash" and cfg.mqtt.tls.enabled
    assert cfg.metrics.host == "127.0.0.1"
    assert cfg.policy.fail_mode == "closed" and cfg.policy.anti_passback == "hard"
    assert cfg.mqtt_client_id == "parkgate-parkgate-1"


def test_config_is_frozen() -> None:
    with pytest.raises(ValidationError, match="frozen"):
        Config().gateway.id = "x"  # type: ignore[misc]


def test_example_file_passes_and_documents_the_defaults() -> None:
    cfg = load_config(EXAMPLE)
    assert cfg == Config()
    assert cfg.source == str(EXAMPLE)


def test_commented_examples_in_the_example_file_are_valid_too() -> None:
    """Uncommenting every `# key = value` and `# [table]` line still gives a valid config."""
    lines = EXAMPLE.read_text().splitlines()
    example_line = re.compile(r"# ((\[\[?[a-z.]+\]\]?)|([a-z_]+ = .+))$")
    uncommented = [line[2:] if example_line.fullmatch(line) else line for line in lines]
    assert uncommented != lines
    cfg = parse_config("\n".join(uncommented), "uncommented example")
    assert [lane.name for lane in cfg.lanes] == ["entry-1", "exit-1"]
    assert cfg.lanes[1].gate.driver == "modbus-rtu" and cfg.policy.capacity == 40
    assert cfg.chain.plate_key_file == Path("/run/credentials/parkgate.service/plate-key")
    assert cfg.mqtt.tls.cert_file is not None and cfg.mqtt.client_id == "parkgate-lot-1-north"


def section_of(annotation: object) -> type[BaseModel] | None:
    """The config table inside a field's annotation (``LaneConfig``, ``tuple[LaneConfig, ...]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for m in map(section_of, get_args(annotation)) if m is not None), None)


def documented_keys(cls: type[BaseModel], prefix: str = "") -> list[str]:
    """Every key path of a config section, e.g. 'lanes.gate.baudrate' (confusion pairs excluded)."""
    keys = []
    for name, field in cls.model_fields.items():
        keys.append(prefix + name)
        inner = section_of(field.annotation)
        if inner is not None and name != "confusions":
            keys += documented_keys(inner, f"{prefix}{name}.")
    return keys


def test_example_file_mentions_every_key() -> None:
    text = EXAMPLE.read_text()
    missing = []
    for path in documented_keys(Config):
        *_, key = path.split(".")
        as_key = re.search(rf"^#? ?{key} = ", text, re.MULTILINE)
        as_table = re.search(rf"^\[\[?{re.escape(path)}\]", text, re.MULTILINE)
        if not (as_key or as_table):
            missing.append(path)
    assert missing == []


def test_values_are_read_and_relative_paths_follow_the_file(tmp_path: Path) -> None:
    conf = tmp_path / "etc" / "parkgate.toml"
    conf.parent.mkdir()
    conf.write_text("""
[gateway]
id = "north-gate"
lot_id = "HARBOUR"
state_dir = "state"
[[lanes]]
name = "in"
gate = { driver = "modbus-rtu", port = "/dev/ttyS1", baudrate = 19200, modbus_unit = 3 }
camera = { source = "rtsp://192.0.2.1/s", fps = 15 }
[[lanes]]
name = "out"
direction = "exit"
[policy]
confusions = [{ a = "0", b = "O", cost = 0.25 }]
deny_list = ["AB-123-CD"]
capacity = 40
[chain]
max_fee_gwei = 3
""")
    cfg = load_config(conf)
    assert cfg.gateway.state_dir == conf.parent / "state"
    assert cfg.store_path == conf.parent / "state" / "parkgate.sqlite"
    assert cfg.lanes[0].gate == GateConfig(driver="modbus-rtu", port="/dev/ttyS1", baudrate=19200,
                                           modbus_unit=3)
    assert (cfg.lanes[0].camera.fps, cfg.lanes[0].camera.burst_frames) == (15, 5)
    assert (cfg.lanes[1].direction, cfg.lanes[1].gate) == ("exit", GateConfig())
    assert cfg.policy.confusions[0].cost == 0.25 and cfg.policy.deny_list == ("AB-123-CD",)
    assert cfg.chain.max_fee_gwei == 3.0 and isinstance(cfg.chain.max_fee_gwei, float)


def test_out_of_range_value_names_the_key_path_value_and_allowed() -> None:
    errs = errors_of('[[lanes]]\nname = "a"\n[[lanes]]\nname = "b"\ngate = { baudrate = 9601 }\n')
    assert errs == ["lanes[1].gate.baudrate: 9601 is not allowed; "
                    "allowed: 1200 | 2400 | 4800 | 9600 | 19200 | 38400 | 57600 | 115200"]


def test_unknown_key_is_an_error_with_a_suggestion() -> None:
    errs = errors_of("[mqtt]\nprot = 1883\n")
    assert len(errs) == 1
    assert errs[0].startswith("mqtt.prot: unknown key (did you mean 'port'?); "
                              "allowed keys: enabled, host, port,")


def test_unknown_section_is_an_error() -> None:
    errs = errors_of("[camera]\nfps = 3\n")
    assert errs[0].startswith("camera: unknown key; allowed keys: gateway, store, lanes")


def test_wrong_types_are_named() -> None:
    errs = errors_of('[mqtt]\nport = "8883"\nenabled = "yes"\n[vision]\nthreads = 2.5\n')
    assert sorted(errs) == ["mqtt.enabled: 'yes' is a string; expected true or false",
                            "mqtt.port: '8883' is a string; expected an integer",
                            "vision.threads: 2.5 is a number; expected an integer"]


def test_out_of_range_and_bad_choices() -> None:
    errs = errors_of('[vision]\nmin_confidence = 1.5\nregion = "mars"\n[gateway]\nid = "no spaces"\n'
                     '[lanes.gate]\n')
    assert "vision.min_confidence: 1.5 is not allowed; allowed: 0.0..1.0" in errs
    assert ("vision.region: 'mars' is not allowed; allowed: a plate region or several joined by commas, of: "
            "any | br | eu | us | at") in "\n".join(errs)
    assert any(e.startswith("gateway.id: 'no spaces' is not allowed; allowed: 1-64 characters") for e in errs)


def test_wrong_shape_of_a_table_or_array() -> None:
    assert errors_of('lanes = "one"\n') == ["lanes: 'one' is a string; expected an array"]
    assert errors_of('gateway = 3\n') == ["gateway: 3 is an integer; expected a table"]
    assert errors_of('[policy]\nconfusions = [{ a = "0", b = "OO", cost = 2 }]\n') == [
        "policy.confusions[0].b: 'OO' is not allowed; allowed: a single character",
        "policy.confusions[0].cost: 2 is not allowed; allowed: 0 < cost <= 1"]


def test_camera_source_rules() -> None:
    assert errors_of('[[lanes]]\ncamera = { source = "rtps://typo/stream" }\n')[0].startswith(
        "lanes[0].camera.source: 'rtps://typo/stream' is not allowed; allowed: a video file path")
    for ok in ("0", "/dev/video2", "clips/day.mp4", "rtsp://192.0.2.1/s"):
        assert parse_config(f'[[lanes]]\ncamera = {{ source = "{ok}" }}\n').lanes[0].camera.source == ok


def test_every_problem_is_reported_at_once() -> None:
    errs = errors_of('[gateway]\nlog_level = "loud"\n[metrics]\nport = 0\n[store]\nbusy_timeout_ms = 1\n')
    assert [e.split(":")[0] for e in errs] == ["gateway.log_level", "store.busy_timeout_ms", "metrics.port"]


def test_cross_field_rules() -> None:
    two = '[[lanes]]\nname = "a"\n[[lanes]]\nname = "a"\n[lanes.gate]\nport = "/dev/ttyUSB1"\n'
    assert errors_of(two) == [
        "lanes[1].name: 'a' is also the name of lanes[0]; lane names must be unique"]
    assert errors_of('[[lanes]]\nname = "result"\n') == [  # it stopped the MQTT bridge at start
        "lanes[0].name: 'result' is reserved: it is the topic of the MQTT command answers "
        "(<prefix>/cmd/result); choose another lane name"]
    assert errors_of("lanes = []\n") == ["lanes: no lanes configured; add at least one [[lanes]] table"]
    assert errors_of("[chain]\nenabled = true\n") == [
        f"chain.{k}: is required when chain.enabled = true"
        for k in ("contract_address", "keystore", "password_file", "plate_key_file")]
    assert errors_of("[chain]\nmax_fee_gwei = 2\npriority_fee_gwei = 3\n") == [
        "chain.priority_fee_gwei: 3.0 is above chain.max_fee_gwei = 2.0; allowed: 0..max_fee_gwei"]
    assert errors_of('[mqtt.tls]\ncert_file = "c.pem"\n') == [
        "mqtt.tls: cert_file and key_file go together: give both or neither"]
    assert errors_of('[mqtt]\npassword_file = "p"\n') == [
        "mqtt.password_file: is set but mqtt.username is not; give both"]


def modbus_gate(**keys: int) -> str:
    """A config with one modbus-rtu lane whose gate has ``keys``."""
    wiring = "".join(f"{key} = {value}\n" for key, value in keys.items())
    return f'[[lanes]]\n[lanes.gate]\ndriver = "modbus-rtu"\n{wiring}'


def test_modbus_coil_and_inputs_out_of_the_boards_range_name_the_key_path() -> None:
    assert errors_of(modbus_gate(modbus_open_coil=12, modbus_safety_input=8, modbus_loop_input=-1)) == [
        "lanes[0].gate.modbus_open_coil: 12 is not allowed; allowed: 0..7",
        "lanes[0].gate.modbus_loop_input: -1 is not allowed; allowed: 0..7",
        "lanes[0].gate.modbus_safety_input: 8 is not allowed; allowed: 0..7"]
    assert errors_of(modbus_gate(modbus_open_limit_input=9, modbus_closed_limit_input=65535)) == [
        "lanes[0].gate.modbus_open_limit_input: 9 is not allowed; allowed: 0..7",
        "lanes[0].gate.modbus_closed_limit_input: 65535 is not allowed; allowed: 0..7"]


def test_colliding_modbus_inputs_are_an_error_naming_both_keys() -> None:
    assert errors_of('[[lanes]]\nname = "a"\n[lanes.gate]\nport = "/dev/ttyUSB1"\n'
                     + modbus_gate(modbus_loop_input=1)) == [
        "lanes[1].gate.modbus_safety_input: 1 is also lanes[1].gate.modbus_loop_input; allowed: an input "
        "0..7 not used by modbus_loop_input, modbus_open_limit_input, modbus_closed_limit_input"]
    errs = errors_of(modbus_gate(modbus_open_limit_input=5, modbus_closed_limit_input=5))
    assert [e.split(":")[0] for e in errs] == ["lanes[0].gate.modbus_closed_limit_input"]
    assert "5 is also lanes[0].gate.modbus_open_limit_input" in errs[0]


def test_colliding_inputs_are_ignored_by_the_serial_driver() -> None:
    text = '[[lanes]]\n[lanes.gate]\ndriver = "parkgate-serial"\nmodbus_loop_input = 1\n'
    assert parse_config(text).lanes[0].gate.modbus_loop_input == 1


def test_custom_modbus_wiring_reaches_the_relay_map() -> None:
    wiring = {"modbus_unit": 4, "modbus_open_coil": 7, "modbus_loop_input": 3, "modbus_safety_input": 0,
              "modbus_open_limit_input": 6, "modbus_closed_limit_input": 7}
    gate = parse_config(modbus_gate(**wiring)).lanes[0].gate
    relay_map = RelayMap.from_dict(relay_map_options(gate))
    assert (relay_map.device_id, relay_map.open_relay) == (4, 7)
    assert (relay_map.presence_input, relay_map.safety_input, relay_map.open_limit_input,
            relay_map.closed_limit_input) == (3, 0, 6, 7)


def test_default_modbus_wiring_is_the_relay_maps_default() -> None:
    gate = parse_config('[[lanes]]\ngate = { driver = "modbus-rtu" }\n').lanes[0].gate
    assert RelayMap.from_dict(relay_map_options(gate)) == RelayMap()


board_numbers = st.integers(-1, 9)


@settings(max_examples=300, deadline=None)
@given(coil=board_numbers, loop=board_numbers, safety=board_numbers, open_limit=board_numbers,
       closed_limit=board_numbers)
def test_an_accepted_modbus_config_always_builds_its_relay_map(coil: int, loop: int, safety: int,
                                                               open_limit: int, closed_limit: int) -> None:
    text = modbus_gate(modbus_open_coil=coil, modbus_loop_input=loop, modbus_safety_input=safety,
                       modbus_open_limit_input=open_limit, modbus_closed_limit_input=closed_limit)
    try:
        gate = parse_config(text).lanes[0].gate
    except ConfigError as exc:
        assert all(issue.path.startswith("lanes[0].gate.modbus_") for issue in exc.issues)
        return
    RelayMap.from_dict(relay_map_options(gate))


def test_toml_syntax_error_names_the_file_and_line() -> None:
    with pytest.raises(ConfigError, match=r"(?s)test.toml: 1 configuration error.*not valid TOML.*line 2"):
        parse_config("[gateway]\nid = \n", "test.toml")


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path / "nope.toml")


def test_no_path_uses_the_default_file_or_embedded_defaults(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG_PATH", tmp_path / "parkgate.toml")
    assert load_config() == Config() and load_config().source == "<embedded defaults>"
    (tmp_path / "parkgate.toml").write_text('[gateway]\nid = "from-etc"\n')
    assert load_config().gateway.id == "from-etc"


def test_read_secret_strips_newline_and_never_shows_content(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("hunter2\n")
    assert read_secret(secret, "chain.password_file") == "hunter2"
    secret.write_text("")
    with pytest.raises(ConfigError, match=r"chain.password_file: secret file .*pw is empty"):
        read_secret(secret, "chain.password_file")
    with pytest.raises(ConfigError, match=r"mqtt.password_file: cannot read secret file .*missing: "
                                          r"FileNotFoundError") as info:
        read_secret(tmp_path / "missing", "mqtt.password_file")
    assert "hunter2" not in str(info.value)
    with pytest.raises(ConfigError, match="no secret file configured"):
        read_secret(None, "mqtt.command_key_file")


toml_scalars = st.one_of(st.integers(-2**40, 2**40), st.floats(allow_nan=False), st.booleans(),
                         st.text(max_size=12))
toml_values = st.recursive(toml_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=10), inner, max_size=4)), max_leaves=12)
known_keys = st.sampled_from(["gateway", "store", "lanes", "vision", "policy", "chain", "mqtt", "metrics",
                              "id", "port", "gate", "camera", "tls", "baudrate", "source", "confusions"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(known_keys, st.one_of(
    toml_values, st.dictionaries(known_keys, toml_values, max_size=4),
    st.lists(st.dictionaries(known_keys, toml_values, max_size=4), max_size=2)), max_size=4))
def test_any_toml_data_gives_a_config_or_a_config_error(data: dict) -> None:
    try:
        cfg = config_from_mapping(data)
    except ConfigError as exc:
        assert exc.issues and all(str(issue) for issue in exc.issues)
    else:
        assert isinstance(cfg, Config)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_gives_a_config_or_a_config_error(text: str) -> None:
    try:
        parse_config(text)
    except ConfigError as exc:
        assert exc.issues


def test_region_takes_country_codes_joined_by_commas() -> None:
    assert parse_config('[vision]\nregion = "sk, CZ"\n', "test.toml").vision.region == "sk, CZ"
    errors = errors_of('[vision]\nregion = "sk,xx"\n')
    assert any("vision.region: 'sk,xx' is not allowed" in e for e in errors)


def test_fail_open_is_refused_until_it_exists() -> None:
    errors = errors_of('[policy]\nfail_mode = "open"\n')
    assert "policy.fail_mode: 'open' is not allowed; allowed: closed" in errors


def test_lane_roi_is_a_polygon_in_fractions_or_pixels() -> None:
    cfg = parse_config("[[lanes]]\ncamera = { roi = [[0.1, 0.2], [0.9, 0.2], [0.5, 1.0]] }\n")
    assert cfg.lanes[0].camera.roi == ((0.1, 0.2), (0.9, 0.2), (0.5, 1.0))
    assert parse_config("[[lanes]]\ncamera = { roi = [[0, 400], [1920, 400], [960, 1080]] }\n")
    assert Config().lanes[0].camera.roi == ()  # default: the whole frame


def test_lane_roi_is_parsed_once_and_kept_with_the_config() -> None:
    cfg = parse_config("[[lanes]]\ncamera = { roi = [[0.1, 0.2], [0.9, 0.2], [0.5, 1.0]] }\n")
    region = cfg.lanes[0].camera.region
    assert region is not None and region.points == ((0.1, 0.2), (0.9, 0.2), (0.5, 1.0)) and region.fractional
    assert cfg.lanes[0].camera.region is region  # the config check's parse, not a second one
    assert Config().lanes[0].camera.region is None  # the whole frame


@pytest.mark.parametrize("roi", ["[[0.1, 0.2], [0.9, 0.2]]", "[[0, 0], [1, 0], [2, 0]]", '"0,0;1,0;1,1"',
                                 "[[0.1, 0.2, 0.3], [0.9, 0.2], [0.5, 1.0]]"])
def test_bad_lane_roi_names_the_key(roi: str) -> None:
    errors = errors_of(f"[[lanes]]\ncamera = {{ roi = {roi} }}\n")
    assert errors and all(error.startswith("lanes[0].camera.roi") for error in errors), errors


# -- lanes sharing a serial port ---------------------------------------------------------------------

def shared_port(*gates: str) -> str:
    """A config with one lane per gate table (given as TOML lines), all on /dev/ttyUSB0."""
    out = []
    for n, gate in enumerate(gates):
        out += [f'[[lanes]]\nname = "lane-{n}"\n[lanes.gate]\nport = "/dev/ttyUSB0"\n{gate}']
    return "\n".join(out)


MODBUS = 'driver = "modbus-rtu"\n'
GATE_1 = ("modbus_open_coil = 1\nmodbus_loop_input = 4\nmodbus_safety_input = 5\n"
          "modbus_open_limit_input = 6\nmodbus_closed_limit_input = 7")  # gate 1 of a board (--gates 2)


def test_lanes_on_one_modbus_board_or_bus_are_accepted() -> None:
    board = shared_port(MODBUS, MODBUS + GATE_1)
    assert len(parse_config(board).lanes) == 2
    bus = shared_port(MODBUS + "modbus_unit = 1", MODBUS + "modbus_unit = 2", MODBUS + "modbus_unit = 3")
    assert len(parse_config(bus).lanes) == 3


@pytest.mark.parametrize("gates, fragments", [
    ((MODBUS, MODBUS + "modbus_open_coil = 1"),
     ["lanes[1].gate: unit 1 on /dev/ttyUSB0: input 0, input 1, input 2, input 3 also used by lanes[0]"]),
    ((MODBUS, MODBUS + "modbus_loop_input = 4\nmodbus_safety_input = 5\nmodbus_open_limit_input = 6\n"
      "modbus_closed_limit_input = 7"), ["coil 0 also used by lanes[0] (lane-0)"]),
    ((MODBUS + "baudrate = 9600", MODBUS + "modbus_unit = 2\nbaudrate = 19200"),
     ["lanes[1].gate.baudrate: 19200: /dev/ttyUSB0 is also the port of lanes[0] (lane-0) at 9600 baud"]),
    (("", MODBUS + "modbus_unit = 2"),
     ["lanes[1].gate.driver: 'modbus-rtu'", "allowed: one driver per port"]),
    (("", ""), ["lanes[1].gate.port", "has no unit address: one controller per port"]),
])
def test_lanes_sharing_a_port_in_ways_that_cannot_work_are_refused(gates: tuple[str, ...],
                                                                    fragments: list[str]) -> None:
    text = " | ".join(errors_of(shared_port(*gates)))
    for fragment in fragments:
        assert fragment in text


def test_approach_reading_keys() -> None:
    camera = parse_config("[[lanes]]\ncamera = { approach = true, track_window_s = 2 }\n").lanes[0].camera
    assert camera.approach is True and camera.track_window_s == 2.0
    assert (Config().lanes[0].camera.approach, Config().lanes[0].camera.track_window_s) == (False, 3.0)
    assert errors_of("[[lanes]]\ncamera = { track_window_s = 0.1 }\n")[0].startswith(
        "lanes[0].camera.track_window_s: 0.1 is not allowed; allowed: 0.5..30.0")
    assert errors_of('[[lanes]]\ncamera = { approach = "yes" }\n')[0].startswith("lanes[0].camera.approach")


def test_approach_reading_needs_the_presence_loop() -> None:
    errors = errors_of('[[lanes]]\ntrigger = "motion"\ncamera = { approach = true }\n')
    assert errors[0].startswith(
        "lanes[0]: camera.approach = true needs trigger = \"presence_loop\" (got 'motion')"), errors
    assert parse_config('[[lanes]]\ntrigger = "motion"\n').lanes[0].trigger == "motion"
