"""`parkgate demo`: a short day at a two-lane garage, end to end, with every expectation checked.

A local anvil gets the rental contract, a verified owner lists spaces (first association), renters
book with vehicle commitments. The gate emulators run on ptys, the daemon runs as a child process
with cameras playing rendered vehicles, and the harness drives each vehicle over the loops. The
daemon decides from its local cache (synced from the chain), records every pass, and its chain sync
lands the verification (second association), check-ins and check-outs on the contract. The run
prints a timeline, writes a Markdown report with the evidence crops, and exits 0 only when every
expectation held.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.chain.sync import audit_records
from edge.tools.anvil import Anvil, dev_account
from edge.tools.booking import BookingServiceProcess
from edge.tools.console import ConsoleProcess, add_user, console_section
from edge.tools.demo import harness as h
from edge.tools.demo.world import ChainWorld, build_world, chain_section, write_secrets
from edge.tools.emulator.launch import running_emulator
from edge.tools.net import free_tcp_port
from edge.tools.proc import exit_on_sigterm

LOT_ID = "LOT-DEMO-1"
DEMO_CONSOLE_USER = "demo"
ENTRY, EXIT = "entry-1", "exit-1"
HOUR = 3600

# Render seeds whose frames the bundled models read cleanly (a demo shows the flow, not OCR limits).
A = h.Vehicle("car-a", "AB 123-CD", seed=111)
B = h.Vehicle("car-b", "KX 904-LM", seed=112)
C = h.Vehicle("car-c", "TR 552-GH", seed=413)
D = h.Vehicle("car-d", "ZW 771-QP", seed=714)
E = h.Vehicle("car-e", "AB 947-CD", seed=15)  # three digits off car-a's plate: beyond the distance
F = h.Vehicle("car-f", "MN 246-PX", seed=416)

VISITS = (
    h.Visit(A, ENTRY, True, "booking_valid", "booked now"),
    h.Visit(B, ENTRY, False, "no_booking", "no booking"),
    h.Visit(C, ENTRY, False, "too_early", "booked for tomorrow"),
    h.Visit(D, ENTRY, False, "deny_listed", "booked but deny-listed"),
    h.Visit(E, ENTRY, False, "no_booking", "near-miss of car-a's plate"),
    h.Visit(F, ENTRY, True, "booking_valid", "booked now"),
    h.Visit(A, EXIT, True, "session_exit", "leaves"),
    h.Visit(F, EXIT, True, "session_exit", "leaves"),
)


@dataclass
class Check:
    what: str
    ok: bool
    detail: str = ""


@dataclass
class DemoRun:
    workdir: Path
    results: list[h.VisitResult] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    bookings: dict[str, int] = field(default_factory=dict)
    chain_lines: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)


def say(text: str = "") -> None:
    print(text, flush=True)


def progress(done: int, total: int, width: int = 24) -> str:
    filled = int(width * done / total)
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"


# -- set-up ------------------------------------------------------------------------------------------

def book_everyone(world: ChainWorld) -> dict[str, int]:
    """Spaces listed from now for a few hours; car-c's booking is for tomorrow."""
    bookings = {}
    for n, vehicle in enumerate((A, D, F)):
        now = world.now()
        rental = world.list_space(f"L-1/B{n + 1:02d}", now + 5, now + 6 * HOUR)
        start = world.now() + 5  # taken again: listing the space took time
        bookings[vehicle.name] = world.book(rental, vehicle.plate, start, start + 4 * HOUR)
    tomorrow = world.now() + 24 * HOUR
    rental = world.list_space("L-1/B09", tomorrow, tomorrow + 6 * HOUR)
    bookings[C.name] = world.book(rental, C.plate, tomorrow, tomorrow + 2 * HOUR)
    return bookings


def vision_section(models: Path | None) -> dict[str, object]:
    """The bundled models, or those in ``models`` (same file names as models/weights)."""
    if models is None:
        return {"threads": 2}
    return {"threads": 2, "detector_model": str(models / "plate_detector.onnx"),
            "ocr_model": str(models / "plate_ocr.onnx"), "ocr_config": str(models / "plate_ocr.yaml")}


