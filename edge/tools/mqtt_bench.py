"""Measure the MQTT piece: outbox drain rate through a real TLS mosquitto, and command verification.

``python -m edge.tools.mqtt_bench [--events N]``: records N gate events in a fresh store, starts a local
broker (edge.tools.mosquitto) and a bridge, and times until every row is marked done on PUBACK.
Prints one JSON object. Needs mosquitto and openssl on PATH.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
import timeit
from pathlib import Path

from edge.mqtt.bridge import BridgeTimings, MqttBridge
from edge.mqtt.commands import CommandPolicy, sign_command, verify_command
from edge.mqtt.wiring import mqtt_config_from_url
from edge.store import GateEventRow, Store, new_event_id, wall_clock_ms
from edge.tools.mosquitto import MosquittoBroker

KEY = bytes(range(32))


def bench_verify(n: int = 20_000) -> float:
    """Microseconds per verify_command of a valid command (parse + HMAC + checks)."""
    now = wall_clock_ms()
    raw = sign_command(KEY, "gw-1", "in-1", "open", now)
    policy = CommandPolicy("gw-1", frozenset({"in-1"}))
    return timeit.timeit(lambda: verify_command(raw, KEY, now, frozenset(), policy), number=n) / n * 1e6


def bench_outbox(events: int, window: int, workdir: Path) -> dict[str, float]:
    db = workdir / "bench.sqlite"
    with Store(db) as store:
        for _ in range(events):
            store.record_gate_event(GateEventRow(event_id=new_event_id(), lane="in-1", direction="entry",
                                              kind="check_in", reason="booking_valid",
                                              occurred_at_ms=wall_clock_ms(), plate_masked="AB***3"),
                                    destinations=("mqtt",))
        with MosquittoBroker(workdir / "broker") as broker:
            config, password = mqtt_config_from_url(broker.url, ca_file=broker.ca_file)
            start = time.perf_counter()
            with MqttBridge(config, "gw-bench", KEY, ["in-1"], password=password,
                            timings=BridgeTimings(outbox_window=window), open_outbox=lambda: Store(db),
                            poll_s=0.05) as bridge:
                while store.counts().get("outbox.mqtt.done", 0) < events:
                    time.sleep(0.01)
                elapsed = time.perf_counter() - start
                counters = bridge.health()["counters"]
    return {"events": events, "window": window, "seconds": round(elapsed, 3),
            "events_per_s": round(events / elapsed, 1), "published": counters.get("events_published", 0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--window", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="parkgate-mqtt-bench-") as tmp:
        result = {"machine": f"{platform.machine()} {platform.python_version()}",
                  "verify_command_us": round(bench_verify(), 1),
                  "outbox": bench_outbox(args.events, args.window, Path(tmp))}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
