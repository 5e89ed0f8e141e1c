"""Allow/deny list changes as signed MQTT commands (``list-add``/``list-remove`` on ``cmd/*``), applied by
the running daemon from the next car; the entry is a vehicle commitment (plates never travel over MQTT),
signed with the rest of the command.

Real parts: `parkgate run` as a subprocess, mosquitto with password and TLS, the gate emulator on a pty,
a recorded camera and the bundled models; the signed payloads come from `parkgate mqtt sign`."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time

import pytest

from edge.mqtt import generate_key, sign_command
from edge.mqtt.commands import CommandPolicy, Rejection, verify_command
from edge.mqtt.topics import Topics
from edge.tools.demo import harness as h
from edge.tools.emulator.launch import running_emulator
from edge.tools.mosquitto import MosquittoBroker, TopicWatcher

LOT, GATEWAY, LANE = "LOT-MQTT-LISTS", "lists-mqtt-gw", "entry-1"
OPERATOR = ("operator", "operator-secret-1")
GUEST = h.Vehicle("guest", "AB 123-CD", seed=721)
TOPICS = Topics("parkgate", GATEWAY)
COMMITMENT = "0x" + "ab" * 32
KEY = bytes(range(32))
POLICY = CommandPolicy(GATEWAY, frozenset({LANE}))


def test_list_args_are_signed_and_checked():
    now = 1_800_000_000_000
    args = {"list": "deny", "entry": COMMITMENT, "until": now + 60_000}
    good = sign_command(KEY, GATEWAY, "*", "list-add", now, args=args)
    command = verify_command(good, KEY, now, set(), POLICY, "*")
    assert not isinstance(command, Rejection) and command.args == args
    tampered = json.loads(good)
    tampered["args"]["list"] = "allow"  # an attacker turns a deny into an allow: the signature breaks
    verdict = verify_command(json.dumps(tampered).encode(), KEY, now, set(), POLICY, "*")
    assert isinstance(verdict, Rejection) and verdict.reason == "bad_signature"

    def rejected(action: str, lane: str, **body: object) -> Rejection:
        verdict = verify_command(sign_command(KEY, GATEWAY, lane, action, now, args=body or None), KEY, now,
                                 set(), POLICY, lane)
        assert isinstance(verdict, Rejection), verdict
        return verdict

    assert "plates never travel over MQTT" in rejected("list-add", "*", list="deny", entry="AB123CD").detail
    assert rejected("list-add", LANE, list="deny", entry=COMMITMENT).reason == "unknown_lane"
    assert rejected("list-add", "*", list="grey", entry=COMMITMENT).reason == "bad_field"
    assert rejected("list-remove", "*").reason == "bad_field"  # no args
    assert rejected("open", LANE, list="deny", entry=COMMITMENT).detail == "action 'open' takes no args"
    assert "after args.from" in rejected("list-add", "*", list="allow", entry=COMMITMENT, **{
        "from": now, "until": now}).detail
    far = rejected("list-add", "*", list="allow", entry=COMMITMENT, until=253_402_214_400_000)  # year 9999
    assert far.detail == "args.until is out of range; allowed: a time from 2000-01-01 up to 2100-01-01 (UTC)"


class Operator:
    """The operator's MQTT client (the shared TopicWatcher): publishes commands, collects their results."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self.watcher = TopicWatcher(broker, OPERATOR, TOPICS.command_result)
        assert self.watcher.subscribed.wait(10)

    def command(self, payload: bytes) -> dict:
        nonce = json.loads(payload)["nonce"]
        before = len(self.watcher.on(TOPICS.command_result))
        self.watcher.client.publish(TOPICS.command("*"), payload, qos=1).wait_for_publish(5)

        def answered() -> dict | None:
            return next((r for r in self.watcher.on(TOPICS.command_result)[before:] if r.get("nonce") == nonce
                         or (not r.get("ok") and "nonce" not in r)), None)
        result = h.wait_until(answered, 15, 0.1)
        assert result, f"no command result for {nonce}"
        return result

    def close(self) -> None:
        self.watcher.close()


