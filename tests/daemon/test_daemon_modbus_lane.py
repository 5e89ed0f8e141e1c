"""A lane on a Modbus RTU relay board (emulated on a pty): an allow-listed car is read and let through,
a stranger is refused, and the relay pulsed once."""

from __future__ import annotations

from edge.tools.demo import harness as h
from edge.tools.emulator.launch import running_emulator

FLEET = h.Vehicle("fleet", "AB 123-CD", seed=721)
STRANGER = h.Vehicle("stranger", "KX 904-LM", seed=622)


def test_modbus_relay_lane(tmp_path):
    camera = h.LaneCamera(tmp_path / "camera", "entry-1")
    with running_emulator(tmp_path, "--modbus", "--baud", "19200", name="entry-1") as emulator:
        config = tmp_path / "parkgate.toml"
        config.write_text(h.toml_text(
            {"gateway": {"id": "gw-modbus", "lot_id": "LOT-M-1", "state_dir": str(tmp_path / "state")},
             "policy": {"allow_list": [FLEET.plate]}},
            [{"name": "entry-1",
              "gate": {"driver": "modbus-rtu", "port": str(emulator.link), "baudrate": 19200,
                       "pulse_ms": 2000},
              "camera": {"source": str(camera.manifest), "burst_frames": 3}}]))
        daemon = h.start_daemon(config, tmp_path / "daemon.log")
        try:
            store = tmp_path / "state" / "parkgate.sqlite"
            admitted = h.play_visit(h.Visit(FLEET, "entry-1", True, "allow_listed"), emulator, camera, store)
            refused = h.play_visit(h.Visit(STRANGER, "entry-1", False, "no_booking"), emulator, camera, store)
            opens = emulator.state()["opens"]
        finally:
            assert daemon.stop() == 0
    assert admitted.held, (admitted.rows, admitted.error)
    assert refused.held, (refused.rows, refused.error)
    assert opens == 1
