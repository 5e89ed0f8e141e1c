"""`make bench`: one table, measured in one run on this machine, each figure with how it was measured.

- arrival (presence loop event) -> open command acknowledged by the controller, p50/p99, measured
  inside the daemon (one lane, emulator on a pty, bundled models, booked cars from the local cache);
  the same seen from outside (harness sets the loop -> emulator counted the open). Each car drives up
  over rendered frames (2 s) before the loop fires, read on the approach; then the same cars the same way
  through the lane without approach reading (a second daemon, same store): the burst read after the
  trigger;
- per-pass exact reads on rendered approaches (consensus of the approach) against single frames;
- LPR ms per frame (detector + OCR, onnxruntime, the daemon's thread setting);
- chain sync: records/s and gas per record draining a backlog in batches vs one transaction per
  record, against anvil;
- daemon steady RSS and idle CPU (camera streaming, no vehicle), cold start to READY;
- the same cars again while the console streams the lane's live view to one client (the daemon then runs
  the plate detector on the watched frames at 2 fps): open latency p50 against the first pass, the
  console's RSS and the daemon's RSS with the live view's detector loaded.

The table ends with one JSON line of the headline figures, for scripts and the issue log.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.access.decide import commitment_function
from edge.store import Booking, GateEventRow, RentalEvent, Store, new_event_id
from edge.tools.console import ConsoleProcess, LiveWatcher, add_user, console_section, log_in
from edge.tools.demo import harness as h
from edge.tools.demo.scenario import vision_section
from edge.tools.emulator.launch import running_emulator
from edge.tools.net import free_tcp_port
from edge.tools.proc import exit_on_sigterm

LOT = "LOT-BENCH-1"
KEY_HEX = "22" * 32
HASH = "0x" + "00" * 32
OWNER = "0x" + "11" * 20
HOUR_MS = 3_600_000
Row = tuple[str, str, str]  # measure, result, command


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def seed(store_path: Path, vehicles: list[h.Vehicle]) -> None:
    commit = commitment_function(bytes.fromhex(KEY_HEX), LOT)
    now = int(time.time() * 1000)
    with Store(store_path) as store:
        store.upsert_rental_event(RentalEvent("1", "1", LOT, OWNER, now - HOUR_MS, now + 9 * HOUR_MS, 1,
                                              "open", 1, HASH, 0))
        for n, vehicle in enumerate(vehicles, 1):
            store.upsert_booking(Booking(str(n), "1", "1", LOT, OWNER, commit(vehicle.plate), now - HOUR_MS,
                                         now + 8 * HOUR_MS, "verified", 1, HASH, n))


def proc_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settled_lane(status_path: Path, done: Callable[[dict[str, Any]], bool], wait_s: float = 3.0
                 ) -> dict[str, Any]:
    """The lane's status once `done` says it counts what the run expects, or when `wait_s` ran out: the file
    is rewritten every second, so right after the last car it may not list that car yet (its open latency
    comes as the gate opens, its pass's `read_from` when the pass ends, after the car left)."""
    deadline = time.monotonic() + wait_s
    while True:
        lane = lane_status(status_path)
        if done(lane) or time.monotonic() > deadline:
            return lane
        time.sleep(0.2)


def settled_open_latencies(status_path: Path, expected: int) -> list[float]:
    """The daemon's open latencies from its status file, once they count `expected`."""
    lane = settled_lane(status_path, lambda lane: len(lane.get("open_latencies_ms", [])) >= expected)
    return list(lane.get("open_latencies_ms", []))


def bench_daemon(work: Path, cars: int, idle_s: float, models: Path | None,
                 figures: dict[str, Any] | None = None) -> list[Row]:
    """The daemon rows; the headline figures go into ``figures`` (for the JSON line) when given."""
    figures = {} if figures is None else figures
    vehicles = [h.Vehicle(f"bench-{i}", f"BN {100 + i * 7}-{'ABCDEFGHJK'[i % 10]}X", seed=100 + i)
                for i in range(cars)]
    state = work / "state"
    state.mkdir(parents=True)
    (work / "plate-key").write_text(KEY_HEX + "\n")
    seed(state / "parkgate.sqlite", vehicles)
    camera = h.LaneCamera(work / "camera", "entry-1")
    for vehicle in vehicles:
        camera.approach_names(vehicle)  # rendered before the daemon runs: not measured
    rows: list[Row] = []
    with running_emulator(work, name="entry-1") as emulator:
        config = lane_config(work, state, emulator, camera, models, approach=True)
        console_port = free_tcp_port()
        with config.open("a") as out:
            out.write(h.toml_text({"console": console_section(console_port)}, []))
        started = time.perf_counter()
        daemon = h.start_daemon(config, work / "daemon.log")
        cold = time.perf_counter() - started
        try:
            time.sleep(3.0)
            cpu0, t0 = proc_cpu_s(daemon.pid), time.perf_counter()
            time.sleep(idle_s)
            idle_cpu = (proc_cpu_s(daemon.pid) - cpu0) / (time.perf_counter() - t0) * 100
            rss = proc_rss_kb(daemon.pid) / 1024
            cpu0, t0 = proc_cpu_s(daemon.pid), time.perf_counter()
            outside = drive(vehicles, emulator, camera, state, "approach")
            cars_cpu = (proc_cpu_s(daemon.pid) - cpu0) / (time.perf_counter() - t0) * 100
            lane = settled_lane(state / "status.json",
                                lambda lane: len(lane.get("open_latencies_ms", [])) >= len(outside)
                                and sum(lane.get("read_from", {}).values()) >= len(outside))
            inside, read_from = list(lane.get("open_latencies_ms", [])), lane.get("read_from", {})
            rss_cars = proc_rss_kb(daemon.pid) / 1024  # after the cars, nobody watching yet
            watched, console_rss, live_frames = bench_watched(config, console_port, work, vehicles, emulator,
                                                              camera, state, len(inside))
            watched_rss = proc_rss_kb(daemon.pid) / 1024  # the same cars again, the live detector loaded
        finally:
            daemon.stop()
        # The same cars driving up the same way, the lane without approach reading: the burst after the
        # trigger (a second daemon on the same store, one after the other in this run).
        daemon = h.start_daemon(lane_config(work, state, emulator, camera, models, approach=False),
                                work / "daemon-burst.log")
        try:
            time.sleep(3.0)
            outside_after = drive(vehicles, emulator, camera, state, "approach")
            inside_after = settled_open_latencies(state / "status.json", len(outside_after))
        finally:
            daemon.stop()
    cmd = f"python -m edge.tools.bench ({cars} booked cars, 1 lane, approach reading, burst 3 frames @10 fps)"
    if inside:
        rows.append(("arrival -> open acked (in daemon), p50 / p99: read on the approach", spread(inside),
                     cmd))
    if inside_after:
        rows.append(("arrival -> open acked (in daemon), p50 / p99: burst after the trigger",
                     spread(inside_after), cmd + ", the same cars again, camera.approach = false"))
    if outside:
        rows.append(("arrival -> open seen at emulator (harness), p50 / p99: approach", spread(outside), cmd))
    if outside_after:
        rows.append(("arrival -> open seen at emulator (harness), p50 / p99: after trigger",
                     spread(outside_after), cmd))
    rows.append(("admitted of booked cars: approach / after trigger",
                 f"{len(outside)} / {cars}, {len(outside_after)} / {cars}", cmd))
    rows.append(("passes read from an approach track / a burst (approach round)",
                 f"{read_from.get('approach', 0)} / {read_from.get('burst', 0)}", cmd))
    if inside and watched:
        rows.append(("arrival -> open acked, p50: no console / live view watched",
                     f"{percentile(inside, 50):.0f} / {percentile(watched, 50):.0f} ms (n={len(watched)}, "
                     f"{live_frames} frames streamed)", cmd + ", the same cars again with one MJPEG client"))
    rows.append(("console RSS (parkgate console serve)", f"{console_rss:.0f} MiB",
                 cmd + ", after logging in and streaming the live view"))
    rows.append(("cold start to READY (spawn -> READY line)", f"{cold:.2f} s", cmd))
    rows.append(("daemon steady RSS: idle / after the cars", f"{rss:.0f} / {rss_cars:.0f} MiB",
                 cmd + ", after start before vehicles / after the approach round"))
    if watched:
        rows.append(("daemon RSS after the cars: no console / live view watched (its detector loaded)",
                     f"{rss_cars:.0f} / {watched_rss:.0f} MiB", cmd + ", the same cars twice"))
    rows.append(("daemon idle CPU (camera streaming, motion-gated, no vehicle)",
                 f"{idle_cpu:.1f} % of one core over {idle_s:.0f} s", cmd))
    rows.append(("daemon CPU while the cars drive up and pass (approach round)",
                 f"{cars_cpu:.0f} % of one core", cmd + ", a car every ~3 s"))
    figures.update({
        "arrival_open_p50_ms": _p(inside, 50), "arrival_open_p99_ms": _p(inside, 99),
        "arrival_open_p50_ms_after_trigger": _p(inside_after, 50),
        "arrival_open_p99_ms_after_trigger": _p(inside_after, 99),
        "admitted_approach": len(outside), "admitted_after_trigger": len(outside_after), "cars": cars,
        "passes_from_approach": read_from.get("approach", 0), "passes_from_burst": read_from.get("burst", 0),
        "rss_mb": round(rss, 1), "rss_after_cars_mb": round(rss_cars, 1), "idle_cpu_pct": round(idle_cpu, 2),
        "cars_cpu_pct": round(cars_cpu, 1), "cold_start_s": round(cold, 2)})
    return rows


def lane_config(work: Path, state: Path, emulator: Any, camera: h.LaneCamera, models: Path | None,
                approach: bool) -> Path:
    """The bench's config: one entry lane on the emulator, reading on the approach or not."""
    config = work / ("parkgate.toml" if approach else "parkgate-burst.toml")
    config.write_text(h.toml_text(
        {"gateway": {"id": "bench-gw", "lot_id": LOT, "state_dir": str(state)},
         "policy": {"anti_passback": "off"}, "chain": {"plate_key_file": str(work / "plate-key")},
         "vision": vision_section(models)},
        [{"name": "entry-1", "gate": {"port": str(emulator.link), "baudrate": 115200, "pulse_ms": 2000},
          "camera": {"source": str(camera.manifest), "burst_frames": 3, "approach": approach}}]))
    return config


def drive(vehicles: list[h.Vehicle], emulator: Any, camera: h.LaneCamera, state: Path,
          arrive: str) -> list[float]:
    """Each booked car through the lane; the open latencies seen at the emulator (ms) of the admitted."""
    seen = []
    for vehicle in vehicles:
        result = h.play_visit(h.Visit(vehicle, "entry-1", True, "booking_valid"), emulator, camera,
                              state / "parkgate.sqlite", arrive=arrive)
        if result.open_latency_s is not None:
            seen.append(result.open_latency_s * 1000)
    return seen


def lane_status(status_path: Path) -> dict[str, Any]:
    lanes = json.loads(status_path.read_text())["lanes"]
    return dict(lanes[0]) if lanes else {}


def spread(values: list[float]) -> str:
    return f"{percentile(values, 50):.0f} / {percentile(values, 99):.0f} ms (n={len(values)})"


def _p(values: list[float], q: float) -> float | None:
    return round(percentile(values, q), 1) if values else None


def bench_watched(config: Path, port: int, work: Path, vehicles: list[h.Vehicle], emulator: Any,
                  camera: h.LaneCamera, state: Path, before: int) -> tuple[list[float], float, int]:
    """The same cars again while the console streams the lane's live view to one client: the daemon's
    open latencies of these cars, the console's RSS, the frames streamed."""
    password = "bench-" + os.urandom(8).hex()
    if add_user(config, "bench", "operator", password).returncode != 0:
        return [], 0.0, 0
    with ConsoleProcess(config, port, work / "console.log") as console:
        with LiveWatcher(log_in(console.url, "bench", password), console.url, "entry-1") as watcher:
            time.sleep(2.0)  # frames flowing
            drive(vehicles, emulator, camera, state, "approach")
            latencies = settled_open_latencies(state / "status.json", before + len(vehicles))[before:]
            rss = proc_rss_kb(console.process.pid) / 1024
        return latencies, rss, watcher.frames


def bench_lpr(frames: int, models: Path | None, figures: dict[str, Any]) -> list[Row]:
    from edge.vision.synth import render_pass

    reader = _reader(models)
    rows = []
    for size in (h.FRAME_SIZE, (1920, 1080)):
        images = render_pass("AB 123-CD", frames, "eu", 5, size)
        reader.read(images[0])
        times = []
        for image in images:
            t = time.perf_counter()
            reader.read(image)
            times.append((time.perf_counter() - t) * 1000)
        figures[f"lpr_{size[1]}p_median_ms"] = round(statistics.median(times), 1)
        rows.append((f"LPR per {size[0]}x{size[1]} frame (detector + OCR), mean / p50",
                     f"{statistics.mean(times):.1f} / {percentile(times, 50):.1f} ms",
                     f"python -m edge.tools.bench ({frames} synthetic frames, 2 onnxruntime threads)"))
    return rows


def bench_approach_reads(passes: int, models: Path | None, figures: dict[str, Any]) -> list[Row]:
    """Rendered approaches with strong camera effects (night, glare, blur, JPEG): exact reads of single
    frames (each frame's best read) against the consensus of the approach's track, per pass."""
    import numpy as np

    from edge.vision.motion import MotionGate
    from edge.vision.synth import random_text, render_approach
    from edge.vision.tracks import Tracks, TrackSettings, Why, choose, observe

    reader = _reader(models)
    settings = TrackSettings()
    frames_exact = frames_read = passes_exact = decided = 0
    rng = np.random.default_rng(2026)
    for n in range(passes):
        text = random_text(rng, "eu")
        plate = "".join(c for c in text if c.isalnum())
        gate, tracks = MotionGate(), Tracks()
        for i, image in enumerate(render_approach(text, h.APPROACH_FRAMES, "eu", 500 + n, h.FRAME_SIZE,
                                                  strength=1.0)):
            if not gate.moved(image):
                continue
            reads = reader.read(image)
            frames_read += 1
            frames_exact += bool(reads) and reads[0].text == plate
            tracks = observe(tracks, reads, i / 10, settings)
        choice = choose(tracks, h.APPROACH_FRAMES / 10, settings)
        decided += choice.why is Why.APPROACH
        passes_exact += choice.read is not None and choice.read.text == plate
    figures.update({"single_frame_exact": round(frames_exact / max(1, frames_read), 3),
                    "approach_pass_exact": round(passes_exact / passes, 3)})
    cmd = (f"python -m edge.tools.bench ({passes} rendered approaches of random EU plates, camera effects at "
           "full strength, motion-gated frames)")
    return [("exact reads: single frames / per pass from the approach track",
             f"{frames_exact} / {frames_read} frames ({frames_exact / max(1, frames_read):.0%}), "
             f"{passes_exact} / {passes} passes ({passes_exact / passes:.0%}, {decided} decided by a track)",
             cmd)]


def _reader(models: Path | None) -> Any:
    from edge.vision.reader import PlateReader

    if models is None:
        return PlateReader(threads=2)
    return PlateReader(models / "plate_detector.onnx", models / "plate_ocr.onnx", models / "plate_ocr.yaml",
                       threads=2)


def bench_sync(work: Path, records: int, naive: int) -> list[tuple[str, str, str]]:
    from edge.chain.commitment import plate_commitment
    from edge.chain.contract import GateRecord, RecordKind
    from edge.chain.sync import SyncService, connect
    from edge.config import ChainConfig
    from edge.tools.anvil import Anvil, dev_account
    from edge.tools.demo.world import build_world

    with Anvil(log_path=work / "anvil.log") as anvil:
        w3 = anvil.web3()
        world = build_world(w3, LOT, bytes.fromhex(KEY_HEX))
        commitment = "0x" + plate_commitment(bytes.fromhex(KEY_HEX), LOT, "AB123CD").hex()
        store_path = work / "sync.sqlite"
        now = int(time.time() * 1000)
        with Store(store_path) as store, store.transaction():
            for i in range(records):
                store.record_gate_event(GateEventRow(new_event_id(now + i), "entry-1", "entry", "denied",
                                                  "denied,no_booking", now + i,
                                                  plate_commitment=commitment), ("chain",))
        store = Store(store_path)
        chain = ChainConfig(enabled=True, contract_address=world.admin.address, chain_id=31337,
                            confirmations=0, batch_size=200, poll_interval_s=0.1)
        service = SyncService(connect(anvil.url), store, dev_account(5), chain, LOT)
        first = w3.eth.block_number
        t = time.perf_counter()
        service.run_until_idle()
        batch_s = time.perf_counter() - t
        batch_gas = sum(w3.eth.get_block(n)["gasUsed"] for n in range(first + 1, w3.eth.block_number + 1))
        store.close()
        gateway = world.admin.with_sender(dev_account(5))
        first = w3.eth.block_number
        next_seq = gateway.last_seq(dev_account(5).address) + 1
        t = time.perf_counter()
        for i in range(naive):
            record = GateRecord(next_seq + i, RecordKind.DENIED, 0, bytes.fromhex(commitment[2:]),
                                now // 1000)
            gateway.record_gate_events([record])
        naive_s = time.perf_counter() - t
        naive_gas = sum(w3.eth.get_block(n)["gasUsed"] for n in range(first + 1, w3.eth.block_number + 1))
    cmd = "python -m edge.tools.bench (anvil automine, denied records)"
    return [(f"sync drain, batches of 200 ({records} records)",
             f"{records / batch_s:.0f} records/s, {batch_gas / records:.0f} gas/record", cmd),
            (f"naive one tx per record ({naive} records)",
             f"{naive / naive_s:.0f} records/s, {naive_gas / naive:.0f} gas/record", cmd)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.tools.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cars", type=int, default=20, help="booked cars driven through the lane")
    parser.add_argument("--idle-s", type=float, default=10.0, help="idle window for RSS/CPU")
    parser.add_argument("--records", type=int, default=1000, help="sync backlog size")
    parser.add_argument("--naive", type=int, default=100, help="records sent one tx each")
    parser.add_argument("--models", type=Path, default=None, help="ONNX models to use instead of the bundled")
    parser.add_argument("--approaches", type=int, default=12, help="rendered approaches read for accuracy")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    rows: list[Row] = []
    figures: dict[str, Any] = {}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="parkgate-bench-") as tmp:
        work = Path(tmp)
        print("measuring: daemon hot path, start-up, RSS, idle CPU ...", flush=True)
        rows += bench_daemon(work / "daemon", args.cars, args.idle_s, args.models, figures)
        print("measuring: LPR per frame ...", flush=True)
        rows += bench_lpr(40, args.models, figures)
        print("measuring: reads on rendered approaches ...", flush=True)
        rows += bench_approach_reads(args.approaches, args.models, figures)
        print("measuring: chain sync vs naive ...", flush=True)
        rows += bench_sync(work, args.records, args.naive)
    machine = f"{platform.machine()} {platform.node()}, {os.cpu_count()} cores"
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = f"load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after"
    print(f"\nparkgate bench, {when}, {machine}, {load}\n")
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    print(f"{'measure':<{width}}  {'result':<{value_width}}  command")
    print(f"{'-' * width}  {'-' * value_width}  -------")
    for name, value, command in rows:
        print(f"{name:<{width}}  {value:<{value_width}}  {command}")
    figures.update({"date": when, "machine": machine, "load_1m_before": round(load_before[0], 2)})
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