@pytest.fixture(scope="module")
def lane(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("lists-mqtt")
    broker = MosquittoBroker(work / "broker", extra_users=dict([OPERATOR])).start()
    operator = None
    try:
        (work / "plate-key").write_text("22" * 32 + "\n")
        (work / "command-key").write_text(generate_key() + "\n")
        (work / "mqtt-password").write_text(broker.password + "\n")
        camera = h.LaneCamera(work / "camera", LANE)
        with running_emulator(work, name=LANE) as emulator:
            config = work / "parkgate.toml"
            config.write_text(h.toml_text(
                {"gateway": {"id": GATEWAY, "lot_id": LOT, "state_dir": str(work / "state")},
                 "chain": {"plate_key_file": str(work / "plate-key")},
                 "mqtt": {"enabled": True, "host": broker.host, "port": broker.port,
                          "username": broker.username, "password_file": str(work / "mqtt-password"),
                          "command_key_file": str(work / "command-key"),
                          "tls": {"ca_file": str(broker.ca_file)}}},
                [{"name": LANE, "gate": {"port": str(emulator.link), "baudrate": 115200, "pulse_ms": 3000},
                  "camera": {"source": str(camera.manifest), "burst_frames": 3}}]))
            daemon = h.start_daemon(config, work / "daemon.log")
            operator = Operator(broker)
            try:
                yield {"work": work, "config": config, "emulator": emulator, "camera": camera,
                       "daemon": daemon, "store": work / "state" / "parkgate.sqlite", "operator": operator}
            finally:
                daemon.stop()
    finally:
        if operator is not None:
            operator.close()
        broker.stop()


def signed(lane: dict, action: str, *extra: str, key_file: str = "command-key") -> bytes:
    out = subprocess.run([sys.executable, "-m", "edge.cli", "mqtt", "sign", "--key-file",
                          str(lane["work"] / key_file), "--gateway", GATEWAY, "--lane", "*",
                          "--action", action,
                          "--list", "deny", "--plate", GUEST.plate, "--plate-key-file",
                          str(lane["work"] / "plate-key"), "--lot", LOT, *extra],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert GUEST.plate.replace(" ", "") not in out.stdout  # only the commitment travels
    return out.stdout.strip().encode()


def visit(lane: dict, expect_open: bool, reason: str) -> None:
    result = h.play_visit(h.Visit(GUEST, LANE, expect_open, reason), lane["emulator"], lane["camera"],
                          lane["store"])
    assert result.held, (result.opened, [r["reason"] for r in result.rows], result.error)


def test_a_signed_deny_command_applies_live_and_a_forged_one_does_not(lane):
    booked = subprocess.run([sys.executable, "-m", "edge.cli", "booking", "add", "--plate", GUEST.plate,
                             "--from", "2020-01-01", "--until", "2099-01-01", "--config",
                             str(lane["config"])], capture_output=True, text=True, timeout=60)
    assert booked.returncode == 0, booked.stderr
    (lane["work"] / "other-key").write_text(generate_key() + "\n")
    forged = lane["operator"].command(signed(lane, "list-add", key_file="other-key"))
    assert forged == {"ok": False, "lane": "*", "reason": "bad_signature"}
    assert stored_entries(lane) == []  # the forged deny changed nothing

    until = time.strftime("%Y-%m-%dT%H:%M", time.localtime(time.time() + 3600))
    added = lane["operator"].command(signed(lane, "list-add", "--until", until))
    assert added["ok"] and added["action"] == "list-add", added
    stored = [(name, source.startswith("mqtt:")) for name, source in stored_entries(lane)]
    assert stored == [("deny", True)], (added, lane["daemon"].log_tail())
    visit(lane, False, "deny_listed")
    removed = lane["operator"].command(signed(lane, "list-remove"))
    assert removed["ok"], removed
    visit(lane, True, "booking_valid")  # the booking admits again, no restart
    assert lane["daemon"].alive()


def stored_entries(lane: dict) -> list[tuple[str, str]]:
    conn = sqlite3.connect(f"file:{lane['store']}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT list_name, source FROM access_list_entries").fetchall()
    finally:
        conn.close()
