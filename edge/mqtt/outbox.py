"""Publishing the durable outbox (destination ``mqtt``) with QoS 1, marked done only on PUBACK.

Delivery is at-least-once: a row is marked done only after the broker's PUBACK for it arrived; a row
whose PUBACK was lost (broker died after receiving it, daemon crashed) is sent again, so a consumer
may see an event twice and must de-duplicate on ``event_id``. At most ``window`` rows are
unacknowledged at any time, which bounds those duplicates. Rows go out in outbox order over one
connection; paho re-sends its unacknowledged messages first after a reconnect, so order holds except
for a row the broker refused (it is retried after the others, ``refused_retry_s`` later).

``OutboxPublisher`` is single-threaded: the bridge's pump thread owns it and the store it reads.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from edge.store.schema import MQTT_DESTINATION

log = logging.getLogger(__name__)
DESTINATION = MQTT_DESTINATION
ACK_REF = "mqtt:puback"  # the store wants a confirmation; a QoS 1 PUBACK has no id beyond its mid


class OutboxRowLike(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def event_id(self) -> str: ...
    @property
    def payload(self) -> dict[str, Any]: ...


class OutboxPort(Protocol):
    """The part of ``edge.store.Store`` the publisher uses."""

    def pending_outbox(self, destination: str, limit: int = 100) -> Sequence[OutboxRowLike]: ...
    def mark_outbox_in_flight(self, ids: Sequence[int], sent_ref: str | None = None) -> None: ...
    def mark_outbox_done(self, ids: Sequence[int], ack_ref: str) -> None: ...
    def mark_outbox_failed(self, ids: Sequence[int], error: str) -> None: ...


# publish(topic, payload) -> the paho message id, or None when the client refused the message outright.
Publish = Callable[[str, bytes], int | None]


def encode_event(row: OutboxRowLike, redact: Callable[[dict], dict]) -> bytes:
    """The JSON published for one outbox row: its payload, redacted, with ``event_id`` always set."""
    body = redact(dict(row.payload))
    body["event_id"] = row.event_id
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


@dataclass
class OutboxPublisher:
    outbox: OutboxPort
    publish: Publish
    topic: str
    redact: Callable[[dict], dict]
    window: int = 16
    in_flight: dict[int, OutboxRowLike] = field(default_factory=dict)
    sent: int = 0
    acked: int = 0
    refused: int = 0

    def fill(self) -> int:
        """Publish pending rows not already in flight, up to ``window`` unacknowledged; returns how many."""
        room = self.window - len(self.in_flight)
        if room <= 0:
            return 0
        busy = {row.id for row in self.in_flight.values()}
        rows = [r for r in self.outbox.pending_outbox(DESTINATION, limit=self.window + len(busy))
                if r.id not in busy][:room]
        if not rows:
            return 0
        self.outbox.mark_outbox_in_flight([r.id for r in rows])
        for row in rows:
            mid = self.publish(self.topic, encode_event(row, self.redact))
            if mid is None:
                self.outbox.mark_outbox_failed([row.id], "mqtt client refused the message")
                continue
            self.in_flight[mid] = row
            self.sent += 1
        return len(rows)

    def acknowledge(self, acks: Sequence[tuple[int, str | None]]) -> None:
        """Apply PUBACKs as (mid, failure reason or None); one store transaction per outcome."""
        done: list[tuple[OutboxRowLike, str | None]] = []
        failed: list[tuple[OutboxRowLike, str | None]] = []
        for mid, failure in acks:
            row = self.in_flight.pop(mid, None)
            if row is None:
                continue  # a message that was not an outbox row (status, results)
            (failed if failure else done).append((row, failure))
        if done:
            self.outbox.mark_outbox_done([r.id for r, _ in done], ack_ref=ACK_REF)
            self.acked += len(done)
        for row, failure in failed:
            log.warning("broker refused event %s: %s; will retry", row.event_id, failure)
            self.outbox.mark_outbox_failed([row.id], f"broker refused: {failure}")
            self.refused += 1
