"""The store schema as an ordered list of forward migrations.

``MIGRATIONS[i]`` is ``(version, sql)``; versions are 1, 2, 3, ... with no gaps. A database records
the last version applied in ``PRAGMA user_version``; opening a store applies every later step, each
in its own transaction together with the new ``user_version``, so a crash mid-migration leaves the
previous version intact.

To change the schema, APPEND a step (never edit a released one)::

    MIGRATIONS = (
        ...,
        (2, "ALTER TABLE gate_events_x ADD COLUMN ...; CREATE INDEX ...;"),
    )

A step is plain SQL run with ``executescript`` inside ``BEGIN IMMEDIATE``; do not put ``BEGIN``/
``COMMIT`` in it. ``gate_events`` is append-only: never migrate it with a table rebuild that copies
and drops it without re-creating its triggers.

Conventions: times are unix milliseconds in ``*_ms`` INTEGER columns; chain ids (rental event,
booking, space) are opaque TEXT (decimal for uint256, ``0x`` hex for bytes32); wei amounts are decimal
TEXT (uint256 does not fit SQLite INTEGER); hashes and commitments are lowercase ``0x`` hex.
"""

from __future__ import annotations

from typing import Final

HEX32: Final = "GLOB '0x[0-9a-f]*' AND length({col}) = 66 AND substr({col}, 3) NOT GLOB '*[^0-9a-f]*'"


def _hex32(col: str) -> str:
    return HEX32.format(col=col)


BOOKING_STATUSES: Final = ("requested", "verified", "checked_in", "checked_out", "cancelled", "expired")
RENTAL_EVENT_STATUSES: Final = ("open", "booked", "cancelled", "settled")
GATE_EVENT_KINDS: Final = ("verified", "check_in", "check_out", "denied", "manual", "fault")
DIRECTIONS: Final = ("entry", "exit")
OUTBOX_STATUSES: Final = ("pending", "in_flight", "done", "dead")


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