def daemon_config(workdir: Path, emulators: dict[str, Any], cameras: dict[str, h.LaneCamera],
                  chain: dict[str, object], mqtt: dict[str, object] | None,
                  models: Path | None = None, console: dict[str, object] | None = None) -> Path:
    sections: dict[str, dict[str, Any]] = {
        "gateway": {"id": "demo-gw", "lot_id": LOT_ID, "state_dir": str(workdir / "state")},
        "policy": {"deny_list": [D.plate]},
        "vision": vision_section(models),
        "chain": chain,
    }
    if mqtt:
        sections["mqtt"] = mqtt
    if console:
        sections["console"] = console
    lanes = [{"name": lane, "direction": lane.split("-")[0],
              "gate": {"port": str(emulators[lane].link), "baudrate": 115200, "pulse_ms": 4000},
              "camera": {"source": str(cameras[lane].manifest), "fps": 10, "burst_frames": 3}}
             for lane in (ENTRY, EXIT)]
    path = workdir / "parkgate.toml"
    path.write_text(h.toml_text(sections, lanes))
    return path


# -- checks ------------------------------------------------------------------------------------------

def wait_for_cache(store: Path, count: int, timeout: float = 30.0) -> bool:
    return bool(h.wait_until(lambda: h.cached_bookings(store) >= count, timeout, 0.2))


def chain_checks(run: DemoRun, world: ChainWorld, store: Path, timeout: float = 60.0) -> None:
    """Every chain-bound record landed once; the admitted bookings went requested -> checked in (the
    second association) -> checked out."""
    drained = h.wait_until(lambda: not any(k.startswith("chain.") and not k.endswith((".done", ".dead"))
                                           for k in h.outbox_counts(store)), timeout, 0.3)
    counts = h.outbox_counts(store)
    run.checks.append(Check("chain outbox drained", bool(drained) and counts.get("chain.dead", 0) == 0,
                            str(counts)))
    import sqlite3

    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    audit = audit_records(conn, world.admin, world.gateway.address)
    conn.close()
    run.checks.append(Check("every chain record processed by the contract",
                            not audit.lost and audit.records > 0,
                            f"{audit.records} records, {len(audit.lost)} missing"))
    rejected = world.admin.events("GateRecordRejected")
    run.checks.append(Check("no record rejected by the contract", not rejected and not audit.rejected,
                            str(rejected[:3])))
    second = {int(e.args["bookingId"]): e for e in world.admin.events("SecondAssociation")}
    for vehicle in (A, F):
        booking_id = run.bookings[vehicle.name]
        event = second.get(booking_id)
        status = world.admin.get_booking(booking_id)
        ok = event is not None and status.check_in_at > 0 and status.check_out_at > 0
        run.checks.append(Check(f"{vehicle.name}: second association (= check-in) and check-out on chain", ok,
                                f"booking {booking_id} status {status.status.name}"))
        if event is not None:
            run.chain_lines.append(f"{vehicle.name}  booking {booking_id}  second association + check-in "
                                   f"(rental {event.args['rentalId']}, renter {status.renter[:10]}...) "
                                   f"tx 0x{bytes(event.tx_hash).hex()[:16]}... block {event.block_number}")
    denied = [e for e in world.admin.events("GateDenied") if int(e.args["bookingId"]) == run.bookings[C.name]]
    run.checks.append(Check("car-c's early arrival recorded on chain as denied", len(denied) == 1,
                            f"{len(denied)} GateDenied for booking {run.bookings[C.name]}"))


# -- output ------------------------------------------------------------------------------------------

def timeline_line(n: int, result: h.VisitResult) -> str:
    row = result.main_row or {}
    visit = result.visit
    conf = f"{row['confidence']:.2f}" if row.get("confidence") is not None else "  - "
    verdict = "ADMIT " if result.opened else "REFUSE"
    gate = f"gate opened in {result.open_latency_s:.2f}s" if result.opened else "gate stays closed"
    mark = "ok" if result.held else "UNEXPECTED"
    return (f"{progress(n, len(VISITS))} {time.strftime('%H:%M:%S')} {visit.vehicle.name} ({visit.note}) "
            f"at {visit.lane}: read {row.get('plate_masked') or '-'} conf {conf} -> {verdict} "
            f"{row.get('reason', result.error)}; {gate}; {row.get('kind', '-')} [{mark}]")


