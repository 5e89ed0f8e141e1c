"""`parkgate gate ... --lane` while `parkgate run` holds the serial port: through the daemon's control
socket, with the gate emulator on a real pty, a recorded camera and the bundled ONNX models.

`gate watch` and `gate open` run together; the open is audited (the caller's uid from the kernel, the
reason, the camera's read and evidence) and recorded as a manual pass; hold keeps the gate open past
the controller's watchdog until release; bad requests are refused with what is allowed."""

from __future__ import annotations

import os
import re
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

from edge.daemon.control import socket_path
from edge.tools.demo import harness as h
from edge.tools.emulator.launch import running_emulator

LANE = "entry-1"
VISITOR = h.Vehicle("visitor", "KX 904-LM", seed=622)


def gate(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "edge.cli", "gate", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def parkgate_status(config: Path) -> str:
    argv = [sys.executable, "-m", "edge.cli", "status", "--config", str(config)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False).stdout


def query(store: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_gate_open_hold_release_and_watch_through_the_running_daemon(tmp_path: Path) -> None:
    state = tmp_path / "state"
    store = state / "parkgate.sqlite"
    camera = h.LaneCamera(tmp_path / "camera", LANE)
    with running_emulator(tmp_path, name=LANE) as emulator:
        config = tmp_path / "parkgate.toml"
        config.write_text(h.toml_text(
            {"gateway": {"id": "gw-control", "lot_id": "LOT-C", "state_dir": str(state)}},
            [{"name": LANE, "gate": {"port": str(emulator.link), "baudrate": 115200, "pulse_ms": 3000},
              "camera": {"source": str(camera.manifest), "burst_frames": 3}}]))
        lane = ("--lane", LANE, "--config", str(config))
        daemon = h.start_daemon(config, tmp_path / "daemon.log")
        watch = subprocess.Popen([sys.executable, "-m", "edge.cli", "gate", "watch", *lane,
                                  "--seconds", "60"], stdout=subprocess.PIPE, text=True)
        try:
            assert watch.stdout is not None
            first = watch.stdout.readline()
            sock_mode = stat.S_IMODE(os.stat(socket_path(state)).st_mode)
            status = gate("status", *lane)
            timed_watch = gate("watch", *lane, "--seconds", "1")  # beside the running watcher; ends on time
            camera.show(VISITOR)  # a visitor without a booking, at the barrier
            time.sleep(0.3)
            opened = gate("open", *lane, "--reason", "visitor, booked by phone")
            open_commands = emulator.state()["open_commands"]
            for command in ("safety 1", "safety 0"):  # drives through
                emulator.command(command)
            watched = []
            while len(watched) < 10 and not (watched and watched[-1].endswith("safety 0")):
                watched.append(watch.stdout.readline().split(" ", 1)[1].strip())
            manual = h.wait_until(lambda: query(store, "SELECT kind, reason FROM gate_events"), 15)
            held = gate("hold", *lane, "--reason", "event traffic")
            time.sleep(1.5)  # past the controller's 1 s watchdog: the daemon's heartbeats keep it held
            still_held = emulator.state()["held"]
            shown_held = h.wait_until(lambda: "HELD OPEN" in parkgate_status(config), 5)
            released = gate("release", *lane, "--reason", "event over")
            after_release = emulator.state()["held"]
            no_reason = gate("open", *lane)
            unknown = gate("open", "--lane", "nowhere", "--config", str(config), "--reason", "x")
            audit = query(store, "SELECT lane, action, source, operator, reason, result, plate_masked, "
                                 "evidence_path FROM manual_actions ORDER BY id")
        finally:
            watch.kill()
            watch.wait()
            assert daemon.stop() == 0
    assert re.match(r"\S+Z entry-1 status position=CLOSED presence=0 safety=0 held=0 faults=none", first)
    assert sock_mode == 0o660
    assert status.returncode == 0 and status.stdout.startswith("position="), status.stderr
    assert timed_watch.returncode == 0 and " entry-1 status position=CLOSED" in timed_watch.stdout
    assert opened.returncode == 0, opened.stderr
    assert re.match(r"entry-1: opened \(audited as #1; camera read K\S+M, evidence \S+\.jpg\)", opened.stdout)
    assert open_commands == 1
    assert "entry-1 position OPENING (2)" in watched  # names and raw numbers
    assert [w for w in watched if "safety" in w] == ["entry-1 safety 1", "entry-1 safety 0"]
    assert manual == [("manual", "passed,manual_open")]
    assert held.returncode == 0 and "held open" in held.stdout, held.stderr
    assert still_held is True and after_release is False and shown_held
    assert released.returncode == 0 and "released" in released.stdout
    assert no_reason.returncode == 1 and "open needs a reason (it is audited)" in no_reason.stderr
    assert unknown.returncode == 1 and "lane 'nowhere' is not in" in unknown.stderr and LANE in unknown.stderr
    me = f"uid {os.getuid()}, pid "
    assert [(a[0], a[1], a[2], a[4], a[5]) for a in audit] == [
        (LANE, "open", "socket", "visitor, booked by phone", "opened"),
        (LANE, "hold", "socket", "event traffic", "held open"),
        (LANE, "release", "socket", "event over", "released")]
    assert all(me in a[3] for a in audit)
    assert audit[0][6] is not None and "KX904LM" not in str(audit)  # masked read, never the plate
    assert Path(audit[0][7]).is_file()
    assert not socket_path(state).exists()  # removed at shutdown


# -- the request parser (pure) ---------------------------------------------------------------------

def test_bad_requests_are_refused_naming_what_is_allowed() -> None:
    import pytest

    from edge.daemon.control import Peer, Request, parse_request

    lanes = ["entry-1", "exit-1"]
    assert parse_request(b'{"action": "open", "lane": "exit-1", "reason": " visitor "}\n', lanes) == Request(
        "open", "exit-1", "visitor")
    assert parse_request(b'{"action": "watch"}', lanes) == Request("watch", None, "")
    console = parse_request(b'{"action": "open", "lane": "exit-1", "reason": "r", "operator": "console:ol"}',
                            lanes)
    peer = Peer(4242, 0, 0)
    assert console.who(peer) == f"console:ol via {peer.who}"
    assert Request("open", "x", "r").who(peer) == peer.who
    for line, fragment in [
        (b"open exit-1", "not one line of JSON"),
        (b"[1]", "must be a JSON object"),
        (b'{"action": "close", "lane": "exit-1"}', "allowed: open, hold, release, status, watch"),
        (b'{"action": "open", "lane": "x", "reason": "r"}', "lane 'x' unknown; lanes: entry-1, exit-1"),
        (b'{"action": "open", "reason": "r"}', "open needs a lane"),
        (b'{"action": "hold", "lane": "exit-1"}', "hold needs a reason"),
        (b'{"action": "open", "lane": "exit-1", "reason": "' + b"x" * 201 + b'"}', "at most 200"),
        (b'{"action": "open", "lane": "exit-1", "reason": "a\\u0000b"}', "printable"),
        (b'{"action": "open", "lane": "exit-1", "reason": "r", "user": "root"}', "unknown request keys"),
        (b'{"action": "open", "lane": "exit-1", "reason": "r", "operator": 7}', "operator must be printable"),
        (b'{"action": "open", "lane": "exit-1", "reason": "r", "operator": "' + b"o" * 65 + b'"}',
         "at most 64"),
    ]:
        with pytest.raises(ValueError, match=re.escape(fragment)):
            parse_request(line, lanes)


def test_the_socket_bounds_its_sessions_and_refuses_bad_lines(tmp_path: Path) -> None:
    """A real unix socket served by ControlServer: 0660, the caller's uid and pid from the kernel, a request
    over 4 KiB gets an error, connections beyond MAX_SESSIONS are answered "busy" instead of piling up, a
    second server keeps off a live socket and takes over a stale one."""
    import asyncio
    import socket

    import pytest

    from edge.daemon import control

    async def scenario() -> tuple[int, list[dict], dict]:
        async def operate(request: control.Request, peer: control.Peer) -> dict:
            return {"ok": True, "who": peer.who, "action": request.action}

        async def watch(lane: str | None):  # noqa: ANN202 - never yields: holds the session open
            await asyncio.Event().wait()
            yield {}

        path = tmp_path / "c.sock"
        server = await control.ControlServer(path, ["exit-1"], operate, watch).start()
        mode = stat.S_IMODE(os.stat(path).st_mode)
        loop = asyncio.get_running_loop()
        try:
            ok = await loop.run_in_executor(None, control.request, path,
                                            {"action": "open", "lane": "exit-1", "reason": "r"})
            long = await loop.run_in_executor(None, control.request, path, {"action": "x" * 5000})
            holders = []
            for _ in range(control.MAX_SESSIONS):
                sock = socket.socket(socket.AF_UNIX)
                sock.connect(str(path))
                sock.sendall(b'{"action": "watch"}\n')
                holders.append(sock)
            await asyncio.sleep(0.2)
            status = {"action": "status", "lane": "exit-1"}
            busy = await loop.run_in_executor(None, control.request, path, status)
            for sock in holders:
                sock.close()
            with pytest.raises(OSError, match="another daemon answers at"):  # a second daemon keeps off
                await control.ControlServer(path, ["exit-1"], operate, watch).start()
            return mode, [ok, long], busy
        finally:
            await server.stop()

    stale = socket.socket(socket.AF_UNIX)  # a socket file nobody listens on: a daemon that died
    stale.bind(str(tmp_path / "c.sock"))
    stale.close()
    mode, (ok, long), busy = asyncio.run(scenario())
    assert mode == 0o660
    assert ok["ok"] and f"uid {os.getuid()}, pid {os.getpid()}" in ok["who"]
    assert long == {"ok": False, "error": "request longer than 4096 bytes"}
    assert busy == {"ok": False, "error": "busy: 16 sessions already open"}
    assert not (tmp_path / "c.sock").exists()
