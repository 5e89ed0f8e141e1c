"""`make bench`: one table, measured in one run on this machine, each figure with how it was measured.

- arrival (presence loop event) -> open command acknowledged by the controller, p50/p99, measured
  inside the daemon (one lane, emulator on a pty, bundled models, booked cars from the local cache);
  the same seen from outside (harness sets the loop -> emulator counted the open);
- LPR ms per frame (detector + OCR, onnxruntime, the daemon's thread setting);
- chain sync: records/s and gas per record draining a backlog in batches vs one transaction per
  record, against anvil;
- daemon steady RSS and idle CPU (camera streaming, no vehicle), cold start to READY;
- the same cars again while the console streams the lane's live view to one client (the daemon then runs
  the plate detector on the watched frames at 2 fps): open latency p50 against the first pass, the
  console's RSS and the daemon's RSS with the live view's detector loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from edge.access.decide import commitment_function
from edge.store import Booking, GateEventRow, RentalEvent, Store, new_event_id
from edge.tools.console import ConsoleProcess, LiveWatcher, add_user, console_section, log_in
from edge.tools.demo import harness as h
from edge.tools.demo.scenario import vision_section
from edge.tools.emulator.launch import running_emulator
from edge.tools.net import free_tcp_port

LOT = "LOT-BENCH-1"
KEY_HEX = "22" * 32
HASH = "0x" + "00" * 32
OWNER = "0x" + "11" * 20
HOUR_MS = 3_600_000


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


def settled_open_latencies(status_path: Path, expected: int, wait_s: float = 3.0) -> list[float]:
    """The daemon's open latencies from its status file, once they count `expected` (the file is
    rewritten every second, so right after the last car it may not list that car yet) or `wait_s` ran out."""
    deadline = time.monotonic() + wait_s
    while True:
        latencies = json.loads(status_path.read_text())["lanes"][0]["open_latencies_ms"]
        if len(latencies) >= expected or time.monotonic() > deadline:
            return latencies
        time.sleep(0.2)


def bench_daemon(work: Path, cars: int, idle_s: float, models: Path | None) -> list[tuple[str, str, str]]:
    vehicles = [h.Vehicle(f"bench-{i}", f"BN {100 + i * 7}-{'ABCDEFGHJK'[i % 10]}X", seed=100 + i)
                for i in range(cars)]
    state = work / "state"
    state.mkdir(parents=True)
    (work / "plate-key").write_text(KEY_HEX + "\n")
    seed(state / "parkgate.sqlite", vehicles)
    camera = h.LaneCamera(work / "camera", "entry-1")
    for vehicle in vehicles:
        h.vehicle_frames(vehicle, work / "camera")
    rows: list[tuple[str, str, str]] = []
    with running_emulator(work, name="entry-1") as emulator:
        config = work / "parkgate.toml"
        config.write_text(h.toml_text(
            {"gateway": {"id": "bench-gw", "lot_id": LOT, "state_dir": str(state)},
             "policy": {"anti_passback": "off"}, "chain": {"plate_key_file": str(work / "plate-key")},
             "vision": vision_section(models)},
            [{"name": "entry-1", "gate": {"port": str(emulator.link), "baudrate": 115200, "pulse_ms": 2000},
              "camera": {"source": str(camera.manifest), "burst_frames": 3}}]))
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
            outside = []
            for vehicle in vehicles:
                result = h.play_visit(h.Visit(vehicle, "entry-1", True, "booking_valid"), emulator, camera,
                                      state / "parkgate.sqlite")
                if result.open_latency_s is not None:
                    outside.append(result.open_latency_s * 1000)
            inside = settled_open_latencies(state / "status.json", len(outside))
            unwatched_rss = proc_rss_kb(daemon.pid) / 1024  # after the cars, nobody watching yet
            watched, console_rss, live_frames = bench_watched(config, console_port, work, vehicles, emulator,
                                                              camera, state, len(inside))
            watched_rss = proc_rss_kb(daemon.pid) / 1024  # the same cars again, the live detector loaded
        finally:
            daemon.stop()
    cmd = f"python -m edge.tools.bench ({cars} booked cars, 1 lane, burst 3 frames @10 fps)"
    if inside:
        spread = f"{percentile(inside, 50):.0f} / {percentile(inside, 99):.0f} ms (n={len(inside)})"
        rows.append(("arrival -> open acked (in daemon), p50 / p99", spread, cmd))
    if outside:
        spread = f"{percentile(outside, 50):.0f} / {percentile(outside, 99):.0f} ms (n={len(outside)})"
        rows.append(("arrival -> open seen at emulator (harness), p50 / p99", spread, cmd))
    rows.append(("admitted of booked cars (gate opened at the emulator)", f"{len(outside)} / {cars}", cmd))
    if inside and watched:
        rows.append(("arrival -> open acked, p50: no console / live view watched",
                     f"{percentile(inside, 50):.0f} / {percentile(watched, 50):.0f} ms (n={len(watched)}, "
                     f"{live_frames} frames streamed)", cmd + ", the same cars again with one MJPEG client"))
    rows.append(("console RSS (parkgate console serve)", f"{console_rss:.0f} MiB",
                 cmd + ", after logging in and streaming the live view"))
    rows.append(("cold start to READY (spawn -> READY line)", f"{cold:.2f} s", cmd))
    rows.append(("daemon steady RSS", f"{rss:.0f} MiB", cmd + ", after start, before vehicles"))
    if watched:
        rows.append(("daemon RSS after the cars: no console / live view watched (its detector loaded)",
                     f"{unwatched_rss:.0f} / {watched_rss:.0f} MiB", cmd + ", the same cars twice"))
    rows.append(("daemon idle CPU (camera streaming, no vehicle)", f"{idle_cpu:.1f} % of one core over "
                 f"{idle_s:.0f} s", cmd))
    return rows


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
            for vehicle in vehicles:
                h.play_visit(h.Visit(vehicle, "entry-1", True, "booking_valid"), emulator, camera,
                             state / "parkgate.sqlite")
            latencies = settled_open_latencies(state / "status.json", before + len(vehicles))[before:]
            rss = proc_rss_kb(console.process.pid) / 1024
        return latencies, rss, watcher.frames


def bench_lpr(frames: int, models: Path | None) -> list[tuple[str, str, str]]:
    from edge.vision.reader import PlateReader
    from edge.vision.synth import render_pass

    if models is None:
        reader = PlateReader(threads=2)
    else:
        reader = PlateReader(models / "plate_detector.onnx", models / "plate_ocr.onnx",
                             models / "plate_ocr.yaml", threads=2)
    images = render_pass("AB 123-CD", frames, "eu", 5, h.FRAME_SIZE)
    reader.read(images[0])
    times = []
    for image in images:
        t = time.perf_counter()
        reader.read(image)
        times.append((time.perf_counter() - t) * 1000)
    size = f"{h.FRAME_SIZE[0]}x{h.FRAME_SIZE[1]}"
    return [("LPR per frame (detector + OCR), mean / p50",
             f"{statistics.mean(times):.1f} / {percentile(times, 50):.1f} ms",
             f"python -m edge.tools.bench ({frames} synthetic {size} frames, 2 onnxruntime threads)")]


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
    args = parser.parse_args(argv)
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="parkgate-bench-") as tmp:
        work = Path(tmp)
        print("measuring: daemon hot path, start-up, RSS, idle CPU ...", flush=True)
        rows += bench_daemon(work / "daemon", args.cars, args.idle_s, args.models)
        print("measuring: LPR per frame ...", flush=True)
        rows += bench_lpr(40, args.models)
        print("measuring: chain sync vs naive ...", flush=True)
        rows += bench_sync(work, args.records, args.naive)
    machine = f"{platform.machine()} {platform.node()}, {os.cpu_count()} cores"
    print(f"\nparkgate bench, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {machine}\n")
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    print(f"{'measure':<{width}}  {'result':<{value_width}}  command")
    print(f"{'-' * width}  {'-' * value_width}  -------")
    for name, value, command in rows:
        print(f"{name:<{width}}  {value:<{value_width}}  {command}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