def write_report(run: DemoRun) -> Path:
    report = run.workdir / "report"
    report.mkdir(exist_ok=True)
    lines = ["# parkgate demo report", "", f"Run {time.strftime('%Y-%m-%d %H:%M:%S')}; result: "
             f"**{'PASS' if run.ok else 'FAIL'}**", "",
             "| # | vehicle | lane | read (masked) | conf | decision | gate | expected | crop |",
             "|---|---|---|---|---|---|---|---|---|"]
    for n, result in enumerate(run.results, 1):
        row = result.main_row or {}
        crop = ""
        if row.get("evidence_path") and Path(row["evidence_path"]).exists():
            name = f"{n:02d}-{result.visit.vehicle.name}.jpg"
            shutil.copy(row["evidence_path"], report / name)
            crop = f"![{name}]({name})"
        conf = f"{row['confidence']:.2f}" if row.get("confidence") is not None else "-"
        lines.append(f"| {n} | {result.visit.vehicle.name} | {result.visit.lane} "
                     f"| {row.get('plate_masked') or '-'} "
                     f"| {conf} | {row.get('reason', result.error)} "
                     f"| {'open' if result.opened else 'closed'} "
                     f"| {'yes' if result.held else 'NO'} | {crop} |")
    lines += ["", "## Chain", "", *[f"- {line}" for line in run.chain_lines], "", "## Checks", ""]
    lines += [f"- [{'x' if c.ok else ' '}] {c.what} {('(' + c.detail + ')') if c.detail else ''}"
              for c in run.checks]
    path = report / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


# -- the run -----------------------------------------------------------------------------------------

