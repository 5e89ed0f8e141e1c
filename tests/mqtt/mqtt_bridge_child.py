"""Run an MqttBridge in a child process until killed (the LWT test SIGKILLs it).

argv[1] is JSON: {"url": ..., "ca_file": ..., "gateway": ..., "lanes": [...]}.
"""

from __future__ import annotations

import json
import sys
import time

from edge.mqtt import BridgeTimings, MqttBridge
from edge.mqtt.wiring import mqtt_config_from_url

if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    config, password = mqtt_config_from_url(spec["url"], ca_file=spec["ca_file"], discovery=True)
    bridge = MqttBridge(config, spec["gateway"], bytes(32), spec["lanes"], password=password,
                        timings=BridgeTimings(keepalive_s=60)).start()
    if not bridge.wait_connected(20):
        print("not connected:", bridge.last_connect_error, flush=True)
        sys.exit(1)
    print("connected", flush=True)
    while True:
        time.sleep(1)