V1: Final = f"""
CREATE TABLE lots (
    lot_id          TEXT PRIMARY KEY,
    name            TEXT NOT NULL DEFAULT '',
    geohash         TEXT NOT NULL DEFAULT '',
    capacity        INTEGER CHECK (capacity IS NULL OR capacity >= 0),
    updated_at_ms   INTEGER NOT NULL
);

-- Address info only: no personal data ever goes here.
CREATE TABLE spaces (
    space_id        TEXT PRIMARY KEY,
    lot_id          TEXT NOT NULL REFERENCES lots(lot_id),
    level           TEXT NOT NULL DEFAULT '',
    bay             TEXT NOT NULL DEFAULT '',
    geohash         TEXT NOT NULL DEFAULT '',
    updated_at_ms   INTEGER NOT NULL
);
CREATE INDEX spaces_lot ON spaces(lot_id);

-- First association (space / address / rental event), as last seen on chain.
CREATE TABLE rental_events (
    rental_event_id TEXT PRIMARY KEY,
    space_id        TEXT NOT NULL,
    lot_id          TEXT NOT NULL,
    owner           TEXT NOT NULL,
    window_start_ms INTEGER NOT NULL,
    window_end_ms   INTEGER NOT NULL,
    price_wei       TEXT NOT NULL CHECK (price_wei NOT GLOB '*[^0-9]*' AND price_wei <> ''),
    status          TEXT NOT NULL CHECK (status IN {_in(RENTAL_EVENT_STATUSES)}),
    block_number    INTEGER NOT NULL CHECK (block_number >= 0),
    block_hash      TEXT NOT NULL CHECK (block_hash {_hex32('block_hash')}),
    log_index       INTEGER NOT NULL CHECK (log_index >= 0),
    tx_hash         TEXT NOT NULL DEFAULT '',
    updated_at_ms   INTEGER NOT NULL,
    CHECK (window_end_ms > window_start_ms)
);
CREATE INDEX rental_events_lot_window ON rental_events(lot_id, window_start_ms, window_end_ms);
CREATE INDEX rental_events_block ON rental_events(block_number);

-- Second association (renter / space / address / event): the rental request and its lifecycle.
CREATE TABLE bookings (
    booking_id         TEXT PRIMARY KEY,
    rental_event_id    TEXT NOT NULL REFERENCES rental_events(rental_event_id),
    space_id           TEXT NOT NULL,
    lot_id             TEXT NOT NULL,
    renter             TEXT NOT NULL,
    vehicle_commitment TEXT NOT NULL CHECK (vehicle_commitment {_hex32('vehicle_commitment')}),
    window_start_ms    INTEGER NOT NULL,
    window_end_ms      INTEGER NOT NULL,
    status             TEXT NOT NULL CHECK (status IN {_in(BOOKING_STATUSES)}),
    block_number       INTEGER NOT NULL CHECK (block_number >= 0),
    block_hash         TEXT NOT NULL CHECK (block_hash {_hex32('block_hash')}),
    log_index          INTEGER NOT NULL CHECK (log_index >= 0),
    tx_hash            TEXT NOT NULL DEFAULT '',
    updated_at_ms      INTEGER NOT NULL,
    CHECK (window_end_ms > window_start_ms)
);
CREATE INDEX bookings_lot_commitment ON bookings(lot_id, vehicle_commitment);
CREATE INDEX bookings_lot_window ON bookings(lot_id, window_start_ms, window_end_ms);
CREATE INDEX bookings_rental_event ON bookings(rental_event_id);
CREATE INDEX bookings_block ON bookings(block_number);

-- Every chain-sourced version of a rental event or booking, so a reorg can restore the state as of
-- the common ancestor. Pruned below the finalized block.
CREATE TABLE chain_history (
    entity        TEXT NOT NULL CHECK (entity IN ('rental_event', 'booking')),
    entity_id     TEXT NOT NULL,
    block_number  INTEGER NOT NULL,
    log_index     INTEGER NOT NULL,
    row_json      TEXT NOT NULL CHECK (json_valid(row_json)),
    PRIMARY KEY (entity, entity_id, block_number, log_index)
) WITHOUT ROWID;
CREATE INDEX chain_history_block ON chain_history(block_number);

CREATE TABLE chain_blocks (
    number        INTEGER PRIMARY KEY CHECK (number >= 0),
    hash          TEXT NOT NULL CHECK (hash {_hex32('hash')}),
    parent_hash   TEXT NOT NULL CHECK (parent_hash {_hex32('parent_hash')})
);

CREATE TABLE sync_checkpoints (
    name          TEXT PRIMARY KEY,
    block_number  INTEGER NOT NULL CHECK (block_number >= 0),
    block_hash    TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL
);

-- Append-only record of everything that happened at a gate. No plaintext plate column exists.
CREATE TABLE gate_events (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id         TEXT NOT NULL UNIQUE CHECK (length(event_id) BETWEEN 8 AND 64),
    lane             TEXT NOT NULL CHECK (lane <> ''),
    direction        TEXT NOT NULL CHECK (direction IN {_in(DIRECTIONS)}),
    kind             TEXT NOT NULL CHECK (kind IN {_in(GATE_EVENT_KINDS)}),
    booking_id       TEXT,
    plate_commitment TEXT CHECK (plate_commitment IS NULL OR plate_commitment {_hex32('plate_commitment')}),
    plate_masked     TEXT,
    confidence       REAL CHECK (confidence IS NULL OR (confidence >= 0 AND confidence <= 1)),
    reason           TEXT NOT NULL CHECK (reason <> ''),
    evidence_path    TEXT,
    evidence_sha256  TEXT CHECK (evidence_sha256 IS NULL OR (length(evidence_sha256) = 64
                                 AND evidence_sha256 NOT GLOB '*[^0-9a-f]*')),
    occurred_at_ms   INTEGER NOT NULL,
    recorded_at_ms   INTEGER NOT NULL
);
CREATE INDEX gate_events_booking ON gate_events(booking_id, seq);
CREATE INDEX gate_events_occurred ON gate_events(occurred_at_ms);
CREATE TRIGGER gate_events_no_update BEFORE UPDATE ON gate_events
BEGIN SELECT RAISE(ABORT, 'gate_events is append-only: UPDATE is not allowed'); END;
CREATE TRIGGER gate_events_no_delete BEFORE DELETE ON gate_events
BEGIN SELECT RAISE(ABORT, 'gate_events is append-only: DELETE is not allowed'); END;

-- One row per (destination, event). A row becomes 'done' only with the destination's confirmation
-- (tx hash of a mined receipt, broker ack id); 'in_flight' rows carry what was sent so a restart can
-- reconcile them with the destination instead of sending blindly twice.
CREATE TABLE outbox (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    destination        TEXT NOT NULL CHECK (destination <> ''),
    event_id           TEXT NOT NULL,
    payload            TEXT NOT NULL CHECK (json_valid(payload)),
    created_at_ms      INTEGER NOT NULL,
    status             TEXT NOT NULL DEFAULT 'pending' CHECK (status IN {_in(OUTBOX_STATUSES)}),
    attempts           INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    sent_ref           TEXT,
    ack_ref            TEXT,
    last_error         TEXT,
    updated_at_ms      INTEGER NOT NULL,
    UNIQUE (destination, event_id),
    CHECK ((status = 'done') = (ack_ref IS NOT NULL AND ack_ref <> ''))
);
CREATE INDEX outbox_work ON outbox(destination, status, id);
"""

