"""Topic names under ``<prefix>/<gateway_id>/`` and Home Assistant discovery messages (pure)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from edge import __version__

TOPIC_PART_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
ONLINE, OFFLINE = "online", "offline"


def check_topic_part(name: str, value: str) -> str:
    """``value`` if it is safe inside a topic level (no ``/``, ``+``, ``#``); ValueError otherwise."""
    if not isinstance(value, str) or not TOPIC_PART_RE.match(value):
        raise ValueError(f"{name} {value!r} cannot be used in MQTT topics: use 1-64 characters of "
                         "A-Z a-z 0-9 _ . -")
    return value


@dataclass(frozen=True)
class Topics:
    prefix: str
    gateway_id: str

    def __post_init__(self) -> None:
        for part in self.prefix.split("/"):
            check_topic_part("topic prefix part", part)
        check_topic_part("gateway id", self.gateway_id)

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.gateway_id}"

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    def lane_state(self, lane: str) -> str:
        return f"{self.base}/lanes/{lane}/state"

    @property
    def events(self) -> str:
        return f"{self.base}/events"

    @property
    def reads(self) -> str:
        return f"{self.base}/reads"

    @property
    def alerts(self) -> str:
        return f"{self.base}/alerts"

    def command(self, lane: str) -> str:
        return f"{self.base}/cmd/{lane}"

    @property
    def command_filter(self) -> str:
        return f"{self.base}/cmd/+"

    @property
    def command_result(self) -> str:
        return f"{self.base}/cmd/result"

    def lane_of_command_topic(self, topic: str) -> str | None:
        """The lane level of ``<base>/cmd/<lane>``, or None for any other topic (``cmd/result``)."""
        head = f"{self.base}/cmd/"
        if not topic.startswith(head):
            return None
        lane = topic[len(head):]
        return None if lane == "result" or "/" in lane else lane


def _device(topics: Topics) -> dict:
    return {"identifiers": [f"parkgate_{topics.gateway_id}"], "name": f"parkgate {topics.gateway_id}",
            "manufacturer": "parkgate", "model": "edge gateway", "sw_version": __version__}


def discovery_messages(topics: Topics, lanes: Iterable[str], discovery_prefix: str = "homeassistant",
                       open_button_topic: str | None = None) -> list[tuple[str, bytes]]:
    """Retained Home Assistant discovery configs as (topic, payload).

    The gateway is a connectivity ``binary_sensor`` on the availability topic; each lane is a
    ``sensor`` reading ``state`` from its retained lane-state JSON. Home Assistant cannot sign
    commands, so no ``button`` is announced unless ``open_button_topic`` names a topic where a
    signing bridge listens (it receives ``<lane>`` and must publish a signed ``cmd/<lane>``).
    """
    gw = topics.gateway_id
    avail = {"availability_topic": topics.availability, "payload_available": ONLINE,
             "payload_not_available": OFFLINE}
    messages = [(
        f"{discovery_prefix}/binary_sensor/parkgate_{gw}/connectivity/config",
        {"name": "Connectivity", "unique_id": f"parkgate_{gw}_connectivity", "device_class": "connectivity",
         "state_topic": topics.availability, "payload_on": ONLINE, "payload_off": OFFLINE,
         "device": _device(topics)},
    )]
    for lane in lanes:
        messages.append((
            f"{discovery_prefix}/sensor/parkgate_{gw}/{lane}_state/config",
            {"name": f"Lane {lane}", "unique_id": f"parkgate_{gw}_{lane}_state",
             "state_topic": topics.lane_state(lane),
             "value_template": "{{ value_json.state }}", "json_attributes_topic": topics.lane_state(lane),
             "device": _device(topics), **avail},
        ))
        if open_button_topic is not None:
            messages.append((
                f"{discovery_prefix}/button/parkgate_{gw}/{lane}_open/config",
                {"name": f"Open lane {lane}", "unique_id": f"parkgate_{gw}_{lane}_open",
                 "command_topic": open_button_topic, "payload_press": lane, "device": _device(topics),
                 **avail},
            ))
    return [(topic, json.dumps(body, sort_keys=True).encode()) for topic, body in messages]
