"""The Passes page's search, as pure functions: a form's fields -> a :class:`PassFilter` (ValueError naming
the bad field and what is allowed) -> one SELECT over the gate log, newest first, a page at a time.

A plate is searched only through the form's POST body, never a URL (browser history, proxy logs and the
Referer would keep it): :data:`URL_FIELDS` are the filters a link may carry; paging posts the filter
again (:data:`FORM_FIELDS`, with ``before``: the oldest pass shown)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge.clock import parse_local_time
from edge.identity import mask_plate
from edge.store.schema import DROPPED_PREFIX

COLUMNS = ("seq", "event_id", "occurred_at_ms", "lane", "direction", "kind", "plate_masked", "confidence",
           "reason", "booking_id", "evidence_path")
MAX_LIMIT = 200
DEFAULT_LIMIT = 50
MAX_FIELD = 64
MAX_SEQ = 2**63 - 1  # the largest integer SQLite holds: no pass has a larger number
URL_FIELDS = ("lane", "kind", "since", "until", "limit")  # no personal data: a link may carry these
FORM_FIELDS = ("plate", *URL_FIELDS)  # what the search form and each page's buttons post


@dataclass(frozen=True)
class PassFilter:
    plate_masked: str | None = None
    lane: str | None = None
    kind: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    limit: int = DEFAULT_LIMIT
    before_seq: int | None = None  # a later page: passes older than this one


def masked_query(text: str) -> str:
    """What a searched plate is compared with: a masked plate (``AB***3``) as typed, a full plate masked
    the way the gate log stores it (the plate itself is never stored nor searched)."""
    text = text.strip().upper()
    if "*" in text:
        return text
    try:
        return mask_plate(text)
    except ValueError:
        raise ValueError(f"plate {text!r} is neither a plate nor a masked plate such as AB***3") from None


def parse_filter(form: Mapping[str, str], lanes: tuple[str, ...], kinds: tuple[str, ...]) -> PassFilter:
    """The search form's fields; unknown fields are ignored (links may carry more), bad values refused."""
    def field(name: str) -> str:
        value = form.get(name, "") or ""
        if len(value) > MAX_FIELD:
            raise ValueError(f"{name} is longer than {MAX_FIELD} characters")
        return value.strip()

    lane, kind, plate = field("lane"), field("kind"), field("plate")
    if lane and lane not in lanes:
        raise ValueError(f"lane {lane!r} unknown; lanes: {', '.join(lanes)}")
    if kind and kind not in kinds:
        raise ValueError(f"decision {kind!r} unknown; allowed: {', '.join(kinds)}")
    limit_text = field("limit") or str(DEFAULT_LIMIT)
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIMIT:
        raise ValueError(f"limit {limit_text!r} not allowed; allowed: 1..{MAX_LIMIT}")
    return PassFilter(masked_query(plate) if plate else None, lane or None, kind or None,
                      parse_local_time(field("since") or None, "since"),
                      parse_local_time(field("until") or None, "until"),
                      int(limit_text), _pass_number(field("before")))


def _pass_number(text: str) -> int | None:
    """The ``before`` field of a later page: a pass number (empty: the newest passes)."""
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_SEQ:
        raise ValueError(f"before {text!r} not allowed; allowed: a pass number 1..{MAX_SEQ}, or empty")
    return int(text)


def passes_query(f: PassFilter) -> tuple[str, list[Any]]:
    """The SELECT for a filter, newest first."""
    where: list[str] = []
    params: list[Any] = []
    for column, value in (("plate_masked", f.plate_masked), ("lane", f.lane), ("kind", f.kind)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if f.since_ms is not None:
        where.append("occurred_at_ms >= ?")
        params.append(f.since_ms)
    if f.until_ms is not None:
        where.append("occurred_at_ms < ?")
        params.append(f.until_ms)
    if f.before_seq is not None:
        where.append("seq < ?")
        params.append(f.before_seq)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    return (f"SELECT {', '.join(COLUMNS)} FROM gate_events{clause} ORDER BY seq DESC LIMIT ?",
            [*params, f.limit])


def delivery_state(status: str, last_error: str | None, ack_ref: str | None = None) -> str:
    """An outbox row's state as the page shows it: pending, sending, confirmed, rejected (reason), or
    "dropped by NAME (user U) (was rejected: reason)" for a row an operator gave up (never delivered)."""
    if status == "done" and ack_ref and ack_ref.startswith(DROPPED_PREFIX):
        return f"{ack_ref} ({last_error or 'no reason given'})"
    if status == "done":
        return "confirmed"
    if status in ("rejected", "dead"):
        return f"{status} ({last_error or 'no reason given'})"
    if status == "in_flight":
        return "sent"
    return status
