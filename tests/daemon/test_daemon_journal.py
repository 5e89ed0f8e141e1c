"""The pass journal: a grant is committed before the gate opens, so a daemon SIGKILLed between the
open and the record loses no pass (it is recorded at the next start), and a normally recorded pass
is never recorded twice.

Unit tests of the pure mapping and the store methods (real SQLite file), then `parkgate run` as a
subprocess with the gate emulator on a real pty, a recorded camera, the bundled ONNX models and
MQTT on (no broker listening: outbox rows stay pending, which is what is checked here)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from edge.access.decide import commitment_function
from edge.access.types import Decision, Direction, Reason
from edge.daemon.records import (
    RESTART_OUTCOME,
    UNACKED_RESTART_OUTCOME,
    destinations_for,
    journal_row,
    rows_for_journaled_pass,
    rows_for_pass,
)
from edge.lanes.machine import Outcome, PassRecord, Snapshot
from edge.mqtt.commands import generate_key
from edge.store import Booking, RentalEvent, Store
from edge.tools.demo import harness as h
from edge.tools.emulator.launch import running_emulator
from edge.tools.net import free_tcp_port
from edge.vision.types import PlateRead

COMMITMENT = "0x" + "ab" * 32
LOT = "LOT-T-J"
KEY_HEX = "22" * 32
HASH = "0x" + "00" * 32
OWNER = "0x" + "11" * 20
NORMAL = h.Vehicle("normal", "AB 123-CD", seed=721)
KILLED = h.Vehicle("killed", "ZW 771-QP", seed=224)
LANE = "entry-1"


def opening(direction: Direction = Direction.ENTRY, reason: Reason = Reason.BOOKING_VALID,
            booking: str | None = "7", pass_no: int = 3) -> PassRecord:
    """A pass as the lane shell journals it when the gate is about to open."""
    decision = Decision(True, reason, None, booking, "AB123CD", COMMITMENT)
    read = PlateRead("AB123CD", 0.93)
    return PassRecord(LANE, direction, pass_no, Outcome.PASSED, 1_000, 2_000, read, decision,
                      snapshot=Snapshot("/tmp/ev.jpg", "c" * 64))


def ids():
    counter = iter(range(100))
    return lambda ms: f"event-{ms}-{next(counter):04d}"


# -- pure mapping ----------------------------------------------------------------------------------

def test_journal_row_is_the_check_in_marked_as_recovered_without_plain_plate():
    row = journal_row(opening(), "journal-0001")
    assert (row.event_id, row.lane, row.direction, row.kind) == ("journal-0001", LANE, "entry", "check_in")
    assert row.reason == f"{RESTART_OUTCOME},booking_valid"
    assert (row.booking_id, row.plate_commitment, row.plate_masked) == ("7", COMMITMENT, "AB***D")
    assert (row.confidence, row.evidence_sha256, row.occurred_at_ms) == (0.93, "c" * 64, 2_000)
    assert "AB123CD" not in repr(row)


def test_recovered_entry_is_verified_first_like_the_normal_path():
    normal = rows_for_pass(opening(), ids(), "requested")
    recovered = rows_for_journaled_pass(journal_row(opening(), "journal-0001"), True, ids(), "requested")
    assert [r.kind for r in recovered] == [r.kind for r in normal] == ["verified", "check_in"]
    assert recovered[0].reason == "plate_verified" and recovered[1].event_id == "journal-0001"
    verified = rows_for_journaled_pass(journal_row(opening(), "j-000001"), True, ids(), "verified")
    assert [r.kind for r in verified] == ["check_in"]


def test_an_open_never_acknowledged_is_kept_as_a_fault_not_a_check_in():
    rows = rows_for_journaled_pass(journal_row(opening(), "journal-0004"), False, ids(), "requested")
    assert [(r.event_id, r.kind, r.reason) for r in rows] == [
        ("journal-0004", "fault", f"{UNACKED_RESTART_OUTCOME},booking_valid")]
    assert rows[0].booking_id == "7" and destinations_for(rows[0], chain=True, mqtt=True) == ("mqtt",)


def test_recovered_exit_and_manual_open_keep_their_kind():
    leave = journal_row(opening(Direction.EXIT, Reason.SESSION_EXIT), "journal-0002")
    assert [r.kind for r in rows_for_journaled_pass(leave, True, ids(), "checked_in")] == ["check_out"]
    assert leave.reason == f"{RESTART_OUTCOME},session_exit"
    manual = journal_row(opening(reason=Reason.MANUAL_OPEN, booking=None), "journal-0003")
    assert manual.kind == "manual" and manual.reason == f"{RESTART_OUTCOME},manual_open"


def exit_of(booking: str = "7") -> PassRecord:
    """The car's exit, an hour after its entry's grant."""
    decision = Decision(True, Reason.BOOKING_VALID, None, booking, "AB123CD", COMMITMENT)
    return PassRecord("exit-1", Direction.EXIT, 9, Outcome.PASSED, 3_600_000, 3_601_000,
                      PlateRead("AB123CD", 0.91), decision)


def test_an_exit_proves_an_entry_recorded_unconfirmed_at_a_restart():
    """`make chaos` 2026-12-02: a daemon killed between an entry's open and its ack recorded that entry
    as a fault; the car had driven in, and its check-out was refused by the contract (no check-in)."""
    [entry] = rows_for_journaled_pass(journal_row(opening(), "journal-0004"), False, ids(), "requested")
    rows = rows_for_pass(exit_of(), ids(), "requested", entry)
    assert [(r.kind, r.lane, r.occurred_at_ms) for r in rows] == [
        ("verified", LANE, 2_000), ("check_in", LANE, 2_000), ("check_out", "exit-1", 3_601_000)]
    assert rows[1].reason == "passage_proven_at_exit,booking_valid" and rows[1].event_id != entry.event_id
    assert (rows[1].booking_id, rows[1].plate_commitment) == ("7", COMMITMENT)
    assert all(destinations_for(r, chain=True, mqtt=False) == ("chain",) for r in rows)
    assert [r.kind for r in rows_for_pass(exit_of(), ids(), "verified", entry)] == ["check_in", "check_out"]


def test_an_exit_infers_no_entry_from_anything_else():
    [entry] = rows_for_journaled_pass(journal_row(opening(), "journal-0004"), False, ids(), "requested")
    checked_in = rows_for_pass(opening(), ids(), "verified")[-1]
    for status, last in (("checked_in", entry), ("requested", None), ("requested", checked_in),
                         ("requested", rows_for_pass(opening(), ids(), "verified", None)[0]),
                         ("requested", rows_for_pass(exit_of("8"), ids(), "checked_in")[0])):
        rows = rows_for_pass(exit_of(), ids(), status, last)
        assert [r.kind for r in rows] == ["check_out"], (status, last)
    assert [r.kind for r in rows_for_pass(exit_of("8"), ids(), "requested", entry)] == ["check_out"]


# -- store -----------------------------------------------------------------------------------------

def keeper_after_an_unconfirmed_entry(store: Store):  # noqa: ANN201 - edge.daemon.gatekeeper.Gatekeeper
    """Booking 7 requested; its entry journaled, never acknowledged, and recovered at a restart as a fault."""
    from edge.access import Policy
    from edge.clock import TrustedClock
    from edge.daemon.gatekeeper import Gatekeeper

    store.upsert_rental_event(RentalEvent("1", "1", LOT, OWNER, 0, 10**13, 1, "open", 1, HASH, 0))
    store.upsert_booking(Booking("7", "1", "1", LOT, OWNER, COMMITMENT, 0, 10**13, "requested", 1, HASH, 1))
    keeper = Gatekeeper(store, Policy(LOT), lambda plate: COMMITMENT, chain_on=True, mqtt_on=False,
                        clock=TrustedClock(wall=lambda: 1_900_000_000_000))
    store.journal_pass(3, journal_row(opening(), "journal-0004"))
    assert keeper.recover() == 1
    return keeper


def test_the_gatekeeper_records_the_proven_entry_before_the_exit(tmp_path):
    """Real store: a journaled entry whose open was never acknowledged is recovered as a fault; the car's
    exit is then recorded after the check-in it proves, both queued for the chain."""
    with Store(tmp_path / "s.sqlite") as store:
        keeper = keeper_after_an_unconfirmed_entry(store)
        keeper.record(exit_of())
        rows = [row for _, row in store.gate_events()]
        assert [(r.kind, r.reason.split(",")[0]) for r in rows] == [
            ("fault", UNACKED_RESTART_OUTCOME), ("verified", "plate_verified"),
            ("check_in", "passage_proven_at_exit"), ("check_out", "passed")]
        assert [r.kind for r in store.pending_outbox("chain")[-2:] for r in [r.gate_event()]] == [
            "check_in", "check_out"]


def test_an_exit_recovered_from_the_journal_proves_the_unconfirmed_entry_too(tmp_path):
    """Two kills: one between the entry's open and its ack, one between the exit's ack and its record."""
    with Store(tmp_path / "s.sqlite") as store:
        keeper = keeper_after_an_unconfirmed_entry(store)
        leave = exit_of()
        store.journal_pass(9, journal_row(leave, "journal-0009"))
        store.mark_journaled_pass_opened("exit-1", 9)
        assert keeper.recover() == 1  # the exit: acknowledged, passage assumed
        rows = [row for _, row in store.gate_events()]
        assert [(r.kind, r.reason.split(",")[0]) for r in rows] == [
            ("fault", UNACKED_RESTART_OUTCOME), ("verified", "plate_verified"),
            ("check_in", "passage_proven_at_exit"), ("check_out", RESTART_OUTCOME)]


def test_store_journal_round_trip_replace_and_clear(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        first = journal_row(opening(pass_no=1), "journal-0001")
        store.journal_pass(1, first)
        store.journal_pass(2, journal_row(opening(pass_no=2), "journal-0002"))
        again = journal_row(opening(pass_no=2), "journal-0003")
        store.journal_pass(2, again)  # a second open of the same pass replaces its note
        store.mark_journaled_pass_opened(LANE, 1)
        assert store.journaled_passes() == [(1, True, first), (2, False, again)]
        with store.transaction():
            store.clear_journaled_pass(LANE, 1)
        store.clear_journaled_pass("other-lane", 2)
        assert store.journaled_passes() == [(2, False, again)]


# -- the daemon, killed mid-pass -------------------------------------------------------------------

def seed_bookings(store_path: Path, now_ms: int) -> dict[str, str]:
    commit = commitment_function(bytes.fromhex(KEY_HEX), LOT)
    hour = 3_600_000
    with Store(store_path) as store:
        store.upsert_rental_event(RentalEvent("1", "1", LOT, OWNER, now_ms - 48 * hour, now_ms + 48 * hour, 1,
                                              "open", 1, HASH, 0))
        for n, vehicle in enumerate((NORMAL, KILLED), 1):
            store.upsert_booking(Booking(str(n), "1", "1", LOT, OWNER, commit(vehicle.plate), now_ms - hour,
                                         now_ms + hour, "requested", 1, HASH, n))
    return {NORMAL.name: "1", KILLED.name: "2"}


def query(store_path: Path, sql: str, *args: object) -> list[tuple]:
    conn = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def rows_of(store_path: Path, booking: str) -> list[tuple[str, str, str]]:
    return [tuple(r) for r in query(store_path, "SELECT kind, reason, event_id FROM gate_events "
                                                "WHERE booking_id = ? ORDER BY seq", booking)]


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("journal")
    state = work / "state"
    state.mkdir()
    store = state / "parkgate.sqlite"
    (work / "plate-key").write_text(KEY_HEX + "\n")
    (work / "command-key").write_text(generate_key() + "\n")
    bookings = seed_bookings(store, int(time.time() * 1000))
    camera = h.LaneCamera(work / "camera", LANE)
    with running_emulator(work, name=LANE) as emulator:
        config = work / "parkgate.toml"
        config.write_text(h.toml_text(
            {"gateway": {"id": "gw-journal", "lot_id": LOT, "state_dir": str(state)},
             "chain": {"plate_key_file": str(work / "plate-key")},
             "mqtt": {"enabled": True, "port": free_tcp_port(), "tls": {"enabled": False},
                      "command_key_file": str(work / "command-key")}},
            [{"name": LANE, "gate": {"port": str(emulator.link), "baudrate": 115200, "pulse_ms": 3000},
              "camera": {"source": str(camera.manifest), "burst_frames": 3}}]))
        daemon = h.start_daemon(config, work / "daemon.log")
        try:
            normal = h.play_visit(h.Visit(NORMAL, LANE, True, "booking_valid"), emulator, camera, store)
            opens = emulator.state()["opens"]
            camera.show(KILLED)
            time.sleep(0.3)
            emulator.command("presence 1")
            opened = h.wait_until(lambda: emulator.state()["opens"] > opens, 15, 0.01)
            # the open acknowledged (journal row marked) and the pass not recorded: kill now
            acked = h.wait_until(lambda: query(store, "SELECT opened FROM pass_journal") == [(1,)], 5, 0.01)
            daemon.kill()
            daemon.proc.wait(10)
            before_restart = rows_of(store, bookings[KILLED.name])
            journal_before = query(store, "SELECT lane, kind, reason FROM pass_journal")
            for command in ("safety 1", "presence 0", "safety 0"):  # the car drives through meanwhile
                emulator.command(command)
            camera.show(None)
            daemon = h.start_daemon(config, work / "daemon.log")
            yield {"store": store, "bookings": bookings, "normal": normal, "opened": opened, "acked": acked,
                   "before_restart": before_restart, "journal_before": journal_before,
                   "log": (work / "daemon.log").read_text(errors="replace")}
        finally:
            daemon.stop()


def test_the_gate_opened_and_the_kill_left_only_the_journal_row(killed_run):
    assert killed_run["normal"].held, killed_run["normal"]
    assert killed_run["opened"] and killed_run["acked"]
    assert killed_run["before_restart"] == []
    assert killed_run["journal_before"] == [(LANE, "check_in", f"{RESTART_OUTCOME},booking_valid")]


def test_restart_records_the_killed_pass_once_with_its_outbox_rows(killed_run):
    store, booking = killed_run["store"], killed_run["bookings"][KILLED.name]
    rows = rows_of(store, booking)
    assert [(kind, reason) for kind, reason, _ in rows] == [
        ("verified", "plate_verified"), ("check_in", f"{RESTART_OUTCOME},booking_valid")]
    for _, _, event_id in rows:
        assert query(store, "SELECT destination, status FROM outbox WHERE event_id = ?", event_id) == [
            ("mqtt", "pending")]
    assert query(store, "SELECT count(*) FROM pass_journal") == [(0,)]
    assert "granted before a restart and never recorded" in killed_run["log"]
    assert "ZW771QP" not in str(query(store, "SELECT * FROM gate_events"))


def test_a_normally_recorded_pass_is_not_recorded_again_after_the_restart(killed_run):
    store, booking = killed_run["store"], killed_run["bookings"][NORMAL.name]
    rows = rows_of(store, booking)
    assert [(kind, reason) for kind, reason, _ in rows] == [
        ("verified", "plate_verified"), ("check_in", "passed,booking_valid")]
    recovered = query(store, "SELECT count(*) FROM gate_events WHERE reason LIKE ?", f"{RESTART_OUTCOME}%")
    assert recovered == [(1,)]