# The chain uploader's own signed transactions (edge/chain/sync.py): a crash after signing reuses the nonce.
V2_CHAIN_TXS: Final = """
CREATE TABLE chain_txs (
    tx_hash TEXT PRIMARY KEY, nonce INTEGER NOT NULL CHECK (nonce >= 0), raw_tx TEXT NOT NULL,
    outbox_ids TEXT NOT NULL CHECK (json_valid(outbox_ids)), max_fee_wei TEXT NOT NULL,
    priority_fee_wei TEXT NOT NULL, sent_at_ms INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'replaced', 'mined', 'dropped')));
CREATE INDEX chain_txs_open ON chain_txs(status, nonce);
"""

# The pass journal (edge/daemon): a granted pass, committed before the open pulse and deleted in the
# transaction that records the pass; ``opened`` = 1 once the controller acknowledged the open pulse.
# Rows left by a crash become recorded passes (or unconfirmed-open faults) at the next start.
# Columns mirror gate_events (the row the pass becomes); no plaintext plate column exists.
V3_PASS_JOURNAL: Final = f"""
CREATE TABLE pass_journal (
    lane             TEXT NOT NULL CHECK (lane <> ''),
    pass_no          INTEGER NOT NULL,
    event_id         TEXT NOT NULL UNIQUE CHECK (length(event_id) BETWEEN 8 AND 64),
    direction        TEXT NOT NULL CHECK (direction IN {_in(DIRECTIONS)}),
    kind             TEXT NOT NULL CHECK (kind IN {_in(GATE_EVENT_KINDS)}),
    booking_id       TEXT,
    plate_commitment TEXT CHECK (plate_commitment IS NULL OR plate_commitment {_hex32('plate_commitment')}),
    plate_masked     TEXT,
    confidence       REAL CHECK (confidence IS NULL OR (confidence >= 0 AND confidence <= 1)),
    reason           TEXT NOT NULL CHECK (reason <> ''),
    evidence_path    TEXT,
    evidence_sha256  TEXT,
    occurred_at_ms   INTEGER NOT NULL,
    opened           INTEGER NOT NULL DEFAULT 0 CHECK (opened IN (0, 1)),
    PRIMARY KEY (lane, pass_no)
);
"""

# Contract v2 (issue #16). The outbox gains the state 'rejected' (the destination took the row and refused
# it: a gate record the contract rejected, reason in last_error); SQLite cannot alter a CHECK, so the table
# is rebuilt (ids, and with them the order of rows, are kept). chain_seqs holds the per-gateway record
# number each 'chain' row was sent with (the contract's high-water mark skips a number it has seen):
# assigned once before the first broadcast, replaced only when a rejected row is retried.
OUTBOX_STATUSES_V4: Final = (*OUTBOX_STATUSES, "rejected")
# The states a delivery stays in once the sender stopped retrying it (the contract rejected it, or it
# cannot be sent at all); `parkgate store outbox` lists them, and only its `drop` (or, for a rejected
# chain row, its `retry`) ends them.
OUTBOX_GIVEN_UP: Final = ("rejected", "dead")
# The outbox's destinations: the chain sync's (edge.chain.sync) and the MQTT publisher's (edge.mqtt.outbox)
CHAIN_DESTINATION: Final = "chain"
MQTT_DESTINATION: Final = "mqtt"
OUTBOX_DESTINATIONS: Final = (CHAIN_DESTINATION, MQTT_DESTINATION)
# ack_ref of a row an operator gave up (Store.drop_outbox): 'done', but never delivered
DROPPED_PREFIX: Final = "dropped by "
V4_OUTBOX_REJECTED_CHAIN_SEQS: Final = f"""
CREATE TABLE outbox_v4 (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    destination        TEXT NOT NULL CHECK (destination <> ''),
    event_id           TEXT NOT NULL,
    payload            TEXT NOT NULL CHECK (json_valid(payload)),
    created_at_ms      INTEGER NOT NULL,
    status             TEXT NOT NULL DEFAULT 'pending' CHECK (status IN {_in(OUTBOX_STATUSES_V4)}),
    attempts           INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    sent_ref           TEXT,
    ack_ref            TEXT,
    last_error         TEXT,
    updated_at_ms      INTEGER NOT NULL,
    UNIQUE (destination, event_id),
    CHECK ((status = 'done') = (ack_ref IS NOT NULL AND ack_ref <> ''))
);
INSERT INTO outbox_v4 SELECT * FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_v4 RENAME TO outbox;
CREATE INDEX outbox_work ON outbox(destination, status, id);
CREATE TABLE chain_seqs (
    outbox_id INTEGER PRIMARY KEY,
    seq       INTEGER NOT NULL UNIQUE CHECK (seq > 0)
);
"""

