"""Signed remote commands: pure signing and verification.

Wire format (UTF-8 JSON, at most ``max_bytes``)::

    {"gateway": "gw-1", "lane": "in-1", "action": "open", "ts": 1795630000000,
     "nonce": "9f2c...", "sig": "<64 hex>"}

``sig`` is HMAC-SHA256 with the per-gateway key over the canonical encoding::

    b"parkgate-cmd-v1\\n" + json.dumps({the five other fields}, sort_keys=True,
                                       separators=(",", ":"), ensure_ascii=True)

The list actions (``list-add``, ``list-remove``, lane ``*``: the whole gateway) carry a seventh field,
``args``, signed with the others (it joins the canonical body; commands without it encode as before)::

    "args": {"list": "allow" | "deny", "entry": "0x<64 hex>", "from": <ms>, "until": <ms>}

``from``/``until`` are optional (``list-add`` only; unix ms from 2000-01-01 up to 2100-01-01 UTC). The
entry is a vehicle commitment, never a plate: plates do not travel over MQTT.

Verification never raises: it returns a ``Command`` or a ``Rejection`` naming why. A command is
refused when it is oversize, not JSON, unsigned, wrongly signed, for another gateway, older than
``max_age_ms`` or further than ``max_skew_ms`` in the future, replayed (nonce already seen), for an
unknown action or lane, carries fields beyond the six above, or names another lane than its topic.

Freshness across clock steps (issue #17): ``now_ms`` is the gateway's best time (``edge.clock``), which
never goes backwards; a rejection of a correctly signed command carries the command, so the caller
keeps its nonce too (a captured command refused as stale stays refused after the clock steps back); and
``min_ts_ms`` (the newest timestamp the nonce store has forgotten) refuses anything at or before it as
stale whatever the clock says. While the clock is untrusted (``time_trusted`` False) the best time is only
a lower bound, so a command dated ahead of it is accepted unless ``CommandPolicy.future_when_untrusted``
is False (config ``clock.untrusted_time = "strict"``); each command still acts at most once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Container
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.store.rows import list_time_problem

ACTIONS: tuple[str, ...] = ("open", "hold", "release", "refresh", "list-add", "list-remove")
LIST_ACTIONS: tuple[str, ...] = ("list-add", "list-remove")
ALL_LANES = "*"  # only for ``refresh`` and the list actions: the whole gateway
GATEWAY_ACTIONS: tuple[str, ...] = ("refresh", *LIST_ACTIONS)
LIST_NAMES: tuple[str, ...] = ("allow", "deny")
COMMITMENT_RE = re.compile(r"^0x[0-9a-f]{64}$")
SIGNED_FIELDS: tuple[str, ...] = ("action", "gateway", "lane", "nonce", "ts")
DOMAIN = b"parkgate-cmd-v1\n"
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
NONCE_RE = re.compile(r"^[0-9a-f]{16,64}$")
SIG_RE = re.compile(r"^[0-9a-f]{64}$")
MIN_KEY_BYTES = 16


@dataclass(frozen=True)
class Command:
    gateway: str
    lane: str
    action: str
    ts_ms: int
    nonce: str
    args: dict[str, Any] | None = field(default=None, hash=False, compare=True)


@dataclass(frozen=True)
class Rejection:
    """Why a command was refused: ``reason`` is a stable code (for counters), ``detail`` for logs."""

    reason: str
    detail: str
    command: Command | None = None  # the command, when its signature was valid (its nonce is kept)


@dataclass(frozen=True)
class CommandPolicy:
    gateway_id: str
    lanes: frozenset[str] = field(default_factory=frozenset)
    max_age_ms: int = 30_000
    max_skew_ms: int = 5_000
    max_bytes: int = 1024
    future_when_untrusted: bool = True

    @property
    def replay_window_ms(self) -> int:
        """How long a nonce must be remembered: anything older is refused as stale anyway."""
        return self.max_age_ms + self.max_skew_ms


REJECTION_REASONS: tuple[str, ...] = (
    "oversize", "malformed", "unsigned", "bad_field", "bad_signature", "wrong_gateway", "stale",
    "future", "replayed", "unknown_action", "unknown_lane", "topic_mismatch",
)


def canonical_bytes(gateway: str, lane: str, action: str, ts_ms: int, nonce: str,
                    args: dict[str, Any] | None = None) -> bytes:
    body: dict[str, Any] = {"action": action, "gateway": gateway, "lane": lane, "nonce": nonce, "ts": ts_ms}
    if args is not None:
        body["args"] = args
    return DOMAIN + json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def signature(key: bytes, gateway: str, lane: str, action: str, ts_ms: int, nonce: str,
              args: dict[str, Any] | None = None) -> str:
    message = canonical_bytes(gateway, lane, action, ts_ms, nonce, args)
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign_command(key: bytes, gateway: str, lane: str, action: str, now_ms: int,
                 nonce: str | None = None, args: dict[str, Any] | None = None) -> bytes:
    """The JSON bytes of a signed command, ready to publish on ``<prefix>/<gateway>/cmd/<lane>``."""
    nonce = nonce or secrets.token_hex(16)
    body: dict[str, Any] = {"gateway": gateway, "lane": lane, "action": action, "ts": now_ms, "nonce": nonce}
    if args is not None:
        body["args"] = args
    body["sig"] = signature(key, gateway, lane, action, now_ms, nonce, args)
    return json.dumps(body, separators=(",", ":")).encode()


def _parse(raw: bytes, max_bytes: int) -> dict | Rejection:
    if len(raw) > max_bytes:
        return Rejection("oversize", f"payload is {len(raw)} bytes, at most {max_bytes} allowed")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        return Rejection("malformed", f"payload is not UTF-8 JSON: {exc}"[:200])
    if not isinstance(doc, dict):
        return Rejection("malformed", f"payload is JSON {type(doc).__name__}, a JSON object is required")
    return doc


def _field_problem(doc: dict) -> str | None:
    """None when the six fields are present with the allowed types and shapes, else what is wrong."""
    extra = sorted(set(doc) - set(SIGNED_FIELDS) - {"sig", "args"})
    if extra:
        allowed = ", ".join(("sig", *SIGNED_FIELDS, "args"))
        return f"unexpected field(s) {', '.join(map(str, extra))[:100]}; allowed: {allowed}"
    for name in ("gateway", "lane", "action"):
        value = doc.get(name)
        wildcard = name == "lane" and value == ALL_LANES
        if not isinstance(value, str) or not (wildcard or NAME_RE.match(value)):
            return f"{name} must be 1-64 characters of A-Z a-z 0-9 _ . -"
    ts = doc.get("ts")
    if not isinstance(ts, int) or isinstance(ts, bool) or not 0 <= ts < 2**53:
        return "ts must be an integer number of milliseconds since the Unix epoch"
    if not isinstance(doc.get("nonce"), str) or not NONCE_RE.match(doc["nonce"]):
        return "nonce must be 16-64 lower-case hex characters"
    if not isinstance(doc.get("sig"), str) or not SIG_RE.match(doc["sig"]):
        return "sig must be 64 lower-case hex characters (HMAC-SHA256)"
    return _args_problem(doc.get("action"), doc.get("args"))


def _args_problem(action: object, args: object) -> str | None:
    """None when ``args`` fits the action: absent for lane actions and refresh, a list entry for the
    list actions."""
    if action not in LIST_ACTIONS:
        return None if args is None else f"action {action!r} takes no args"
    if not isinstance(args, dict):
        return f"{action} needs args {{\"list\": \"allow\"|\"deny\", \"entry\": \"0x<64 hex>\"}}"
    allowed = {"list", "entry", "from", "until"} if action == "list-add" else {"list", "entry"}
    if set(args) - allowed:
        return f"args of {action} allow only: {', '.join(sorted(allowed))}"
    if args.get("list") not in LIST_NAMES:
        return f"args.list must be one of {', '.join(LIST_NAMES)}"
    entry = args.get("entry")
    if not isinstance(entry, str) or not COMMITMENT_RE.match(entry):
        return ("args.entry must be a vehicle commitment: 0x + 64 lower-case hex (plates never travel over "
                "MQTT)")
    start, end = args.get("from"), args.get("until")
    if not all(t is None or (type(t) is int and 0 <= t < 2**53) for t in (start, end)):
        return "args.from and args.until must be integer unix ms"
    for name, t in (("from", start), ("until", end)):
        if problem := list_time_problem(t):
            return f"args.{name} {problem}"
    if isinstance(start, int) and isinstance(end, int) and end <= start:
        return "args.until must be after args.from"
    return None


@dataclass(frozen=True)
class Freshness:
    """What the command's time is judged against: the best time, whether the wall clock agrees with the
    sanity floor, and the newest command timestamp the nonce store has forgotten."""

    now_ms: int
    time_trusted: bool = True
    min_ts_ms: int = 0


def _time_problem(cmd: Command, policy: CommandPolicy, fresh: Freshness) -> str | None:
    if cmd.ts_ms <= fresh.min_ts_ms:
        return (f"stale: command time {cmd.ts_ms} is not after {fresh.min_ts_ms}, the newest command time "
                f"already forgotten")
    if fresh.now_ms - cmd.ts_ms > policy.max_age_ms:
        return f"stale: command is {fresh.now_ms - cmd.ts_ms} ms old, at most {policy.max_age_ms} allowed"
    future_ok = not fresh.time_trusted and policy.future_when_untrusted
    if cmd.ts_ms - fresh.now_ms > policy.max_skew_ms and not future_ok:
        return (f"future: command is {cmd.ts_ms - fresh.now_ms} ms in the future, "
                f"at most {policy.max_skew_ms} allowed")
    return None


def _policy_problem(cmd: Command, policy: CommandPolicy, fresh: Freshness, seen: Container[str],
                    topic_lane: str | None) -> Rejection | None:
    if cmd.gateway != policy.gateway_id:
        return Rejection("wrong_gateway",
                         f"command is for gateway {cmd.gateway!r}, this is {policy.gateway_id!r}")
    problem = _time_problem(cmd, policy, fresh)
    if problem is not None:
        reason, detail = problem.split(": ", 1)
        return Rejection(reason, detail)
    if cmd.nonce in seen:
        return Rejection("replayed", f"nonce {cmd.nonce} was already used")
    if cmd.action not in ACTIONS:
        return Rejection("unknown_action", f"action {cmd.action!r} is not one of {', '.join(ACTIONS)}")
    gateway_wide = cmd.action in GATEWAY_ACTIONS
    lane_ok = (cmd.lane == ALL_LANES) if cmd.action in LIST_ACTIONS else (
        cmd.lane in policy.lanes or (cmd.lane == ALL_LANES and gateway_wide))
    if not lane_ok:
        return Rejection("unknown_lane", f"lane {cmd.lane!r} is not one of {', '.join(sorted(policy.lanes))} "
                                         f"(or '*' for {', '.join(GATEWAY_ACTIONS)}; the list actions take "
                                         "only '*')")
    if topic_lane is not None and topic_lane != cmd.lane:
        return Rejection("topic_mismatch", f"payload lane {cmd.lane!r} arrived on topic lane {topic_lane!r}")
    return None


def verify_command(raw: bytes, key: bytes, now: int | Freshness, seen: Container[str], policy: CommandPolicy,
                   topic_lane: str | None = None) -> Command | Rejection:
    """Check a received command; never raises. ``now``: the best time in unix ms, or a :class:`Freshness`.
    The caller records ``nonce`` once it acts on it, and the nonce of a rejection carrying ``command``."""
    doc = _parse(raw, policy.max_bytes)
    if isinstance(doc, Rejection):
        return doc
    if "sig" not in doc:
        return Rejection("unsigned", "command has no sig field")
    problem = _field_problem(doc)
    if problem is not None:
        return Rejection("bad_field", problem)
    cmd = Command(doc["gateway"], doc["lane"], doc["action"], doc["ts"], doc["nonce"], doc.get("args"))
    expected = signature(key, cmd.gateway, cmd.lane, cmd.action, cmd.ts_ms, cmd.nonce, cmd.args)
    if not hmac.compare_digest(expected, doc["sig"]):
        return Rejection("bad_signature", "sig does not match the gateway key")
    fresh = now if isinstance(now, Freshness) else Freshness(now)
    refused = _policy_problem(cmd, policy, fresh, seen, topic_lane)
    return cmd if refused is None else Rejection(refused.reason, refused.detail, cmd)


def generate_key() -> str:
    """A new gateway key as 64 hex characters (32 bytes), the format ``load_key`` reads."""
    return secrets.token_hex(32)


def parse_key(text: str, source: str = "key") -> bytes:
    """Key bytes from hex text; ValueError naming ``source`` and the allowed format otherwise."""
    hex_text = text.strip()
    try:
        key = bytes.fromhex(hex_text)
    except ValueError:
        raise ValueError(f"{source}: key must be hex text (`parkgate mqtt keygen` makes one)") from None
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"{source}: gateway key is {len(key)} bytes, at least {MIN_KEY_BYTES} required")
    return key


def load_key(path: Path) -> bytes:
    """Read a gateway key file (hex text). Raises ValueError naming the file when it is unusable."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read gateway key file {path}: {exc}") from None
    return parse_key(text, str(path))
