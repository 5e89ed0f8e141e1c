"""`make chaos`: a bounded simulated day under faults, with the books checked at the end.

At least 1,000 vehicles (renters with on-chain bookings who enter and leave, an allow-listed fleet,
strangers who must be refused) through several lanes of emulated gates, while a fault thread kills
the daemon with SIGKILL at random moments (restarted at once, as systemd would), stops and restarts
the chain node (state kept) and the broker, and pulls serial cables. At the end, with everything back
up and drained, it prints:

- vehicles admitted/refused vs expected (and passes a kill cut short before they were recorded: an
  opened one is recorded from the pass journal at the restart, else it counts as lost);
- gate records on chain: lost (recorded locally, never processed by the contract: no number at or
  below the gateway's high-water mark), duplicated (a booking checked in / out more than once),
  rejected by the contract (its logs, and rows in the outbox state 'rejected'; 0 expected);
- MQTT events delivered: lost (in the outbox, never received), received twice (consumers dedupe by
  event_id);
- spurious opens (a gate opened for a vehicle that must be refused, or for nobody);
- passes decided from an approach track (every entry lane reads on the approach; one arriving vehicle in
  ``APPROACH_EVERY`` is seen driving up, the others come into view just before the loop) and from a burst.

Exit 0 only when every figure that must be zero is zero.
"""

from __future__ import annotations

import argparse
import multiprocessing
import queue
import random
import re
import signal
import sqlite3
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import cv2

from edge.chain.commitment import normalise_plate
from edge.chain.sync import audit_records
from edge.daemon.records import RESTART_OUTCOME, UNACKED_RESTART_OUTCOME
from edge.mqtt import generate_key
from edge.mqtt.topics import Topics
from edge.tools.anvil import Anvil, AnvilConfig, dev_account
from edge.tools.demo import harness as h
from edge.tools.demo.scenario import vision_section
from edge.tools.demo.world import build_world, chain_section, write_secrets
from edge.tools.emulator.launch import running_emulator
from edge.tools.mosquitto import MosquittoBroker, TopicWatcher
from edge.tools.proc import exit_on_sigterm
from edge.vision import synth

LOT, GATEWAY = "LOT-CHAOS-1", "chaos-gw"
WATCHER = ("watcher", "watcher-chaos-secret")
TOPICS = Topics("parkgate", GATEWAY)
# Smaller and fewer renders than the demo (a thousand vehicles), the plate a bit closer to the camera.
FRAME_SIZE, FRAMES, FRAMES_FPS, PLATE_FRAC = (640, 360), 2, 10, (0.22, 0.28)
MISREAD_REASONS = ("low_confidence", "no_read", "no_booking", "ambiguous_match")
APPROACH_EVERY = 5  # one arriving vehicle in this many drives up in view of the camera (approach reading)
READ_FROM = re.compile(r"^.*pass lane=.* read=(approach|burst)\b", re.M)  # the daemon's pass log lines
# A granted open the controller never acknowledged: what a pulled serial cable does to a pass.
GATE_FAULT_REASONS = ("gate_fault",)


@dataclass
class Plan:
    booked: list[h.Vehicle]
    fleet: list[h.Vehicle]
    strangers: list[h.Vehicle]

    @property
    def vehicles(self) -> int:
        return len(self.booked) + len(self.fleet) + len(self.strangers)


@dataclass
class Tally:
    results: list[h.VisitResult] = field(default_factory=list)
    kills: int = 0
    chain_cuts: int = 0
    broker_cuts: int = 0
    serial_pulls: int = 0
    second_tries: int = 0
    first_tries: list[h.VisitResult] = field(default_factory=list)  # refused, then tried again
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, result: h.VisitResult) -> None:
        with self.lock:
            self.results.append(result)


def distinct_plates(rng: random.Random, count: int) -> list[str]:
    """Random EU-style plates, any two differing in at least three positions (no fuzzy neighbours)."""
    nprng = __import__("numpy").random.default_rng(rng.randrange(2**32))
    plates: list[str] = []
    seen: list[str] = []
    while len(plates) < count:
        text = synth.random_text(nprng, "eu")
        norm = normalise_plate(text)
        if any(len(o) == len(norm) and sum(a != b for a, b in zip(o, norm, strict=True)) < 3 for o in seen):
            continue
        seen.append(norm)
        plates.append(text)
    return plates