# The wall-clock sanity floor (edge.clock, issue #17): the newest time the store has seen, raised by a
# trigger on every write that stamps a time (so "the last store write" needs no code in the writers), by
# the chain sync (block timestamps) and by the daemon's own heartbeat. Seeded from the rows already there.
_FLOOR_SOURCES: Final = (
    ("gate_events", "INSERT", "recorded_at_ms"), ("pass_journal", "INSERT", "occurred_at_ms"),
    *((table, event, "updated_at_ms") for table in ("outbox", "bookings", "rental_events", "sync_checkpoints")
      for event in ("INSERT", "UPDATE")),
)


def _floor_trigger(table: str, event: str, column: str) -> str:
    return (f"CREATE TRIGGER clock_floor_{table}_{event.lower()} AFTER {event} ON {table} BEGIN "
            f"UPDATE clock_floor SET floor_ms = NEW.{column} WHERE id = 1 AND floor_ms < NEW.{column}; END;")


V5_CLOCK_FLOOR: Final = """
CREATE TABLE clock_floor (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    floor_ms  INTEGER NOT NULL CHECK (floor_ms >= 0)
);
INSERT INTO clock_floor (id, floor_ms) SELECT 1, max(
    coalesce((SELECT max(recorded_at_ms) FROM gate_events), 0),
    coalesce((SELECT max(updated_at_ms) FROM outbox), 0),
    coalesce((SELECT max(updated_at_ms) FROM bookings), 0),
    coalesce((SELECT max(updated_at_ms) FROM rental_events), 0),
    coalesce((SELECT max(updated_at_ms) FROM sync_checkpoints), 0));
""" + "\n".join(_floor_trigger(*source) for source in _FLOOR_SOURCES) + "\n"

# Manual gate operations (`parkgate gate open|hold|release --lane`, signed MQTT commands): who, why,
# what the camera read then and its evidence; append-only like the gate log. Self-contained.
MANUAL_ACTIONS = ("open", "hold", "release")
MANUAL_SOURCES = ("socket", "mqtt")
V6_MANUAL_ACTIONS = f"""
CREATE TABLE manual_actions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms           INTEGER NOT NULL CHECK (at_ms >= 0),
    lane            TEXT NOT NULL CHECK (lane <> ''),
    action          TEXT NOT NULL CHECK (action IN {_in(MANUAL_ACTIONS)}),
    source          TEXT NOT NULL CHECK (source IN {_in(MANUAL_SOURCES)}),
    operator        TEXT NOT NULL CHECK (operator <> ''),
    reason          TEXT NOT NULL CHECK (reason <> ''),
    result          TEXT NOT NULL CHECK (result <> ''),
    plate_masked    TEXT,
    confidence      REAL CHECK (confidence IS NULL OR (confidence >= 0 AND confidence <= 1)),
    evidence_path   TEXT,
    evidence_sha256 TEXT CHECK (evidence_sha256 IS NULL OR (length(evidence_sha256) = 64
                                AND evidence_sha256 NOT GLOB '*[^0-9a-f]*'))
);
CREATE INDEX manual_actions_at ON manual_actions(at_ms);
CREATE TRIGGER manual_actions_no_update BEFORE UPDATE ON manual_actions
BEGIN SELECT RAISE(ABORT, 'manual_actions is append-only: UPDATE is not allowed'); END;
CREATE TRIGGER manual_actions_no_delete BEFORE DELETE ON manual_actions
BEGIN SELECT RAISE(ABORT, 'manual_actions is append-only: DELETE is not allowed'); END;
"""

# Issue #15: allow and deny lists changed without a restart (`parkgate list`, signed MQTT commands); the
# running daemon reads the entries valid now before each decision. ``entry`` is a normalised plate or a
# lower-case 0x commitment (edge.identity.list_entry_key); a plate stays on this device (never published).
ACCESS_LISTS: Final = ("allow", "deny")
V7_ACCESS_LISTS: Final = f"""
CREATE TABLE access_list_entries (
    list_name       TEXT NOT NULL CHECK (list_name IN {_in(ACCESS_LISTS)}),
    entry           TEXT NOT NULL CHECK (entry <> ''),
    valid_from_ms   INTEGER,
    valid_until_ms  INTEGER,
    note            TEXT NOT NULL DEFAULT '',
    source          TEXT NOT NULL DEFAULT '',
    updated_at_ms   INTEGER NOT NULL,
    PRIMARY KEY (list_name, entry),
    CHECK (valid_from_ms IS NULL OR valid_until_ms IS NULL OR valid_until_ms > valid_from_ms)
);
"""

