"""Run an MqttBridge in a child process until killed (the LWT test SIGKILLs it).

argv[1] is JSON: {"url": ..., "ca_file": ..., "gateway": ..., "lanes": [...]}.
"""

from __future__ import annotations

import json
import sys
import time

from edge.mqtt import MqttBridge, settings_from_url

if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    settings = settings_from_url(spec["url"], spec["gateway"], ca_file=spec["ca_file"], keepalive_s=60)
    bridge = MqttBridge(settings, bytes(32), spec["lanes"]).start()
    if not bridge.wait_connected(20):
        print("not connected:", bridge.last_connect_error, flush=True)
        sys.exit(1)
    print("connected", flush=True)
    while True:
        time.sleep(1)