def make_plan(rng: random.Random, booked: int, fleet: int, strangers: int) -> Plan:
    plates = distinct_plates(rng, booked + fleet + strangers)
    vehicles = [h.Vehicle(f"v{i:04d}", plate, seed=1000 + i) for i, plate in enumerate(plates)]
    return Plan(vehicles[:booked], vehicles[booked:booked + fleet], vehicles[booked + fleet:])


class Chaos:
    def __init__(self, work: Path, plan: Plan, entry_lanes: int, exit_lanes: int, kills: int,
                 seed: int, models: Path | None = None) -> None:
        self.models = models
        self.work = work
        self.plan = plan
        self.rng = random.Random(seed)
        self.entry = [f"entry-{i + 1}" for i in range(entry_lanes)]
        self.exit = [f"exit-{i + 1}" for i in range(exit_lanes)]
        self.kills_wanted = kills
        self.tally = Tally()
        self.daemon_lock = threading.Lock()
        self.done = threading.Event()
        self.store = work / "state" / "parkgate.sqlite"

    # -- set-up --------------------------------------------------------------------------------------

    def setup(self, stack: ExitStack) -> None:
        say("chain: anvil, contract, owner, lot, one space + rental + booking per renter ...")
        state = AnvilConfig(state_path=self.work / "anvil-state.json")
        self.anvil = Anvil(state, log_path=self.work / "anvil.log").start()
        stack.callback(lambda: self.anvil.stop())
        paths = write_secrets(self.work / "secrets", dev_account(5))
        plate_key = bytes.fromhex(paths["plate_key"].read_text().strip())
        self.world = build_world(self.anvil.web3(), LOT, plate_key)
        self.bookings: dict[str, int] = {}
        for n, vehicle in enumerate(self.plan.booked):
            now = self.world.now()
            rental = self.world.list_space(f"L-{n // 50}/B{n % 50:02d}", now + 5, now + 8 * 3600)
            self.bookings[vehicle.name] = self.world.book(rental, vehicle.plate, now + 5, now + 6 * 3600)
        say(f"  {len(self.bookings)} bookings on chain")
        self.broker = MosquittoBroker(self.work / "broker", extra_users=dict([WATCHER])).start()
        stack.callback(lambda: self.broker.stop())
        self.watcher = TopicWatcher(self.broker, WATCHER, TOPICS.events)  # every event id published
        stack.callback(self.watcher.close)
        (self.work / "command-key").write_text(generate_key() + "\n")
        (self.work / "mqtt-password").write_text(self.broker.password + "\n")
        say("cameras: rendering vehicles ...")
        camera_dir = self.work / "camera"
        self.cameras = {lane: h.LaneCamera(camera_dir, lane, FRAMES_FPS, FRAMES, FRAME_SIZE, PLATE_FRAC)
                        for lane in self.entry + self.exit}
        vehicles = self.plan.booked + self.plan.fleet + self.plan.strangers
        driveway = cv2.imread(str(camera_dir / "empty.jpg"), cv2.IMREAD_COLOR)
        with multiprocessing.get_context("spawn").Pool(2) as pool:
            jobs = [(v, camera_dir, FRAMES, FRAME_SIZE, 0, PLATE_FRAC) for v in vehicles]
            pool.starmap(h.vehicle_frames, jobs, chunksize=20)
            drivers = [v for v in vehicles if drives_up(v)]
            pool.starmap(h.approach_frames, [(v, camera_dir, driveway, h.APPROACH_FRAMES, FRAME_SIZE)
                                             for v in drivers], chunksize=10)
        self.emulators = {lane: stack.enter_context(running_emulator(self.work, name=lane))
                          for lane in self.entry + self.exit}
        lanes = [{"name": lane, "direction": lane.split("-")[0],
                  "gate": {"port": str(self.emulators[lane].link), "baudrate": 115200, "pulse_ms": 3000},
                  "camera": {"source": str(self.cameras[lane].manifest), "burst_frames": 3,
                             "approach": lane in self.entry}}
                 for lane in self.entry + self.exit]
        self.config = self.work / "parkgate.toml"
        self.config.write_text(h.toml_text({
            "gateway": {"id": GATEWAY, "lot_id": LOT, "state_dir": str(self.work / "state")},
            "policy": {"allow_list": [v.plate for v in self.plan.fleet]},
            "vision": vision_section(self.models) | {"threads": 1},
            "chain": chain_section(self.anvil.url, self.world.admin.address, paths),
            "mqtt": {"enabled": True, "host": self.broker.host, "port": self.broker.port,
                     "username": self.broker.username, "password_file": str(self.work / "mqtt-password"),
                     "command_key_file": str(self.work / "command-key"),
                     "tls": {"ca_file": str(self.broker.ca_file)}},
        }, lanes))
        self.daemon = h.start_daemon(self.config, self.work / "daemon.log")
        stack.callback(lambda: self.daemon.stop())
        ok = h.wait_until(lambda: _count(self.store, "bookings") >= len(self.bookings), 60, 0.5)
        say(f"daemon ready; {'all' if ok else 'NOT all'} bookings in its cache")

    # -- traffic -------------------------------------------------------------------------------------

    def lane_worker(self, lane: str, visits: queue.Queue, exits: queue.Queue | None) -> None:
        while True:
            visit = visits.get()
            if visit is None:
                return
            result = self.play(visit, lane)
            if exits is not None and visit.vehicle in self.booked_set and result.opened and not result.error:
                exits.put(h.Visit(visit.vehicle, "", True, "session_exit"))
            time.sleep(0.05)

    def exit_worker(self, lane: str, exits: queue.Queue) -> None:
        while True:
            visit = exits.get()
            if visit is None:
                return
            self.play(h.Visit(visit.vehicle, lane, True, "session_exit"), lane)

    def play(self, visit: h.Visit, lane: str) -> h.VisitResult:
        """One vehicle; a driver refused where a pass was expected (misread, gate fault) backs up and
        tries once more, as at a real barrier."""
        arrive = "approach" if lane in self.entry and drives_up(visit.vehicle) else "shown"
        result = h.play_visit(visit, self.emulators[lane], self.cameras[lane], self.store,
                              decide_timeout=20.0, record_timeout=6.0, pace_s=0.15, arrive=arrive)
        if visit.expect_open and not result.opened:
            with self.tally.lock:
                self.tally.second_tries += 1
                self.tally.first_tries.append(result)
            time.sleep(0.5)
            result = h.play_visit(visit, self.emulators[lane], self.cameras[lane], self.store,
                                  decide_timeout=20.0, record_timeout=6.0, pace_s=0.15, take=1)
        self.tally.add(result)
        return result

    def traffic(self) -> None:
        plan = self.plan
        self.booked_set = set(plan.booked)
        arrivals = [h.Visit(v, "", True, "booking_valid") for v in plan.booked]
        arrivals += [h.Visit(v, "", True, "allow_listed") for v in plan.fleet]
        arrivals += [h.Visit(v, "", False, "no_booking") for v in plan.strangers]
        self.rng.shuffle(arrivals)
        per_lane: dict[str, queue.Queue] = {lane: queue.Queue() for lane in self.entry}
        for n, visit in enumerate(arrivals):
            lane = self.entry[n % len(self.entry)]
            per_lane[lane].put(h.Visit(visit.vehicle, lane, visit.expect_open, visit.expect_reason))
        exits: queue.Queue = queue.Queue()
        workers = [threading.Thread(target=self.lane_worker, args=(lane, per_lane[lane], exits))
                   for lane in self.entry]
        exit_workers = [threading.Thread(target=self.exit_worker, args=(lane, exits)) for lane in self.exit]
        for lane in self.entry:
            per_lane[lane].put(None)
        for t in workers + exit_workers:
            t.start()
        for t in workers:
            t.join()
        for _ in exit_workers:
            exits.put(None)
        for t in exit_workers:
            t.join()

    # -- faults --------------------------------------------------------------------------------------

    def faults(self, expected_s: float) -> None:
        """Kill the daemon ~kills_wanted times over the expected run; sprinkle the other faults."""
        others = ["chain"] * 3 + ["broker"] * 3 + ["serial"] * 6
        self.rng.shuffle(others)
        kill_gap = expected_s / (self.kills_wanted + 2)
        step = 0
        while not self.done.wait(self.rng.uniform(0.5, 1.5) * kill_gap):
            if self.tally.kills < self.kills_wanted + 5:
                self.kill_daemon()
            step += 1
            if others and step % max(1, self.kills_wanted // len(others)) == 0:
                getattr(self, f"cut_{others.pop()}")()
        while self.tally.kills < self.kills_wanted:  # traffic ended early: finish the kills
            self.kill_daemon()
            time.sleep(self.rng.uniform(0.5, 2.0))

    def kill_daemon(self) -> None:
        with self.daemon_lock:
            self.daemon.kill(signal.SIGKILL)
            if self.daemon.proc is not None:
                self.daemon.proc.wait(10)
            self.tally.kills += 1
            self.daemon = h.start_daemon(self.config, self.work / "daemon.log")

    def cut_chain(self) -> None:
        port = self.anvil.port
        self.anvil.stop()
        time.sleep(self.rng.uniform(2, 6))
        self.anvil = Anvil(AnvilConfig(port=port, state_path=self.work / "anvil-state.json"),
                           log_path=self.work / f"anvil-{self.tally.chain_cuts + 2}.log").start()
        self.tally.chain_cuts += 1

    def cut_broker(self) -> None:
        self.broker.kill()
        time.sleep(self.rng.uniform(1, 4))
        self.broker.start_letting_in_first(WATCHER[0], self.watcher.subscribed)
        self.tally.broker_cuts += 1

    def cut_serial(self) -> None:
        lane = self.rng.choice(self.entry + self.exit)
        self.emulators[lane].command(f"unplug {self.rng.uniform(0.5, 2.0):.1f}")
        self.tally.serial_pulls += 1

    # -- the books -----------------------------------------------------------------------------------

    def settle(self, timeout: float = 180.0) -> bool:
        def drained() -> bool:
            counts = h.outbox_counts(self.store)
            return not any(k.endswith((".pending", ".in_flight")) for k in counts)

        return bool(h.wait_until(drained, timeout, 1.0))

    def explain_opens(self) -> None:
        """Each gate open an emulator executed (its log's OPEN lines, wall clock) outside the window of
        every visit that counted an open on that lane, with the visits and daemon log lines around it."""
        visits = [*self.tally.results, *self.tally.first_tries]
        daemon_log = [(_logged_at(line), line) for line in
                      (self.work / "daemon.log").read_text(errors="replace").splitlines()]
        for lane in self.emulators:
            log_text = (self.work / f"{lane}-emulator.log").read_text(errors="replace")
            on_lane = [v for v in visits if v.visit.lane == lane]
            for stamp, seq in ((float(t), int(n)) for t, n in OPEN_LINE.findall(log_text)):
                if any(v.opened and v.window[0] <= stamp <= v.window[1] for v in on_lane):
                    continue
                clock = time.strftime("%H:%M:%S", time.localtime(stamp))  # as the daemon's log lines
                say(f"\nopen not tied to a visit: lane {lane} at {clock} ({stamp:.3f}), frame seq {seq}")
                for v in sorted(on_lane, key=lambda v: v.window[0]):
                    if abs(v.window[0] - stamp) < 15:
                        rows = ", ".join(f"{r['kind']} {r['reason']}" for r in v.rows) or "no row"
                        say(f"  visit {v.visit.vehicle.name}: {v.window[0] - stamp:+.2f} .. "
                            f"{v.window[1] - stamp:+.2f} s, opened={v.opened}: {rows}")
                for at, line in daemon_log:
                    if at is not None and abs(at - stamp) <= 4:
                        say(f"  | {line[11:200]}")

    def report(self, elapsed: float, drained: bool) -> list[tuple[str, int, bool]]:
        """(figure, value, must be zero)."""
        results = self.tally.results
        cut = [r for r in results if r.error]
        recorded = [r for r in results if not r.error]
        wrong_admits = [r for r in recorded if r.visit.expect_open and not r.opened]
        misread = [r for r in wrong_admits
                   if any(m in (r.main_row or {}).get("reason", "") for m in MISREAD_REASONS)]
        unreachable = [r for r in wrong_admits
                       if any(m in (r.main_row or {}).get("reason", "") for m in GATE_FAULT_REASONS)]
        spurious_visits = [r for r in results if r.opened and not r.visit.expect_open]
        opens_total = sum(e.state()["open_commands"] for e in self.emulators.values())
        unattributed = opens_total - sum(1 for r in results if r.opened)
        admitted = sum(1 for r in recorded if r.opened)
        expected_admit = sum(1 for r in results if r.visit.expect_open)
        refused_ok = sum(1 for r in recorded if not r.opened and not r.visit.expect_open)
        conn = sqlite3.connect(f"file:{self.store}?mode=ro", uri=True)
        audit = audit_records(conn, self.world.admin, self.world.gateway.address)
        mqtt_ids = [e for (e,) in conn.execute("SELECT event_id FROM outbox WHERE destination = 'mqtt'")]
        dead = conn.execute("SELECT count(*) FROM outbox WHERE status = 'dead'").fetchone()[0]
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        recovered_ids = {e for (e,) in conn.execute(
            "SELECT event_id FROM gate_events WHERE substr(reason, 1, instr(reason, ',') - 1) IN (?, ?)",
            (RESTART_OUTCOME, UNACKED_RESTART_OUTCOME))}
        conn.close()
        recovered_late = recovered_ids - {row["event_id"] for r in recorded for row in r.rows}
        lost_opened = max(0, sum(1 for r in cut if r.opened) - len(recovered_late))
        client = self.world.admin
        per_booking: Counter[tuple[str, int]] = Counter()
        for name in ("SecondAssociation", "CheckedOut"):
            for event in client.events(name):
                per_booking[(name, int(event.args["bookingId"]))] += 1
        duplicated = sum(n - 1 for n in per_booking.values() if n > 1)
        rejected_on_chain = len(client.events("GateRecordRejected"))
        received = [body["event_id"] for body in self.watcher.on(TOPICS.events)
                    if isinstance(body, dict) and isinstance(body.get("event_id"), str)]
        lost_mqtt = len(set(mqtt_ids) - set(received))
        twice = len(received) - len(set(received))
        others = [r for r in wrong_admits if r not in misread and r not in unreachable]
        read_from = Counter(READ_FROM.findall((self.work / "daemon.log").read_text(errors="replace")))
        explain_refusals(others)
        if unattributed > 0:
            self.explain_opens()
        say(f"\nchaos run: {elapsed:.0f} s, {self.plan.vehicles} vehicles, {len(results)} passes, "
            f"{self.tally.kills} daemon SIGKILLs, {self.tally.chain_cuts} chain node cuts, "
            f"{self.tally.broker_cuts} broker cuts, {self.tally.serial_pulls} serial pulls")
        return [
            ("passes expected to be admitted", expected_admit, False),
            ("passes admitted", admitted, False),
            ("passes refused as expected", refused_ok, False),
            ("drivers who had to approach twice (misread or gate fault)", self.tally.second_tries, False),
            ("to admit, refused twice: plate misread (OCR quality)", len(misread), False),
            ("to admit, refused twice: gate unreachable (serial pull)", len(unreachable), False),
            ("to admit, refused twice for any other reason", len(others), True),
            ("passes decided from an approach track (daemon log)", read_from["approach"], False),
            ("passes decided from a burst after the trigger (daemon log)", read_from["burst"], False),
            ("passes cut short by a kill before they were recorded", len(cut), False),
            ("granted passes recorded from the pass journal after a restart", len(recovered_ids), False),
            ("opened passes lost by a kill (gate opened, pass never recorded)", lost_opened, True),
            ("spurious opens (gate opened for a vehicle to refuse)", len(spurious_visits), True),
            ("gate opens not attributable to a pass", max(0, unattributed), True),
            ("gate records for the chain (recorded locally)", audit.records, False),
            ("gate records lost on chain", len(audit.lost), True),
            ("gate records duplicated on chain", duplicated, True),
            ("gate records rejected by the contract (GateRecordRejected logs)", rejected_on_chain, True),
            ("gate records in the outbox state 'rejected'", len(audit.rejected), True),
            ("MQTT events in the outbox", len(mqtt_ids), False),
            ("MQTT events lost", lost_mqtt, True),
            ("MQTT events received twice (deduplicated by event_id)", twice, False),
            ("outbox rows dead", dead, True),
            ("outbox not drained at the end", 0 if drained else 1, True),
            ("store integrity problems", 0 if integrity == "ok" else 1, True),
        ]


def drives_up(vehicle: h.Vehicle) -> bool:
    """Whether this vehicle is seen driving up to an entry lane (its approach frames are rendered)."""
    return vehicle.seed % APPROACH_EVERY == 0


OPEN_LINE = re.compile(r"^OPEN (\d+\.\d+) seq=(\d+)$", re.M)


def _logged_at(line: str) -> float | None:
    """The epoch of a daemon log line (logging's local ``%Y-%m-%d %H:%M:%S,mmm``), None for others."""
    try:
        return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    except ValueError:
        return None


def explain_refusals(refusals: list[h.VisitResult]) -> None:
    """Every refusal of a vehicle to admit that is neither a misread nor a fault effect, with what the
    daemon recorded for it (kind and reason of each row), so that a failure explains itself."""
    if refusals:
        say(f"\nrefused for another reason than a misread or a fault ({len(refusals)}):")
    for r in refusals:
        rows = "; ".join(f"{row['kind']} {row['reason']} (seq {row['seq']})" for row in r.rows) or "no row"
        say(f"  {r.visit.vehicle.name} ({r.visit.vehicle.plate}) at {r.visit.lane}, expected "
            f"{r.visit.expect_reason}: recorded {rows}{f'; {r.error}' if r.error else ''}")


def _count(store: Path, table: str) -> int:
    try:
        conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
        try:
            return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def say(text: str) -> None:
    print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.tools.chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--booked", type=int, default=100, help="renters with a booking (enter and leave)")
    parser.add_argument("--fleet", type=int, default=600, help="allow-listed fleet vehicles (enter)")
    parser.add_argument("--strangers", type=int, default=300, help="vehicles without a booking (refused)")
    parser.add_argument("--kills", type=int, default=50, help="daemon SIGKILLs")
    parser.add_argument("--entry-lanes", type=int, default=3)
    parser.add_argument("--exit-lanes", type=int, default=1)
    parser.add_argument("--expected-s", type=float, default=240.0,
                        help="planned traffic duration (paces the kills)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--models", type=Path, default=None, help="ONNX models to use instead of the bundled")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="parkgate-chaos-"))
    say(f"parkgate chaos in {work}")
    plan = make_plan(random.Random(args.seed), args.booked, args.fleet, args.strangers)
    chaos = Chaos(work, plan, args.entry_lanes, args.exit_lanes, args.kills, args.seed, args.models)
    started = time.time()
    with ExitStack() as stack:
        chaos.setup(stack)
        fault_thread = threading.Thread(target=chaos.faults, args=(args.expected_s,), daemon=True)
        fault_thread.start()
        progress = threading.Thread(target=_progress, args=(chaos,), daemon=True)
        progress.start()
        chaos.traffic()
        chaos.done.set()
        fault_thread.join()
        say("traffic done; everything back up, draining the outbox ...")
        drained = chaos.settle()
        figures = chaos.report(time.time() - started, drained)
    failed = [name for name, value, must_be_zero in figures if must_be_zero and value]
    width = max(len(name) for name, _, _ in figures)
    for name, value, must_be_zero in figures:
        flag = "  <-- must be 0" if must_be_zero and value else ""
        say(f"  {name:<{width}}  {value}{flag}")
    if chaos.tally.kills < args.kills:
        failed.append("kills")
    say("CHAOS PASS" if not failed else f"CHAOS FAIL: {', '.join(failed)}")
    return 0 if not failed else 1


def _progress(chaos: Chaos) -> None:
    total = chaos.plan.vehicles + len(chaos.plan.booked)
    while not chaos.done.wait(15):
        say(f"  {len(chaos.tally.results)}/{total} passes, {chaos.tally.kills} kills, "
            f"{chaos.tally.chain_cuts} chain cuts, {chaos.tally.broker_cuts} broker cuts, "
            f"{chaos.tally.serial_pulls} serial pulls")


if __name__ == "__main__":
    raise SystemExit(main())
