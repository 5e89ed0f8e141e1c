"""The outbox publisher over a real store file: window, order, done only on PUBACK, retry on refusal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.mqtt.outbox import DESTINATION, OutboxPublisher
from edge.store import GateEventRow, Store, new_event_id


def gate_event(i: int) -> GateEventRow:
    return GateEventRow(event_id=new_event_id(1_795_630_000_000 + i), lane="in-1", direction="entry",
                     kind="check_in", reason="booking_valid", occurred_at_ms=1_795_630_000_000 + i,
                     plate_masked="AB***3")


class Wire:
    """Stands in for the paho client's publish: records what was sent, returns message ids."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, str, dict]] = []

    def publish(self, topic: str, payload: bytes) -> int:
        mid = len(self.sent) + 1
        self.sent.append((mid, topic, json.loads(payload)))
        return mid


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with Store(tmp_path / "gw.sqlite") as s:
        yield s


def make(store: Store, wire: Wire, window: int = 4) -> OutboxPublisher:
    return OutboxPublisher(store, wire.publish, "parkgate/gw-1/events", lambda p: {**p, "redacted": True},
                           window)


def status(store: Store, event_id: str) -> str:
    row = store.outbox_row(DESTINATION, event_id)
    assert row is not None
    return row.status


def test_window_bounds_unacknowledged_messages_and_order_is_kept(store: Store) -> None:
    events = [gate_event(i) for i in range(10)]
    for e in events:
        store.record_gate_event(e, destinations=("mqtt",))
    wire = Wire()
    pub = make(store, wire)
    assert pub.fill() == 4 and pub.fill() == 0
    assert [m[2]["event_id"] for m in wire.sent] == [e.event_id for e in events[:4]]
    assert all(m[1] == "parkgate/gw-1/events" and m[2]["redacted"] for m in wire.sent)
    assert status(store, events[0].event_id) == "in_flight"
    pub.acknowledge([(1, None), (2, None)])
    assert status(store, events[0].event_id) == "done" and status(store, events[2].event_id) == "in_flight"
    assert pub.fill() == 2
    assert [m[2]["event_id"] for m in wire.sent][4:] == [e.event_id for e in events[4:6]]


def test_refused_puback_goes_back_to_pending_and_is_sent_again(store: Store) -> None:
    event = gate_event(0)
    store.record_gate_event(event, destinations=("mqtt",))
    wire = Wire()
    pub = make(store, wire)
    pub.fill()
    pub.acknowledge([(1, "Not authorized")])
    row = store.outbox_row(DESTINATION, event.event_id)
    assert row is not None and row.status == "pending" and "Not authorized" in (row.last_error or "")
    assert pub.fill() == 1 and wire.sent[-1][2]["event_id"] == event.event_id


def test_a_new_publisher_resends_rows_left_in_flight(store: Store) -> None:
    """A crash between send and PUBACK: the row is sent again (a bounded duplicate), never lost."""
    event = gate_event(0)
    store.record_gate_event(event, destinations=("mqtt", "chain"))
    make(store, Wire()).fill()
    wire = Wire()
    assert make(store, wire).fill() == 1 and wire.sent[0][2]["event_id"] == event.event_id


def test_acks_for_other_messages_are_ignored(store: Store) -> None:
    store.record_gate_event(gate_event(0), destinations=("mqtt",))
    pub = make(store, Wire())
    pub.fill()
    pub.acknowledge([(99, None)])
    assert pub.acked == 0 and len(pub.in_flight) == 1
