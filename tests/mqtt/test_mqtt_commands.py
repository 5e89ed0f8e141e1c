"""Signed remote commands: every way a command can be wrong is refused with its own reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.mqtt.commands import (
    Command,
    CommandPolicy,
    Rejection,
    generate_key,
    load_key,
    parse_key,
    sign_command,
    signature,
    verify_command,
)

KEY = bytes.fromhex("11" * 32)
NOW = 1_795_630_000_000
POLICY = CommandPolicy("gw-1", frozenset({"in-1", "out-1"}), max_age_ms=30_000, max_skew_ms=5_000)
NONCE = "ab" * 16


def signed(**overrides: object) -> bytes:
    fields = {"gateway": "gw-1", "lane": "in-1", "action": "open", "now_ms": NOW, "nonce": NONCE} | overrides
    return sign_command(KEY, fields["gateway"], fields["lane"], fields["action"], fields["now_ms"],
                        fields["nonce"])


def reason(raw: bytes, seen: frozenset[str] = frozenset(), now: int = NOW,
           topic_lane: str | None = None) -> str:
    verdict = verify_command(raw, KEY, now, seen, POLICY, topic_lane)
    assert isinstance(verdict, Rejection), verdict
    return verdict.reason


def test_signed_command_is_accepted() -> None:
    verdict = verify_command(signed(), KEY, NOW, frozenset(), POLICY, topic_lane="in-1")
    assert verdict == Command("gw-1", "in-1", "open", NOW, NONCE)


def test_refresh_may_address_the_whole_gateway() -> None:
    verdict = verify_command(signed(lane="*", action="refresh"), KEY, NOW, frozenset(), POLICY)
    assert isinstance(verdict, Command) and verdict.lane == "*"
    assert reason(signed(lane="*", action="open")) == "unknown_lane"


def tamper(raw: bytes, **changes: object) -> bytes:
    doc = json.loads(raw)
    doc.update(changes)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(("raw", "expected"), [
    (b"x" * 2000, "oversize"),
    (b"{not json", "malformed"),
    (b"\xff\xfe", "malformed"),
    (b"[1, 2]", "malformed"),
    (json.dumps({"gateway": "gw-1", "lane": "in-1", "action": "open", "ts": NOW, "nonce": NONCE}).encode(),
     "unsigned"),
    (tamper(signed(), action="release"), "bad_signature"),
    (tamper(signed(), ts=NOW + 1), "bad_signature"),
    (tamper(signed(), sig="0" * 64), "bad_signature"),
    (sign_command(bytes(32), "gw-1", "in-1", "open", NOW, NONCE), "bad_signature"),
    (tamper(signed(), extra=1), "bad_field"),
    (tamper(signed(), ts="1795630000000"), "bad_field"),
    (tamper(signed(), ts=True), "bad_field"),
    (tamper(signed(), nonce="short"), "bad_field"),
    (tamper(signed(), lane="in/1"), "bad_field"),
    (tamper(signed(), sig="XYZ"), "bad_field"),
    (signed(gateway="gw-2"), "wrong_gateway"),
    (signed(now_ms=NOW - 30_001), "stale"),
    (signed(now_ms=NOW + 5_001), "future"),
    (signed(action="explode"), "unknown_action"),
    (signed(lane="in-9"), "unknown_lane"),
])
def test_bad_commands_are_refused_with_their_reason(raw: bytes, expected: str) -> None:
    assert reason(raw) == expected


def test_replayed_nonce_is_refused() -> None:
    assert reason(signed(), seen=frozenset({NONCE})) == "replayed"


def test_lane_must_match_the_topic_it_came_on() -> None:
    assert reason(signed(lane="in-1"), topic_lane="out-1") == "topic_mismatch"


def test_freshness_edges_are_inclusive() -> None:
    for ts in (NOW - 30_000, NOW + 5_000):
        assert isinstance(verify_command(signed(now_ms=ts), KEY, NOW, frozenset(), POLICY), Command)


def test_signature_covers_every_signed_field() -> None:
    base = signature(KEY, "gw-1", "in-1", "open", NOW, NONCE)
    variants = [("gw-2", "in-1", "open", NOW, NONCE), ("gw-1", "in-2", "open", NOW, NONCE),
                ("gw-1", "in-1", "hold", NOW, NONCE), ("gw-1", "in-1", "open", NOW + 1, NONCE),
                ("gw-1", "in-1", "open", NOW, "cd" * 16)]
    assert all(signature(KEY, *v) != base for v in variants)


def test_keys_load_from_hex_files_with_clear_errors(tmp_path: Path) -> None:
    good = tmp_path / "gw.key"
    good.write_text(generate_key() + "\n")
    assert len(load_key(good)) == 32
    with pytest.raises(ValueError, match="must be hex text"):
        parse_key("not hex", "gw.key")
    with pytest.raises(ValueError, match="at least 16 required"):
        parse_key("abcd", "gw.key")
    with pytest.raises(ValueError, match="cannot read gateway key file"):
        load_key(tmp_path / "missing.key")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=6),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1500))
def test_fuzz_random_bytes_never_raise_and_never_pass(raw: bytes) -> None:
    assert isinstance(verify_command(raw, KEY, NOW, frozenset(), POLICY), Rejection)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["gateway", "lane", "action", "ts", "nonce", "sig", "x"]),
                       json_values))
def test_fuzz_json_objects_never_raise_and_never_pass(doc: dict) -> None:
    raw = json.dumps(doc).encode()
    assert isinstance(verify_command(raw, KEY, NOW, frozenset(), POLICY), Rejection)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["gateway", "lane", "action", "ts", "nonce"]), json_values)
def test_fuzz_any_change_to_a_signed_field_is_refused(name: str, value: object) -> None:
    original = json.loads(signed())
    if original[name] == value:
        return
    raw = tamper(signed(), **{name: value})
    assert isinstance(verify_command(raw, KEY, NOW, frozenset(), POLICY), Rejection)