# The store retention (``Store.prune``, ``[store] retention_days``): rows older than a cutoff go once
# nothing is lost. The append-only gate log and manual-action audit take a DELETE only while the pruning
# transaction holds its cutoff in ``store_retention`` (a row written and removed inside that transaction,
# never seen outside it), and a gate event only when none of its outbox rows is undelivered; a booking or
# rental event it deletes takes its reorg history along. Indexes: an event's outbox rows, and each
# vehicle's passages (who is inside is rebuilt from its last one).
RETENTION_REFUSED: Final = "DELETE is allowed only to the store retention, for rows older than its cutoff"
V8_STORE_RETENTION: Final = f"""
CREATE TABLE store_retention (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    cutoff_ms  INTEGER NOT NULL
);
CREATE INDEX outbox_event ON outbox(event_id);
CREATE INDEX gate_events_passage ON gate_events(plate_commitment, seq)
    WHERE kind IN ('check_in', 'check_out') AND plate_commitment IS NOT NULL;
DROP TRIGGER gate_events_no_delete;
CREATE TRIGGER gate_events_no_delete BEFORE DELETE ON gate_events
WHEN NOT EXISTS (SELECT 1 FROM store_retention WHERE OLD.occurred_at_ms < cutoff_ms)
    OR EXISTS (SELECT 1 FROM outbox WHERE event_id = OLD.event_id AND status <> 'done')
BEGIN SELECT RAISE(ABORT, 'gate_events is append-only: {RETENTION_REFUSED} and delivered'); END;
DROP TRIGGER manual_actions_no_delete;
CREATE TRIGGER manual_actions_no_delete BEFORE DELETE ON manual_actions
WHEN NOT EXISTS (SELECT 1 FROM store_retention WHERE OLD.at_ms < cutoff_ms)
BEGIN SELECT RAISE(ABORT, 'manual_actions is append-only: {RETENTION_REFUSED}'); END;
CREATE TRIGGER bookings_retention AFTER DELETE ON bookings
WHEN EXISTS (SELECT 1 FROM store_retention)
BEGIN DELETE FROM chain_history WHERE entity = 'booking' AND entity_id = OLD.booking_id; END;
CREATE TRIGGER rental_events_retention AFTER DELETE ON rental_events
WHEN EXISTS (SELECT 1 FROM store_retention)
BEGIN DELETE FROM chain_history WHERE entity = 'rental_event' AND entity_id = OLD.rental_event_id; END;
"""

# What operators did to an outbox row (`parkgate store outbox drop|retry`: Store.drop_outbox,
# Store.retry_rejected_outbox), kept with the row for as long as the row is kept: ``last_error`` holds only
# the latest state (delivery clears a retried row's note, a second rejection overwrites it). A JSON array
# of {"at_ms", "action", "who", "was"} (OutboxAction), appended to with json_insert and never rewritten.
V9_OUTBOX_OPERATOR_ACTIONS: Final = """
ALTER TABLE outbox ADD COLUMN operator_actions TEXT NOT NULL DEFAULT '[]'
    CHECK (json_valid(operator_actions) AND json_type(operator_actions) = 'array');
CREATE TRIGGER outbox_operator_actions_append_only BEFORE UPDATE OF operator_actions ON outbox
WHEN length(NEW.operator_actions) < length(OLD.operator_actions)
    OR substr(NEW.operator_actions, 1, length(OLD.operator_actions) - 1)
       <> substr(OLD.operator_actions, 1, length(OLD.operator_actions) - 1)
BEGIN SELECT RAISE(ABORT, 'outbox.operator_actions is append-only: only new actions may be added'); END;
"""

MIGRATIONS: Final[tuple[tuple[int, str], ...]] = (
    (1, V1),
    (2, V2_CHAIN_TXS),
    (3, V3_PASS_JOURNAL),
    (4, V4_OUTBOX_REJECTED_CHAIN_SEQS),
    (5, V5_CLOCK_FLOOR),
    (6, V6_MANUAL_ACTIONS),
    (7, V7_ACCESS_LISTS),
    (8, V8_STORE_RETENTION),
    (9, V9_OUTBOX_OPERATOR_ACTIONS),
)

LATEST_VERSION: Final = MIGRATIONS[-1][0]
