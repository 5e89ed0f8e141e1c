"""Codec: every message survives encode/decode; bad payloads get errors naming what is allowed."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.framer import Frame, FrameDecoder, encode_frame
from firmware_bridge.messages import (
    PULSE_MS_RANGE,
    WATCHDOG_MS_RANGE,
    Ack,
    Close,
    CodecError,
    Event,
    EventKind,
    Fault,
    Heartbeat,
    HoldOpen,
    OpenPulse,
    Position,
    Release,
    Result,
    Status,
    StatusRequest,
    decode_message,
    encode_message,
)

# docs/gate-protocol.md §3, written out here as the oracle: the values an EVENT of each kind may carry.
EVENT_VALUES = {
    EventKind.PRESENCE: range(2),
    EventKind.SAFETY: range(2),
    EventKind.POSITION: range(5),  # 0 UNKNOWN .. 4 CLOSING
    EventKind.FAULT: range(0x20),  # any combination of the bits 0x01..0x10
    EventKind.WATCHDOG_RELEASE: range(1),
}
events = st.sampled_from(EventKind).flatmap(
    lambda kind: st.builds(Event, st.just(kind), st.sampled_from(EVENT_VALUES[kind])))

messages = st.one_of(
    st.builds(OpenPulse, st.integers(*PULSE_MS_RANGE)),
    st.builds(HoldOpen, st.integers(*WATCHDOG_MS_RANGE)),
    st.sampled_from([Release(), Close(), StatusRequest(), Heartbeat()]),
    st.builds(Ack, st.sampled_from(Result)),
    st.builds(Status, st.sampled_from(Position), st.booleans(), st.booleans(), st.booleans(),
              st.integers(0, 0x1F).map(Fault), st.integers(0, 2**32 - 1)),
    events,
)


@settings(deadline=None)  # shared 2-core CI box: no per-example time limit
@given(messages, st.integers(0, 255))
def test_message_round_trip_through_frame_and_wire(message, seq: int) -> None:  # noqa: ANN001
    frame = encode_message(message, seq)
    assert decode_message(frame) == message
    assert FrameDecoder().feed(encode_frame(frame)) == [frame]


@pytest.mark.parametrize(("frame", "reason"), [
    (Frame(seq=1, msg_type=0x01, payload=b"\x00"), "OpenPulse payload must be 2 bytes, got 1"),
    (Frame(seq=1, msg_type=0x01, payload=b"\x00\x01"), r"pulse_ms=1 out of range 50\.\.30000"),
    (Frame(seq=1, msg_type=0x02, payload=b"\xff\xff"), r"watchdog_ms=65535 out of range 200\.\.10000"),
    (Frame(seq=1, msg_type=0x42), "message type 0x42 unknown"),
    (Frame(seq=1, msg_type=0x06, version=2), "protocol version 2 not supported"),
    (Frame(seq=1, msg_type=0x81, payload=b"\x09"), "result=9 is not one of 0=OK"),
    (Frame(seq=1, msg_type=0x82, payload=b"\x03\x02" + bytes(7)), "presence=2 must be 0 or 1"),
    (Frame(seq=1, msg_type=0x82, payload=b"\x03\x00\x00\x00\x80\x00\x00\x00\x00"), "undefined bits"),
])
def test_bad_payloads_are_rejected_with_reason(frame: Frame, reason: str) -> None:
    with pytest.raises(CodecError, match=reason):
        decode_message(frame)


def test_open_pulse_wire_bytes_are_stable() -> None:
    """Pinned example from docs/gate-protocol.md, so firmware authors have a known-good vector."""
    assert encode_frame(encode_message(OpenPulse(500), seq=3)).hex(" ") == "09 01 03 01 02 01 f4 21 1c 00"


def event_frame(kind: int, value: int, seq: int = 1) -> Frame:
    return Frame(seq=seq, msg_type=0x83, payload=bytes((kind, value)))


@pytest.mark.parametrize("kind", list(EventKind))
def test_event_values_are_exactly_the_documented_codes(kind: EventKind) -> None:
    """§3/§6: a receiver rejects unknown codes; every byte value is tried for every kind."""
    accepted = []
    for value in range(256):
        try:
            accepted.append(decode_message(event_frame(kind, value)))
        except CodecError:
            continue
    assert [event.value for event in accepted] == list(EVENT_VALUES[kind])


@pytest.mark.parametrize(("kind", "value", "reason"), [
    (EventKind.PRESENCE, 2, r"EVENT PRESENCE value=2 is not 0 or 1"),
    (EventKind.SAFETY, 0x80, r"EVENT SAFETY value=128 is not 0 or 1"),
    (EventKind.POSITION, 200, r"EVENT POSITION value=200 is not a position code: 0=UNKNOWN, 1=CLOSED"),
    (EventKind.FAULT, 0xE0, r"EVENT FAULT value=0xe0 has undefined fault bits 0xe0; defined: 0x01=MOTOR"),
    (EventKind.WATCHDOG_RELEASE, 7, r"EVENT WATCHDOG_RELEASE value=7 must be 0"),
])
def test_undefined_event_values_are_rejected_with_what_is_allowed(kind: EventKind, value: int,
                                                                  reason: str) -> None:
    with pytest.raises(CodecError, match=reason):
        decode_message(event_frame(kind, value))
    with pytest.raises(CodecError, match=reason):
        Event(kind, value)

