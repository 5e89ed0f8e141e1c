"""The console's pure parts: sessions, the login rate limit, the passes search, the action and list forms,
the [console] config section; and the users file (real files, 0600, argon2 hashes)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from edge.config import ConfigError, parse_config
from edge.console import passes as P
from edge.console.app import BadForm, gate_request, list_entry
from edge.console.auth import (
    DEVICE_S,
    MAX_SESSIONS,
    MAX_USER_SESSIONS,
    SHARED_BUDGET,
    LoginLimit,
    Sessions,
    SessionsFull,
    same_token,
)
from edge.console.users import UsersError, add_user, authenticate, load_users, password_mark, remove_user
from edge.store.schema import GATE_EVENT_KINDS


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sessions_expire_log_out_and_stay_bounded() -> None:
    clock = Clock()
    sessions = Sessions(60.0, clock)
    token, session = sessions.login("olga", "operator")
    assert sessions.get(token) == session and session.can_act and len(session.csrf) >= 40
    assert sessions.get("forged") is None and sessions.get(None) is None
    clock.now += 59
    assert sessions.get(token) == session
    clock.now += 1
    assert sessions.get(token) is None  # expired
    token, _ = sessions.login("victor", "viewer")
    assert not sessions.get(token).can_act  # type: ignore[union-attr]
    sessions.logout(token)
    assert sessions.get(token) is None
    tokens = [sessions.login(f"u{i}", "viewer")[0] for i in range(MAX_SESSIONS)]
    with pytest.raises(SessionsFull, match=f"{MAX_SESSIONS} live sessions of other users"):
        sessions.login("olga", "operator")  # a full table of others' live sessions: refused, none dropped
    assert len(sessions._by_token) == MAX_SESSIONS and sessions.get(tokens[0]) is not None
    assert sessions.get(sessions.login("u0", "viewer")[0]) is not None  # u0's own oldest made room
    assert sessions.get(tokens[0]) is None and sessions.get(tokens[1]) is not None
    sessions.drop_user(f"u{MAX_SESSIONS - 1}")
    assert sessions.get(tokens[-1]) is None


def test_a_user_logging_in_again_and_again_drops_only_their_own_sessions() -> None:
    sessions = Sessions(60, Clock())
    olga, _ = sessions.login("olga", "operator")
    victor = [sessions.login("victor", "viewer")[0] for _ in range(MAX_SESSIONS + 10)]
    assert sessions.get(olga) is not None  # the operator's session stays
    assert [sessions.get(t) is not None for t in victor].count(True) == MAX_USER_SESSIONS
    assert all(sessions.get(t) is not None for t in victor[-MAX_USER_SESSIONS:])


def test_same_token_never_matches_a_missing_token() -> None:
    assert same_token("abc", "abc") and not same_token("abd", "abc")
    assert not same_token(None, "abc") and not same_token("", "")


def test_login_limit_per_user_and_address_within_the_window() -> None:
    clock = Clock()
    limit = LoginLimit(3, 300, clock)
    for _ in range(3):
        assert limit.retry_after("10.0.0.1", "olga") == 0
        limit.failed("10.0.0.1", "olga")
    assert limit.retry_after("10.0.0.1", "olga") == 300
    assert limit.retry_after("10.0.0.1", "victor") == 0  # another user from that address
    assert limit.retry_after("10.0.0.2", "OLGA") == 0  # the user from another address
    clock.now += 299
    assert limit.retry_after("10.0.0.1", "olga") == pytest.approx(1)
    clock.now += 1
    assert limit.retry_after("10.0.0.1", "olga") == 0


def test_others_cannot_lock_a_user_out_with_a_few_failures() -> None:
    clock = Clock()
    limit = LoginLimit(3, 300, clock)
    device = limit.remember("Olga")  # her browser logged in before
    shared = 3 * SHARED_BUDGET
    for i in range(shared - 1):
        limit.failed(f"10.0.1.{i}", "olga")
    assert limit.retry_after("10.0.0.9", "olga") == 0  # many failures elsewhere: still free
    limit.failed("10.0.1.250", "olga")
    assert limit.retry_after("10.0.0.9", "olga") == 300  # the per-user budget is spent ...
    assert limit.retry_after("10.0.0.9", "olga", device) == 0  # ... but not for her own browser
    assert limit.retry_after("10.0.0.9", "victor", device) == 0
    for _ in range(3):
        limit.failed("10.0.0.9", "olga", device)
    assert limit.retry_after("10.0.0.9", "olga", device) == 300  # her browser has its own 3
    for i in range(shared):
        limit.failed("10.0.2.1", f"user{i}")  # one address spraying user names
    assert limit.retry_after("10.0.2.1", "victor") == 300
    clock.now += DEVICE_S
    assert limit.retry_after("10.0.0.9", "olga", device) == 0 and limit.retry_after("10.0.0.9", "olga") == 0


def test_login_limit_counts_an_attempt_when_it_begins() -> None:
    """Logins sent together all begin before any password is verified: each is counted as it begins."""
    limit = LoginLimit(3, 300, Clock())
    assert [limit.begin("10.0.0.1", "olga") for _ in range(4)] == [0, 0, 0, 300]
    limit.take_back("10.0.0.1", "olga")  # one of the three had the right password
    assert limit.retry_after("10.0.0.1", "olga") == 0
    assert limit.begin("10.0.0.1", "OLGA") == 0 and limit.begin("10.0.0.1", "olga") == 300


def test_login_limit_memory_is_bounded() -> None:
    from edge.console.auth import MAX_TRACKED

    limit = LoginLimit(3, 300, Clock())
    for i in range(MAX_TRACKED * 2):
        limit.failed(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", f"user{i}")
    assert len(limit._failures) <= MAX_TRACKED


def test_the_passes_search_masks_a_plate_and_refuses_bad_fields() -> None:
    lanes = ("entry-1", "exit-1")
    form = {"plate": "kx 904-lm", "lane": "entry-1", "kind": "denied", "since": "2026-12-01T08:00",
            "limit": "10"}
    f = P.parse_filter(form, lanes, GATE_EVENT_KINDS)
    assert f.plate_masked == "KX***M" and f.lane == "entry-1" and f.kind == "denied" and f.limit == 10
    sql, params = P.passes_query(f)
    assert sql.endswith("WHERE plate_masked = ? AND lane = ? AND kind = ? AND occurred_at_ms >= ? "
                        "ORDER BY seq DESC LIMIT ?")
    assert params[:3] == ["KX***M", "entry-1", "denied"] and params[-1] == 10
    assert P.parse_filter({"plate": "ab***3"}, lanes, GATE_EVENT_KINDS).plate_masked == "AB***3"
    assert P.passes_query(P.PassFilter())[1] == [P.DEFAULT_LIMIT]
    for form, fragment in [({"lane": "nowhere"}, "lane 'nowhere' unknown; lanes: entry-1, exit-1"),
                           ({"kind": "open"}, "decision 'open' unknown; allowed: verified"),
                           ({"since": "yesterday"}, "since 'yesterday' is not a time"),
                           ({"limit": "0"}, "allowed: 1..200"), ({"limit": "-1"}, "allowed: 1..200"),
                           ({"plate": "!!"}, "neither a plate nor a masked plate"),
                           ({"plate": "A" * 65}, "longer than 64")]:
        with pytest.raises(ValueError, match=fragment):
            P.parse_filter(form, lanes, GATE_EVENT_KINDS)


def test_a_later_page_of_the_passes_search_starts_before_a_pass() -> None:
    lanes = ("entry-1",)
    f = P.parse_filter({"plate": "KX***M", "before": "42", "limit": "3"}, lanes, GATE_EVENT_KINDS)
    assert f.before_seq == 42 and P.parse_filter({}, lanes, GATE_EVENT_KINDS).before_seq is None
    sql, params = P.passes_query(f)
    assert sql.endswith("WHERE plate_masked = ? AND seq < ? ORDER BY seq DESC LIMIT ?") and params == [
        "KX***M", 42, 3]
    assert "plate" not in P.URL_FIELDS and set(P.URL_FIELDS) < set(P.FORM_FIELDS)
    for before in ("x", "0", "-1", "\u00b2", str(P.MAX_SEQ + 1)):
        with pytest.raises(ValueError, match="allowed: a pass number 1..9223372036854775807, or empty"):
            P.parse_filter({"before": before}, lanes, GATE_EVENT_KINDS)


def test_delivery_states_as_shown() -> None:
    assert P.delivery_state("done", None) == "confirmed"
    assert P.delivery_state("done", None, "0xreceipt") == "confirmed"
    assert (P.delivery_state("done", "was rejected: WRONG_LOT", "dropped by alice (user parkgate)")
            == "dropped by alice (user parkgate) (was rejected: WRONG_LOT)")
    assert P.delivery_state("in_flight", None) == "sent"
    assert P.delivery_state("pending", None) == "pending"
    assert P.delivery_state("rejected", "unknown booking") == "rejected (unknown booking)"
    assert P.delivery_state("dead", None) == "dead (no reason given)"


def test_the_gate_form_becomes_an_audited_control_request() -> None:
    lanes = ("entry-1",)
    assert gate_request({"action": "open", "lane": "entry-1", "reason": " visitor "}, lanes, "olga") == {
        "action": "open", "lane": "entry-1", "reason": "visitor", "operator": "console:olga"}
    for form, fragment in [({"action": "close", "lane": "entry-1", "reason": "r"}, "allowed: open, hold"),
                           ({"action": "open", "lane": "x", "reason": "r"}, "lane 'x' unknown"),
                           ({"action": "hold", "lane": "entry-1", "reason": " "}, "hold needs a reason"),
                           ({"action": "open", "lane": "entry-1", "reason": "x" * 201}, "at most 200"),
                           ({"action": "open", "lane": "entry-1", "reason": "a\nb"}, "printable")]:
        with pytest.raises(BadForm, match=fragment):
            gate_request(form, lanes, "olga")


def test_the_list_form_becomes_a_store_entry() -> None:
    entry = list_entry({"list": "deny", "entry": "ab-123 cd", "from": "2026-12-01T08:00",
                        "until": "2026-12-02", "note": "stolen"}, "olga")
    assert (entry.list_name, entry.entry, entry.note) == ("deny", "AB123CD", "stolen")
    assert entry.source == "console:olga"
    assert entry.valid_from_ms is not None and entry.valid_until_ms is not None
    for form, fragment in [({"list": "grey", "entry": "AB123CD"}, "list 'grey' unknown; allowed: allow"),
                           ({"list": "deny", "entry": ""}, "entry:"),
                           ({"list": "deny", "entry": "AB123CD", "until": "soon"}, "valid until 'soon'"),
                           ({"list": "deny", "entry": "AB123CD", "from": "2026-12-02", "until": "2026-12-01"},
                            "valid until"),
                           ({"list": "deny", "entry": "AB123CD", "note": "n" * 201}, "at most 200")]:
        with pytest.raises(BadForm, match=fragment):
            list_entry(form, "olga")


def test_list_times_out_of_range_are_refused_naming_the_field_as_typed() -> None:
    allowed = "is out of range; allowed: a time from 2000-01-01 up to 2100-01-01 (UTC), or empty"
    far, old, end = "9999-12-31T23:59:59-14:00", "1960-01-01T00:00", "2100-01-01T00:00+00:00"
    for times, message in [
            ({"until": far}, f"valid until '{far}' {allowed}"),
            ({"from": old}, f"valid from '{old}' {allowed}"),
            ({"until": end}, f"valid until '{end}' {allowed}"),
            ({"from": " 2030-01-02 ", "until": "2030-01-01"},
             "valid until '2030-01-01' is not after valid from '2030-01-02'; allowed: a time after valid "
             "from, or empty (no end)")]:
        with pytest.raises(BadForm) as refused:
            list_entry({"list": "deny", "entry": "AB123CD", **times}, "olga")
        assert str(refused.value) == message
    edges = list_entry({"list": "allow", "entry": "AB123CD", "from": "2000-01-01T00:00+00:00",
                        "until": "2099-12-31T23:59+00:00"}, "olga")
    assert (edges.valid_from_ms, edges.valid_until_ms) == (946_684_800_000, 4_102_444_740_000)


def test_the_console_section_is_off_and_on_loopback_by_default_and_validated() -> None:
    cfg = parse_config("")
    assert cfg.console.enabled is False and cfg.console.host == "127.0.0.1" and cfg.console.cert_file is None
    assert cfg.console.trusted_proxies == () and cfg.console.allowed_hosts == ()
    on = parse_config('[console]\nenabled = true\nport = 8444\nsession_minutes = 30\n')
    assert on.console.enabled and on.console.port == 8444 and on.console.session_minutes == 30
    for text, fragment in [("[console]\nport = 0\n", "console.port"),
                           ("[console]\nsession_minutes = 0\n", "console.session_minutes"),
                           ("[console]\npassword = 'admin'\n", "console.password"),
                           ("[console]\ncert_file = '/etc/ssl/c.pem'\n", "cert_file and key_file go"),
                           ("[console]\ntrusted_proxies = ['*']\n",
                            r"console.trusted_proxies\[0\]: '\*' is not allowed; allowed: an IP address"),
                           ("[console]\ntrusted_proxies = ['0.0.0.0/0']\n", "console.trusted_proxies"),
                           ("[console]\ntrusted_proxies = ['proxy.lan']\n", "not '\\*', a /0 nor a host")]:
        with pytest.raises(ConfigError, match=fragment):
            parse_config(text)


def test_users_file_is_private_hashed_and_refuses_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "console_users.json"
    assert load_users(path) == {} and authenticate(path, "olga", "anything-at-all") is None  # no default user
    add_user(path, "olga", "operator", "correct horse")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "correct horse" not in path.read_text() and "$argon2id$" in path.read_text()
    user = authenticate(path, "olga", "correct horse")
    assert user is not None and user.role == "operator"
    assert authenticate(path, "olga", "wrong horse!") is None and authenticate(path, "nobody", "x") is None
    mark = password_mark(user)
    assert mark not in path.read_text() and len(mark) == 32
    again = add_user(path, "olga", "operator", "correct horse")  # the same password, a new salt: a new mark
    assert password_mark(again) != mark
    assert Sessions(60.0, Clock()).login("olga", "operator", mark)[1].password_mark == mark
    add_user(path, "olga", "viewer", "another secret")  # replaces role and password
    assert authenticate(path, "olga", "correct horse") is None
    assert authenticate(path, "olga", "another secret").role == "viewer"  # type: ignore[union-attr]
    for args, fragment in [(("Olga", "viewer", "long enough pw"), "user name 'Olga' not allowed"),
                           (("eve", "admin", "long enough pw"), "role 'admin' unknown; allowed: operator"),
                           (("eve", "viewer", "short"), "allowed: 10..256"),
                           (("eve", "viewer", "tab\tinside pw"), "printable")]:
        with pytest.raises(UsersError, match=fragment):
            add_user(path, *args)
    assert remove_user(path, "olga") and not remove_user(path, "olga")
    path.write_text("{not json")
    with pytest.raises(UsersError, match="cannot read console users from"):
        authenticate(path, "olga", "another secret")
    path.write_text('{"users": {"olga": {"role": "root", "hash": "x"}}}')
    with pytest.raises(UsersError, match="is not a console users file"):
        load_users(path)


def test_user_add_refuses_a_state_dir_of_another_user(tmp_path: Path) -> None:
    """As root on the daemon's state dir, a root-owned 0600 users file would lock the console out."""
    import os

    from edge.tools.console import add_user as cli_add_user

    state = tmp_path / "state"
    state.mkdir()
    if os.geteuid() == 0:
        os.chown(state, 65534, 65534)
    else:
        state = Path("/")  # root's
    config = tmp_path / "parkgate.toml"
    config.write_text(f'[gateway]\nstate_dir = "{state}"\n')
    out = cli_add_user(config, "olga", "operator", "long enough pw")
    assert out.returncode == 1 and "run this as that user (sudo -u parkgate" in out.stderr
    assert not (state / "console_users.json").exists()