def run_demo(workdir: Path | None = None, mqtt_url: str | None = None, models: Path | None = None,
             mqtt_ca: Path | None = None, on_daemon: Callable[[Any], None] | None = None,
             wait: Callable[[str], object] | None = None) -> DemoRun:
    """The demo day; ``wait`` (e.g. ``input``): called with a prompt once the day is over, while the
    daemon and the console still run, so a user can look at the passes in a browser."""
    workdir = workdir or Path(tempfile.mkdtemp(prefix="parkgate-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    run = DemoRun(workdir)
    say(f"parkgate demo in {workdir}")
    with ExitStack() as stack:
        say("1/5 local chain: anvil, contract, owner, lot + gateway, booking service, spaces and bookings")
        anvil = stack.enter_context(Anvil(log_path=workdir / "anvil.log"))
        paths = write_secrets(workdir / "secrets", dev_account(5))
        plate_key = bytes.fromhex(paths["plate_key"].read_text().strip())
        world = build_world(anvil.web3(), LOT_ID, plate_key)
        service = stack.enter_context(BookingServiceProcess(
            anvil.url, world.admin.address, world.lot_code, paths["plate_key"],
            workdir / "booking-service.log", regions="eu"))
        world.booking_url = service.url
        say(f"    booking service (parkgate booking-service) at {service.url}")
        say(f"    its pages: renters {service.url}/  owners {service.url}/owner  (a browser wallet on "
            f"{anvil.url}, chain {anvil.web3().eth.chain_id})")
        run.bookings = book_everyone(world)
        for name, booking in run.bookings.items():
            say(f"    booking {booking} for {name}: commitment from the booking service, only it on chain")
        say("2/5 cameras: rendering the vehicles")
        cameras = {lane: h.LaneCamera(workdir / "camera", lane) for lane in (ENTRY, EXIT)}
        for visit in VISITS:
            h.vehicle_frames(visit.vehicle, workdir / "camera")
        say("3/5 gate emulators on ptys, then the daemon")
        emulators = {lane: stack.enter_context(running_emulator(workdir, name=lane))
                     for lane in (ENTRY, EXIT)}
        mqtt = mqtt_section(mqtt_url, workdir, mqtt_ca) if mqtt_url else None
        console_port = free_tcp_port()
        config = daemon_config(workdir, emulators, cameras,
                               chain_section(anvil.url, world.admin.address, paths), mqtt, models,
                               console_section(console_port))
        daemon = h.start_daemon(config, workdir / "daemon.log")
        stack.callback(daemon.stop)
        if on_daemon:
            on_daemon(daemon)
        store = workdir / "state" / "parkgate.sqlite"
        run.checks.append(Check("bookings synced into the gateway cache", wait_for_cache(store, 4)))
        say("4/5 the day: arrivals and departures")
        for n, visit in enumerate(VISITS):
            result = h.play_visit(visit, emulators[visit.lane], cameras[visit.lane], store)
            run.results.append(result)
            say("  " + timeline_line(n + 1, result))
            expected = f"{'admitted' if visit.expect_open else 'refused'} ({visit.expect_reason})"
            run.checks.append(Check(f"{visit.vehicle.name} at {visit.lane}: {expected}", result.held,
                                    (result.main_row or {}).get("reason", result.error)))
        say("5/5 chain: waiting for the gateway's records to land")
        chain_checks(run, world, store)
        for line in run.chain_lines:
            say("  " + line)
        spurious = [r for r in run.results if r.opened and not r.visit.expect_open]
        run.checks.append(Check("no spurious opens", not spurious, str(len(spurious))))
        show_console(run, config, console_port, wait)
        code = daemon.stop()
        run.checks.append(Check("daemon stopped cleanly on SIGTERM", code == 0, f"exit {code}"))
    report = write_report(run)
    failed = [c for c in run.checks if not c.ok]
    say(f"report: {report}")
    say(f"{len(run.checks) - len(failed)} of {len(run.checks)} expectations held"
        + ("" if not failed else "; FAILED: " + "; ".join(f"{c.what} ({c.detail})" for c in failed)))
    return run


def show_console(run: DemoRun, config: Path, port: int, wait: Callable[[str], object] | None) -> None:
    """The console beside the daemon, with a demo operator (a new password each run): its URL and
    credentials printed; kept up until ``wait`` returns."""
    import secrets
    import urllib.request

    password = secrets.token_urlsafe(12)
    added = add_user(config, DEMO_CONSOLE_USER, "operator", password)
    with ConsoleProcess(config, port, run.workdir / "console.log") as console:
        with urllib.request.urlopen(console.url + "/login", timeout=30) as response:
            answered = response.status == 200
        run.checks.append(Check("console answers (parkgate console serve)",
                                added.returncode == 0 and answered, added.stderr.strip() or console.url))
        say(f"console: {console.url}/  user {DEMO_CONSOLE_USER}  password {password}")
        if wait is not None:
            wait("    look at the passes in a browser; press Enter to stop the demo ")


def mqtt_section(url: str, workdir: Path, ca_file: Path | None = None) -> dict[str, object]:
    """``--mqtt mqtt(s)://user:pass@host:port``: publish too (a command key is generated)."""
    from edge.mqtt import generate_key
    from edge.mqtt.wiring import mqtt_config_from_url

    broker, password = mqtt_config_from_url(url)
    key = workdir / "secrets" / "command-key"
    key.write_text(generate_key() + "\n")
    section: dict[str, object] = {"enabled": True, "host": broker.host, "port": broker.port,
                                  "command_key_file": str(key)}
    if broker.username:
        section["username"] = broker.username
    if password:
        pw = workdir / "secrets" / "mqtt-password"
        pw.write_text(password + "\n")
        section["password_file"] = str(pw)
    if not broker.tls.enabled:
        return section | {"tls": {"enabled": False}}
    return section | ({"tls": {"ca_file": str(ca_file)}} if ca_file else {})


def main(workdir: Path | None = None, mqtt_url: str | None = None, models: Path | None = None,
         mqtt_ca: Path | None = None, exit_at_end: bool = False) -> int:
    """The demo; on a terminal (and without ``exit_at_end``) it waits for Enter before stopping, so the
    console can be looked at; without a terminal it ends by itself."""
    exit_on_sigterm()
    wait = input if sys.stdin.isatty() and not exit_at_end else None
    try:
        run = run_demo(workdir, mqtt_url, models, mqtt_ca, wait=wait)
    except Exception as exc:  # noqa: BLE001 - the demo reports what broke and exits non-zero
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    return 0 if run.ok else 1
