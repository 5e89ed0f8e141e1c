"""`parkgate store outbox` and `... outbox drop|retry` on a real store file through the real CLI: the
deliveries the sender gave up (rejected, dead) are listed one by one, and an operator's drop ends them,
audited in the row, so the store retention prunes them with their gate event (before, they and their event
were kept for ever); an operator who fixed the cause of a rejection retries the chain row: back to pending
without its spent record number, as the sync's own retry does (tests/sync/test_sync_attacks.py: on anvil)."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pytest

from edge.cli import main
from edge.store import GateEventRow, Store

DAY = 86_400_000
NOW = 1_830_000_000_000  # 2027-12
OLD = NOW - 400 * DAY
CUTOFF = NOW - 365 * DAY  # the retention's cutoff, after the OLD events


def event(name: str, lane: str = "north") -> GateEventRow:
    return GateEventRow(event_id=f"event-0-{name}", lane=lane, direction="entry", kind="check_in",
                        reason="test", occurred_at_ms=OLD)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A config whose store holds: a (chain rejected, mqtt done), b (chain dead, mqtt done),
    c (chain pending, mqtt done), d (chain rejected, no mqtt); outbox ids in that order (1, 2, 3, ...)."""
    path = tmp_path / "parkgate.toml"
    path.write_text(f'[gateway]\nstate_dir = "{tmp_path}"\n')
    with Store(tmp_path / "parkgate.sqlite", clock=lambda: NOW) as s:
        s.raise_clock_floor(NOW)  # the best time: NOW, whatever the wall clock (behind it) says
        both = ("chain", "mqtt")
        for name, state, destinations in (("a", "rejected", both), ("b", "dead", both),
                                          ("c", "pending", both), ("d", "rejected", ("chain",))):
            s.record_gate_event(event(name, lane="south" if name == "d" else "north"), destinations)
            mqtt = s.outbox_row("mqtt", f"event-0-{name}")
            if mqtt:
                s.mark_outbox_done([mqtt.id], "ack")
            chain = s.outbox_row("chain", f"event-0-{name}")
            assert chain is not None
            if state == "rejected":
                s.mark_outbox_rejected([chain.id], "BOOKING_NOT_ACTIVE (tx 0xabc)")
            elif state == "dead":
                s.mark_outbox_dead([chain.id], "poison: payload too large")
    return path


def chain_id(config: Path, name: str) -> int:
    with Store(config.parent / "parkgate.sqlite") as s:
        row = s.outbox_row("chain", f"event-0-{name}")
        assert row is not None
        return row.id


def states(config: Path) -> dict[str, tuple[str, str | None, str | None]]:
    with Store(config.parent / "parkgate.sqlite") as s:
        return {e.removeprefix("event-0-"): (st, ack, err) for e, st, ack, err in s.conn.execute(
            "SELECT event_id, status, ack_ref, last_error FROM outbox WHERE destination = 'chain'")}


def test_outbox_lists_rejected_and_dead_rows_newest_first(config: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    a, b, d = (chain_id(config, n) for n in "abd")
    assert main(["store", "outbox", "--config", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [int(line.split()[0]) for line in lines[:-1]] == [d, b, a]
    assert lines[0].split()[1:4] == ["chain", "rejected", "event-0-d"]
    assert "south  check_in  BOOKING_NOT_ACTIVE (tx 0xabc)" in lines[0]
    assert "dead" in lines[1] and "poison: payload too large" in lines[1]
    assert lines[-1] == "3 rejected or dead outbox row(s)"

    assert main(["store", "outbox", "--state", "dead", "--json", "--config", str(config)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows == [{"id": b, "destination": "chain", "state": "dead", "event_id": "event-0-b",
                     "occurred_at_ms": OLD, "lane": "north", "kind": "check_in", "attempts": 0,
                     "last_error": "poison: payload too large", "operator_actions": []}]

    assert main(["store", "outbox", "--destination", "mqtt", "--config", str(config)]) == 0
    assert capsys.readouterr().out == "no rejected or dead outbox rows for mqtt\n"


def test_a_dropped_row_is_done_audited_and_its_gate_event_pruned(config: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    a = chain_id(config, "a")
    store = config.parent / "parkgate.sqlite"
    with Store(store) as s:
        assert s.prune(CUTOFF).gate_events == 0  # rejected: the retention keeps it for ever
    before = states(config)

    assert main(["store", "outbox", "drop", str(a), "--by", "alice", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "event-0-a" in out and "would drop 1 outbox row(s); run again with --yes" in out
    assert states(config) == before  # without --yes nothing changes

    assert main(["store", "outbox", "drop", str(a), "--by", "alice", "--yes", "--config", str(config)]) == 0
    assert "dropped 1 outbox row(s) (dropped by alice (user " in capsys.readouterr().out
    status, ack_ref, last_error = states(config)["a"]
    assert (status, last_error) == ("done", "was rejected: BOOKING_NOT_ACTIVE (tx 0xabc)")
    assert ack_ref is not None and ack_ref.startswith("dropped by alice (user ")
    with Store(store) as s:
        (dropped_at,) = s.conn.execute("SELECT updated_at_ms FROM outbox WHERE id = ?", (a,)).fetchone()
        assert NOW <= dropped_at < NOW + DAY  # the best time (the store's floor), not the wall clock
        # the drop, audited in the row, is kept retention_days after it happened, with its gate event
        assert s.prune(OLD + 1).gate_events == 0 and s.gate_event("event-0-a") is not None
        pruned = s.prune(dropped_at + 1)
        assert (pruned.gate_events, pruned.outbox) == (1, 2)  # event a with its chain and mqtt rows
        assert s.gate_event("event-0-a") is None
        assert s.gate_event("event-0-b") is not None  # still dead: kept


def test_drop_refuses_rows_not_rejected_or_dead_and_changes_nothing(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, c = chain_id(config, "a"), chain_id(config, "c")
    before = states(config)
    assert main(["store", "outbox", "drop", str(a), str(c), "999", "--by", "alice", "--yes",
                 "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert (f"cannot drop outbox row(s) {c} (pending), 999 (no such row): only rows in state rejected or "
            "dead can be dropped; nothing was dropped") in err
    assert states(config) == before  # a, which could go, stays rejected too


def test_drop_all_dead_drops_only_the_dead_rows(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    drop_dead = ["store", "outbox", "drop", "--all-dead", "--by", "bob", "--yes", "--config", str(config)]
    assert main(drop_dead) == 0
    assert "dropped 1 outbox row(s)" in capsys.readouterr().out
    assert {name: state for name, (state, _, _) in states(config).items()} == {
        "a": "rejected", "b": "done", "c": "pending", "d": "rejected"}
    assert main(drop_dead) == 0
    assert capsys.readouterr().out == "nothing to drop\n"


@pytest.mark.parametrize("argv", [["drop", "--by", "alice"], ["drop", "1", "--all-rejected", "--by", "alice"],
                                  ["drop", "--all-rejected", "--all-dead", "--by", "alice"]])
def test_drop_needs_the_rows_named_one_way(config: Path, argv: list[str],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["store", "outbox", *argv, "--yes", "--config", str(config)]) == 2
    assert "name the rows to drop one way: outbox ids (ID [ID ...]), --all-rejected or --all-dead" in (
        capsys.readouterr().err)


@pytest.mark.parametrize(("argv", "message"), [
    (["drop", "1", "--yes"], "the following arguments are required: --by"),
    (["drop", "0", "--by", "alice"], "'0' is not allowed; allowed: an outbox id, a whole number 1 or more"),
    (["--state", "pending"], "invalid choice: 'pending' (choose from 'rejected', 'dead')"),
])
def test_bad_arguments_are_named_with_what_is_allowed(argv: list[str], message: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["store", "outbox", *argv])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_drop_needs_a_name_in_by(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = chain_id(config, "a")
    assert main(["store", "outbox", "drop", str(a), "--by", " ", "--yes", "--config", str(config)]) == 2
    assert "--by is empty; allowed: who drops them, e.g. --by alice" in capsys.readouterr().err
    assert states(config)["a"][0] == "rejected"


def numbers(config: Path) -> dict[str, int]:
    """The record number (chain_seqs) of each chain row that has one, by event name."""
    with Store(config.parent / "parkgate.sqlite") as s:
        return {e.removeprefix("event-0-"): seq for e, seq in s.conn.execute(
            "SELECT o.event_id, c.seq FROM chain_seqs c JOIN outbox o ON o.id = c.outbox_id")}


def number_rejected_rows(config: Path) -> None:
    """Rows a and d were sent (numbers 1 and 2) before the contract rejected them."""
    with Store(config.parent / "parkgate.sqlite") as s:
        s.conn.executemany("INSERT INTO chain_seqs (outbox_id, seq) VALUES (?, ?)",
                           [(chain_id(config, "a"), 1), (chain_id(config, "d"), 2)])


def test_a_retried_row_is_pending_without_its_spent_number_and_audited(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    number_rejected_rows(config)
    a = chain_id(config, "a")
    before = states(config)
    assert main(["store", "outbox", "retry", str(a), "--by", "alice", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "event-0-a" in out and "would retry 1 outbox row(s); run again with --yes to retry them" in out
    assert (states(config), numbers(config)) == (before, {"a": 1, "d": 2})  # without --yes nothing changes

    assert main(["store", "outbox", "retry", str(a), "--by", "alice", "--yes", "--config", str(config)]) == 0
    assert "retried 1 outbox row(s) (retried by alice (user " in capsys.readouterr().out
    status, ack_ref, last_error = states(config)["a"]
    assert (status, ack_ref) == ("pending", None)
    assert last_error is not None and last_error.startswith("retried by alice (user ")
    assert last_error.endswith("; was rejected: BOOKING_NOT_ACTIVE (tx 0xabc)")
    assert numbers(config) == {"d": 2}  # a's number is spent: the sync gives it a new one
    assert states(config)["d"][0] == "rejected"
    with Store(config.parent / "parkgate.sqlite") as s:
        assert [r.event_id for r in s.pending_outbox("chain")] == ["event-0-a", "event-0-c"]


def test_retry_refuses_dead_other_and_missing_rows_and_changes_nothing(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    number_rejected_rows(config)
    a, b, c = (chain_id(config, n) for n in "abc")
    with Store(config.parent / "parkgate.sqlite") as s:
        mqtt_a = s.outbox_row("mqtt", "event-0-a")
        assert mqtt_a is not None
    before = states(config)
    assert main(["store", "outbox", "retry", str(a), str(b), str(c), str(mqtt_a.id), "999", "--by", "alice",
                 "--yes", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert (f"cannot retry outbox row(s) {b} (dead: it cannot be sent), {c} (pending), {mqtt_a.id} (a mqtt "
            "row, done), 999 (no such row): only chain rows in state rejected can be retried; nothing was "
            "retried") in err
    assert (states(config), numbers(config)) == (before, {"a": 1, "d": 2})  # a, which could go, stays too


def test_retry_all_rejected_retries_every_rejected_chain_row(config: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    number_rejected_rows(config)
    retry_all = ["store", "outbox", "retry", "--all-rejected", "--by", "bob", "--yes",
                 "--config", str(config)]
    assert main(retry_all) == 0
    assert "retried 2 outbox row(s)" in capsys.readouterr().out
    assert {name: state for name, (state, _, _) in states(config).items()} == {
        "a": "pending", "b": "dead", "c": "pending", "d": "pending"}
    assert numbers(config) == {}
    assert main(retry_all) == 0
    assert capsys.readouterr().out == "nothing to retry\n"


@pytest.mark.parametrize(("argv", "code", "message"), [
    (["retry", "--by", "alice"], 2,
     "name the rows to retry one way: outbox ids (ID [ID ...]) or --all-rejected (given: none)"),
    (["retry", "1", "--by", " "], 2, "--by is empty; allowed: who retries them, e.g. --by alice"),
])
def test_retry_needs_the_rows_named_and_a_name(config: Path, argv: list[str], code: int, message: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["store", "outbox", *argv, "--yes", "--config", str(config)]) == code
    assert message in capsys.readouterr().err
    assert states(config)["a"][0] == "rejected"


def test_retry_has_no_all_dead(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["store", "outbox", "retry", "--all-dead", "--by", "alice"])
    assert exit_.value.code == 2
    assert "unrecognized arguments: --all-dead" in capsys.readouterr().err


def test_each_dropped_or_retried_row_is_logged_with_the_operator_and_its_sudo_user(
        config: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, d = (chain_id(config, n) for n in "abd")
    monkeypatch.setenv("SUDO_USER", "bob")
    with caplog.at_level(logging.WARNING, logger="edge.cli.store"):
        drop = ["store", "outbox", "drop", str(a), str(b), "--by", "alice", "--config", str(config)]
        assert main(drop) == 1
        assert caplog.records == []  # a dry run changes nothing: nothing to log
        assert main([*drop, "--yes"]) == 0
        retry = ["store", "outbox", "retry", str(d), "--by", "carol", "--config", str(config)]
        assert main([*retry, "--yes"]) == 0
    capsys.readouterr()
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in lines] == ["WARNING"] * 3
    assert lines[0][1].startswith(f"outbox row {a} (chain) of gate event event-0-a dropped by alice (user ")
    assert lines[0][1].endswith(", sudo by bob); was rejected: BOOKING_NOT_ACTIVE (tx 0xabc)")
    assert lines[1][1].startswith(f"outbox row {b} (chain) of gate event event-0-b dropped by alice")
    assert lines[1][1].endswith("; was dead: poison: payload too large")
    assert lines[2][1].startswith(f"outbox row {d} (chain) of gate event event-0-d retried by carol (user ")
    ack_ref = states(config)["a"][1]
    assert ack_ref is not None and ack_ref.endswith(", sudo by bob)")


def test_chain_status_counts_dropped_rows_apart_from_delivered_ones(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Store(config.parent / "parkgate.sqlite") as s:
        s.mark_outbox_done([chain_id(config, "c")], "0xreceipt")  # delivered
    assert main(["store", "outbox", "drop", "--all-rejected", "--by", "alice", "--yes",
                 "--config", str(config)]) == 0
    capsys.readouterr()
    assert main(["chain", "status", "--json", "--config", str(config)]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["done"], status["dropped"], status["rejected"], status["dead"]) == (1, 2, 0, 1)


@pytest.mark.parametrize("verb", ["drop", "retry"])
@pytest.mark.parametrize(("flags", "named"), [(["--state", "rejected"], "--state rejected"),
                                              (["--destination", "chain"], "--destination chain")])
def test_drop_and_retry_refuse_the_lists_filters(config: Path, verb: str, flags: list[str], named: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    before = states(config)
    assert main(["store", "outbox", *flags, verb, "--all-rejected", "--by", "x", "--yes",
                 "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert (f"parkgate store outbox {verb}: {named} only filter the list (`parkgate store outbox`), never "
            f"the rows to {verb}; allowed: name them by outbox id or with --all-rejected") in err
    assert states(config) == before


def test_the_state_filter_before_drop_all_dead_drops_nothing(config: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    before = states(config)
    assert main(["store", "outbox", "--state", "rejected", "drop", "--all-dead", "--by", "x", "--yes",
                 "--config", str(config)]) == 2
    assert "--state rejected only filter the list" in capsys.readouterr().err
    assert states(config) == before  # before: every dead row was dropped


@pytest.mark.parametrize("verb", ["drop", "retry"])
def test_a_dry_run_reads_while_the_daemon_holds_the_write_lock(config: Path, verb: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    config.write_text(config.read_text() + "[store]\nbusy_timeout_ms = 100\n")
    a = chain_id(config, "a")
    writer = sqlite3.connect(config.parent / "parkgate.sqlite", isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # the daemon in the middle of a write
        assert main(["store", "outbox", verb, str(a), "--by", "alice", "--config", str(config)]) == 1
        out, err = capsys.readouterr()
        assert f"would {verb} 1 outbox row(s)" in out and err == ""
        assert main(["store", "outbox", verb, str(a), "--by", "alice", "--yes",
                     "--config", str(config)]) == 1  # the change itself waits for the lock
        assert f"cannot {verb}: database is locked" in capsys.readouterr().err
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_what_operators_did_to_a_row_stays_with_it_after_delivery_and_another_rejection(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """last_error holds only the latest state; the row's operator_actions keep every drop and retry."""
    a, b = chain_id(config, "a"), chain_id(config, "b")
    retry = ["store", "outbox", "retry", str(a), "--yes", "--config", str(config)]
    assert main([*retry, "--by", "carol"]) == 0
    with Store(config.parent / "parkgate.sqlite") as s:
        s.mark_outbox_rejected([a], "WRONG_LOT (tx 0xdef)")  # the cause was still there
    assert main([*retry, "--by", "dave"]) == 0
    assert main(["store", "outbox", "drop", str(b), "--by", "erin", "--yes", "--config", str(config)]) == 0
    with Store(config.parent / "parkgate.sqlite") as s:
        s.mark_outbox_done([a], "0xreceipt")  # delivered at last: last_error is gone
    assert states(config)["a"] == ("done", "0xreceipt", None)
    capsys.readouterr()

    assert main(["store", "outbox", "--acted", "--json", "--config", str(config)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["id"], r["state"]) for r in rows] == [(b, "done"), (a, "done")]
    actions = {r["id"]: r["operator_actions"] for r in rows}
    assert [(x["action"], x["was"]) for x in actions[a]] == [
        ("retry", "rejected: BOOKING_NOT_ACTIVE (tx 0xabc)"), ("retry", "rejected: WRONG_LOT (tx 0xdef)")]
    # The best time: the store's floor carried forward on the monotonic clock, not the wall clock (behind).
    assert all(NOW <= x["at_ms"] < NOW + DAY for x in actions[a])
    assert [x["who"].split(" (")[0] for x in actions[a]] == ["retried by carol", "retried by dave"]
    assert [(x["action"], x["was"]) for x in actions[b]] == [("drop", "dead: poison: payload too large")]
    assert actions[b][0]["who"].startswith("dropped by erin (user ")

    assert main(["store", "outbox", "--acted", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "retried by dave (user " in out and "; was rejected: WRONG_LOT (tx 0xdef)" in out
    assert out.endswith("2 operator-handled outbox row(s)\n")
    assert main(["store", "outbox", "--acted", "--state", "rejected", "--config", str(config)]) == 0
    assert capsys.readouterr().out == "no rejected operator-handled outbox rows\n"


def test_operator_actions_are_append_only_and_a_hand_edited_one_does_not_break_reading(config: Path) -> None:
    a, c = chain_id(config, "a"), chain_id(config, "c")
    assert main(["store", "outbox", "retry", str(a), "--by", "carol", "--yes", "--config", str(config)]) == 0
    with Store(config.parent / "parkgate.sqlite") as s:
        for rewrite in ("'[]'", "json_set(operator_actions, '$[0].who', 'mallory')", "'not json'"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only|CHECK constraint failed"):
                s.conn.execute(f"UPDATE outbox SET operator_actions = {rewrite} WHERE id = ?", (a,))
        s.conn.execute("UPDATE outbox SET operator_actions = json_insert(operator_actions, '$[#]', 7) "
                       "WHERE id = ?", (c,))  # appended by hand, in no shape the store writes
        pending = {row.id: row for row in s.pending_outbox("chain")}
        assert [x.action for x in pending[a].operator_actions] == ["retry"]
        assert [(x.action, x.was) for x in pending[c].operator_actions] == [("unreadable", "7")]


def test_a_store_of_the_previous_version_gains_an_empty_history_per_row(tmp_path: Path) -> None:
    from edge.store import MIGRATIONS

    path = tmp_path / "old.sqlite"
    with Store(path, clock=lambda: NOW, migrations=MIGRATIONS[:-1]) as s:
        s.record_gate_event(event("a"), ("chain",))
    with Store(path, clock=lambda: NOW) as s:
        [row] = s.pending_outbox("chain")
        assert row.operator_actions == ()
        assert s.conn.execute("SELECT operator_actions FROM outbox").fetchone()[0] == "[]"
